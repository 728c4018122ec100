"""visual7w: full coverage, unknown ids and non-candidate box ids rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalserver.metrics import pointing
from evalserver.metrics import predictions as P
from evalserver.metrics.predictions import ValidationError

GT = pointing.PointingGroundTruth(
    qa_ids=np.array([10, 11, 12]),
    candidate_box_ids=np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]),
    label=np.array([0, 3, 2]),
    types=["which", "which", "which"],
)


def preds(pairs: list[tuple[int, int]]) -> P.ChoicePredictions:
    return P.parse_pointing(json.dumps([{"qa_id": q, "box_id": b} for q, b in pairs]).encode())


def test_accuracy() -> None:
    result = pointing.score(GT, preds([(12, 11), (10, 1), (11, 5)]))
    assert result.metrics == {"accuracy": pytest.approx(200 / 3)}
    assert result.details["per_type"]["which"]["count"] == 3
    assert result.version == "pointing-1"
    assert pointing.score(GT, preds([(10, 1), (11, 8), (12, 11)])).metrics["accuracy"] == 100.0


def test_coverage_unknown_and_candidates() -> None:
    problems = [str(p) for p in pointing.validate(GT, preds([(10, 0), (11, 8), (99, 1)]))]
    assert problems == [
        "record 3, qa_id 99: unknown qa_id: not in the ground truth of this split",
        "qa_id 12: no prediction for this qa_id",
        "record 1, qa_id 10: box_id 0 is not one of the question's candidates (1, 2, 3, 4)",
    ]
    with pytest.raises(ValidationError):
        pointing.score(GT, preds([(10, 1), (11, 8)]))


def test_types_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_pointing(b'[{"qa_id": "10", "box_id": 1}, {"qa_id": 11, "box_id": 1.5}, [1, 2]]')
    assert [str(p) for p in info.value.problems] == [
        "record 1: qa_id must be an integer, got string '10'",
        "record 2, qa_id 11: box_id must be an integer, got float 1.5",
        'record 3: expected an object like {"qa_id": 1, "box_id": 2}, got array',
    ]
