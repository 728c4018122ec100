"""nlvr2: golden parity to full float precision, consistency groups, strict validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import nlvr2
from evalserver.metrics import predictions as P
from evalserver.metrics.predictions import ValidationError
from unify.converters.nlvr2 import sentence_key

from .helpers import write_text


def official_metrics(path: Path) -> dict[str, float]:
    pairs = (line.split("=") for line in path.read_text().splitlines() if line.strip())
    return {k: float(v) for k, v in pairs}


def load_gt(path: Path) -> nlvr2.Nlvr2GroundTruth:
    return nlvr2.Nlvr2GroundTruth.from_records(
        json.loads(line) for line in path.read_text().splitlines() if line.strip()
    )


@pytest.mark.parametrize(
    ("folder", "labels", "predictions"),
    [
        ("nlvr2_synthetic_dev", "golden:nlvr2_synthetic_dev/dev.json", "dev_predictions.csv"),
        ("nlvr2_real_test1", "real:nlvr2/test1.json", "predictions.csv"),
    ],
)
def test_golden_parity_full_precision(
    golden_dir: Path, real_dir: Path, folder: str, labels: str, predictions: str
) -> None:
    where, rel = labels.split(":")
    gt = load_gt((golden_dir if where == "golden" else real_dir) / rel)
    result = nlvr2.score(gt, P.parse_nlvr2(golden_dir / folder / predictions))
    official = official_metrics(golden_dir / folder / "official_metrics.txt")
    assert result.details["official"] == official  # exact float equality
    assert result.metrics["accuracy"] == 100 * official["accuracy"]
    assert result.metrics["consistency"] == 100 * official["consistency"]
    assert result.version == "nlvr2-1"


def test_sentence_key_blanks_the_pair_field() -> None:
    """One function computes the key (the converter's); ground truth from release records
    groups by it, ground truth from a unified file reads the column it wrote."""
    assert sentence_key(["dev", "850", "1", "0"]) == "dev-850--0"
    assert sentence_key(["test1", "0", "3", "1"]) == "test1-0--1"
    assert list(GT.sentence_keys) == ["dev-1--0", "dev-1--0", "dev-1--0", "dev-2--1"]
    assert GT.sentence_index.tolist() == [0, 0, 0, 1]


GT = nlvr2.Nlvr2GroundTruth.from_records(
    [
        {"identifier": "dev-1-0-0", "label": "True"},
        {"identifier": "dev-1-1-0", "label": "False"},
        {"identifier": "dev-1-2-0", "label": "True"},
        {"identifier": "dev-2-0-1", "label": "False"},
    ]
)


def test_case_insensitive_and_consistency(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "p.csv", "dev-1-0-0,TRUE\ndev-1-1-0,false\ndev-1-2-0,True\ndev-2-0-1,true\n"
    )
    result = nlvr2.score(GT, P.parse_nlvr2(path))
    assert result.details["official"] == {"accuracy": 0.75, "consistency": 0.5}
    assert result.details["counts"]["sentences"] == 2


def test_missing_extra_duplicate_rows_are_rejected(tmp_path: Path) -> None:
    text = "dev-1-0-0,True\ndev-1-0-0,False\ndev-9-0-0,True\ndev-1-2-0,True\n"
    with pytest.raises(ValidationError) as info:
        nlvr2.score(GT, P.parse_nlvr2(write_text(tmp_path / "p.csv", text, gz=True)))
    assert [str(p) for p in info.value.problems] == [
        "line 3, identifier dev-9-0-0: unknown identifier: not in the ground truth of this split",
        "line 2, identifier dev-1-0-0: duplicate identifier (first given at line 1)",
        "identifier dev-1-1-0: no prediction for this identifier",
        "identifier dev-2-0-1: no prediction for this identifier",
    ]


def test_malformed_lines_are_named() -> None:
    text = b"identifier,prediction\ndev-1-0-0,yes\ndev-1-1-0\ndev-1-2-0,True,extra\n\n,True\n"
    with pytest.raises(ValidationError) as info:
        P.parse_nlvr2(text)
    assert [str(p) for p in info.value.problems] == [
        "line 1, identifier identifier: prediction must be False or True, got 'prediction' "
        "(no header line is expected)",
        "line 2, identifier dev-1-0-0: prediction must be False or True, got 'yes'",
        "line 3: expected 2 comma-separated fields identifier,prediction, got 1",
        "line 4: expected 2 comma-separated fields identifier,prediction, got 3",
        "line 6: identifier is empty",
    ]
    with pytest.raises(ValidationError, match="not UTF-8"):
        P.parse_nlvr2(b"dev-1-0-0,\xff\n")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_perfect_and_permutation(labels: list[bool], rnd: random.Random) -> None:
    ids = [f"dev-{i // 4}-{i % 4}-0" for i in range(len(labels))]
    gt = nlvr2.Nlvr2GroundTruth.from_records(
        {"identifier": i, "label": str(lab)} for i, lab in zip(ids, labels, strict=True)
    )
    lines = [f"{i},{'True' if lab else 'False'}" for i, lab in zip(ids, labels, strict=True)]
    perfect = nlvr2.score(gt, P.parse_nlvr2("\n".join(lines).encode()))
    assert perfect.metrics == {"accuracy": 100.0, "consistency": 100.0}
    flipped = [
        f"{i},{'False' if lab else 'True'}" if k % 3 == 0 else line
        for k, (i, lab, line) in enumerate(zip(ids, labels, lines, strict=True))
    ]
    shuffled = flipped[:]
    rnd.shuffle(shuffled)
    a = nlvr2.score(gt, P.parse_nlvr2("\n".join(flipped).encode()))
    b = nlvr2.score(gt, P.parse_nlvr2("\n".join(shuffled).encode()))
    assert a.metrics == b.metrics
