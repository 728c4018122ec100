"""refcoco/refcoco_plus/refcocog: IoU rules at their boundaries, per split, box checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import predictions as P
from evalserver.metrics import refexp
from evalserver.metrics.predictions import ValidationError


def gt_of(boxes: list[list[float]], splits: list[str] | None = None) -> refexp.RefExpGroundTruth:
    n = len(boxes)
    return refexp.RefExpGroundTruth(
        np.arange(n, dtype=np.int64), np.asarray(boxes, dtype=np.float64), splits or ["val"] * n
    )


def preds(boxes: list[list[float]]) -> P.BoxPredictions:
    return P.parse_refexp(
        json.dumps([{"sent_id": i, "bbox": b} for i, b in enumerate(boxes)]).encode()
    )


def verdicts(pred: list[float], gold: list[float]) -> dict[str, bool]:
    out = {}
    for variant in refexp.VARIANTS:
        result = refexp.score(gt_of([gold]), preds([pred]), variant=variant)
        out[variant] = result.metrics["accuracy"] == 100.0
    return out


def test_iou_exactly_half_in_each_variant() -> None:
    # Continuous: inter 50, union 100. MAttNet: inclusive ends give the same 50 / 100.
    assert refexp.iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 5]))[0] == 0.5
    assert refexp.iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 5]), "mattnet")[0] == 0.5
    assert verdicts([0, 0, 10, 10], [0, 0, 10, 5]) == {
        "default": True,
        "mattnet": True,
        "strict": False,
    }


def test_mattnet_strict_overlap_condition() -> None:
    # Continuous IoU 10 / 20 = 0.5; MAttNet: x1 = 0, x2 = min(1, 0) = 0, and 0 < 0 is false,
    # so a one-pixel-wide overlap counts as no overlap at all.
    assert refexp.iou(np.array([0, 0, 2, 10]), np.array([0, 0, 1, 10]), "mattnet")[0] == 0.0
    assert verdicts([0, 0, 2, 10], [0, 0, 1, 10]) == {
        "default": True,
        "mattnet": False,
        "strict": False,
    }
    # Identical one-pixel-wide boxes: IoU 1 continuous, 0 under MAttNet.
    assert verdicts([5, 5, 1, 8], [5, 5, 1, 8]) == {
        "default": True,
        "mattnet": False,
        "strict": True,
    }


def test_just_above_and_below_half() -> None:
    assert verdicts([0, 0, 10, 10], [0, 0, 10, 5.01]) == {
        "default": True,
        "mattnet": True,
        "strict": True,
    }
    assert verdicts([0, 0, 10, 10], [0, 0, 10, 4.99]) == {
        "default": False,
        "mattnet": False,
        "strict": False,
    }


def test_no_overlap_and_degenerate_boxes() -> None:
    assert refexp.iou(np.array([0, 0, 5, 5]), np.array([10, 10, 5, 5]))[0] == 0.0
    assert refexp.iou(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0]))[0] == 0.0


def test_versions_and_unknown_variant() -> None:
    assert refexp.score(gt_of([[0, 0, 1, 1]]), preds([[0, 0, 1, 1]])).version == "refexp-iou-ge0.5"
    assert refexp.version_of("mattnet") == "refexp-mattnet-iou-ge0.5"
    assert refexp.version_of("strict") == "refexp-iou-gt0.5"
    with pytest.raises(ValueError, match="unknown IoU variant"):
        refexp.score(gt_of([[0, 0, 1, 1]]), preds([[0, 0, 1, 1]]), variant="loose")


def test_per_split() -> None:
    gt = gt_of([[0, 0, 10, 10]] * 4, ["val", "testA", "testA", "testB"])
    result = refexp.score(
        gt, preds([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 1, 1], [0, 0, 10, 10]])
    )
    assert result.metrics == {
        "accuracy": 75.0,
        "accuracy_val": 100.0,
        "accuracy_testA": 50.0,
        "accuracy_testB": 100.0,
    }
    assert result.details["per_split"]["testA"] == {"accuracy": 50.0, "count": 2}


def test_bad_boxes_are_named() -> None:
    records = [
        {"sent_id": 1, "bbox": [0, 0, 1]},
        {"sent_id": 2, "bbox": [0, 0, "1", 1]},
        {"sent_id": 3, "bbox": [0, 0, -1, 1]},
        {"sent_id": 5, "box": [0, 0, 1, 1]},
        {"sent_id": 6, "bbox": [0, 0, True, 1]},
    ]
    with pytest.raises(ValidationError) as info:
        P.parse_refexp(json.dumps(records).encode())
    assert [str(p) for p in info.value.problems] == [
        "record 1, sent_id 1: bbox must be [x, y, w, h] (4 numbers), got 3 values",
        "record 2, sent_id 2: bbox must hold 4 numbers, got [0, 0, '1', 1]",
        "record 3, sent_id 3: bbox width and height must not be negative, got [0, 0, -1, 1]",
        "record 4, sent_id 5: missing key 'bbox'",
        "record 5, sent_id 6: bbox must hold 4 numbers, got [0, 0, True, 1]",
    ]


def test_non_finite_numbers_are_not_json() -> None:
    # NaN / Infinity are not JSON; the parser says where they are.
    for bad in (b"NaN", b"Infinity", b"1e999"):
        with pytest.raises(ValidationError, match=r"not valid JSON: .*line 1 column 32"):
            P.parse_refexp(b'[{"sent_id": 1, "bbox": [0, 0, ' + bad + b", 1]}]")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.integers(0, 50)] * 2, *[st.integers(1, 50)] * 2), min_size=1, max_size=20
    )
)
def test_perfect_boxes_score_100_in_every_variant(boxes: list[tuple[int, ...]]) -> None:
    gt = gt_of([list(b) for b in boxes])
    records = [{"sent_id": i, "bbox": list(b)} for i, b in enumerate(boxes)][::-1]  # any order
    parsed = P.parse_refexp(json.dumps(records).encode())
    for variant in ("default", "strict"):
        assert refexp.score(gt, parsed, variant=variant).metrics["accuracy"] == 100.0
    if all(b[2] > 1 and b[3] > 1 for b in boxes):
        assert refexp.score(gt, parsed, variant="mattnet").metrics["accuracy"] == 100.0
