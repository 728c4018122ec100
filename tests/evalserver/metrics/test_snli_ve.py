"""snli_ve: accuracy, per class, gold "-" pairs refused with a reason, CSV and JSON forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalserver.metrics import predictions as P
from evalserver.metrics import snli_ve
from evalserver.metrics.predictions import ValidationError

GT = snli_ve.SnliVeGroundTruth.from_records(
    [
        {"pairID": "a#0r1e", "gold_label": "entailment"},
        {"pairID": "a#0r1n", "gold_label": "neutral"},
        {"pairID": "a#0r1c", "gold_label": "contradiction"},
        {"pairID": "b#1r1e", "gold_label": "entailment"},
        {"pairID": "b#1r1x", "gold_label": "-"},
    ]
)


def test_accuracy_per_class_and_dash_not_scored() -> None:
    csv = b"a#0r1e,entailment\na#0r1n,neutral\na#0r1c,neutral\nb#1r1e,Contradiction\n"
    result = snli_ve.score(GT, P.parse_snli_ve(csv))
    assert result.metrics == {
        "accuracy": 50.0,
        "accuracy_contradiction": 0.0,
        "accuracy_neutral": 100.0,
        "accuracy_entailment": 50.0,
    }
    assert result.details["counts"] == {"scored": 4, "dropped_gold_dash": 1}
    assert result.details["confusion"]["gold_by_predicted"][2] == [1, 0, 1]
    assert result.per_example["score"].tolist() == [1.0, 1.0, 0.0, 0.0]  # ground-truth order


def test_a_prediction_for_a_dropped_dash_pair_is_refused_with_the_reason() -> None:
    csv = b"a#0r1e,entailment\na#0r1n,neutral\na#0r1c,neutral\nb#1r1e,Contradiction\n"
    problems = snli_ve.validate(GT, P.parse_snli_ve(csv + b"b#1r1x,neutral\nzz,neutral\n"))
    assert [str(p) for p in problems] == [
        "line 6, pairID zz: unknown pairID: not in the ground truth of this split",
        'line 5, pairID b#1r1x: gold label "-" in the raw file (no annotator majority): '
        "not part of SNLI-VE, remove it from the prediction file",
    ]
    with pytest.raises(ValidationError):
        snli_ve.score(GT, P.parse_snli_ve(csv + b"b#1r1x,neutral\n"))


def test_json_form_equals_csv_form() -> None:
    records = [
        {"pairID": "a#0r1e", "label": "entailment"},
        {"pairID": "a#0r1n", "label": "neutral"},
        {"pairID": "a#0r1c", "label": "contradiction"},
        {"pairID": "b#1r1e", "label": "entailment"},
    ]
    result = snli_ve.score(GT, P.parse_snli_ve(json.dumps(records).encode()))
    assert result.metrics["accuracy"] == 100.0
    assert result.version == "snli_ve-acc-1"


def test_bad_labels_and_coverage() -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_snli_ve(
            b'[{"pairID": "a#0r1e", "label": "yes"}, {"pairID": 3, "label": "neutral"}]'
        )
    assert [str(p) for p in info.value.problems] == [
        "record 1, pairID a#0r1e: label must be one of contradiction, neutral, entailment, "
        "got 'yes'",
        "record 2: pairID must be a string, got int 3",
    ]
    problems = snli_ve.validate(GT, P.parse_snli_ve(b"a#0r1e,entailment\n"))
    assert str(problems[0]) == "pairID a#0r1n: no prediction for this pairID"
    assert len(problems) == 3  # the "-" pair is not part of the ground truth


def test_ground_truth_holds_only_labelled_pairs() -> None:
    with pytest.raises(ValueError, match="holds no pair"):
        snli_ve.SnliVeGroundTruth(np.array([], dtype=str), np.array([], dtype=np.int8))
    with pytest.raises(ValueError, match=r"codes 0\.\.2"):
        snli_ve.SnliVeGroundTruth(np.array(["x"]), np.array([-1], dtype=np.int8))
