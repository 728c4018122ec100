"""refcoco/refcoco_plus/refcocog: IoU rules at their boundaries, per split, box checks, and
bit-exact agreement with the official float64 arithmetic on boxes built by the converter."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import predictions as P
from evalserver.metrics import refexp
from evalserver.metrics.predictions import ValidationError
from unify.build import BuildOptions, run_build
from unify.errors import SchemaError
from unify.reader import UnifiedFile
from unify.sample.refer_format import CocoAnnotation, CocoImage, Ref, write_refer


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


# --------------------------------------------------------------------------- exactness
# Predictions exactly on the IoU = 0.5 boundary, built through the real converter from an
# instances.json with two-decimal COCO-like boxes: the stored target must be the release's
# float64 value, or the verdict flips. "Official" = plain Python float64 arithmetic on the
# values the standard json module reads, as the refer toolkit / MAttNet code computes it.


def official_continuous(box1: list[float], box2: list[float]) -> float:
    """Continuous IoU of [x, y, w, h] boxes, written out as the reference code does."""
    inter_x1 = max(box1[0], box2[0])
    inter_y1 = max(box1[1], box2[1])
    inter_x2 = min(box1[0] + box1[2], box2[0] + box2[2])
    inter_y2 = min(box1[1] + box1[3], box2[1] + box2[3])
    inter = max(inter_x2 - inter_x1, 0) * max(inter_y2 - inter_y1, 0)
    union = box1[2] * box1[3] + box2[2] * box2[3] - inter
    return float(inter) / union


def official_mattnet(box1: list[float], box2: list[float]) -> float:
    """MAttNet's computeIoU (inclusive pixel ends, strict overlap test)."""
    inter_x1 = max(box1[0], box2[0])
    inter_y1 = max(box1[1], box2[1])
    inter_x2 = min(box1[0] + box1[2] - 1, box2[0] + box2[2] - 1)
    inter_y2 = min(box1[1] + box1[3] - 1, box2[1] + box2[3] - 1)
    if inter_x1 < inter_x2 and inter_y1 < inter_y2:
        inter = (inter_x2 - inter_x1 + 1) * (inter_y2 - inter_y1 + 1)
    else:
        inter = 0
    union = box1[2] * box1[3] + box2[2] * box2[3] - inter
    return float(inter) / union


OFFICIAL = {
    "default": (official_continuous, lambda v: v >= 0.5),
    "mattnet": (official_mattnet, lambda v: v >= 0.5),
    "strict": (official_continuous, lambda v: v > 0.5),
}

# (variant, predicted box, target box): found by search so that float32 storage of the
# target flips the official verdict (checked below, so the test can fail).
BOUNDARY = [
    ("default", [93.73, 398.26, 193.4, 168.11], [93.73, 398.26, 96.7, 168.11]),
    ("mattnet", [93.73, 398.26, 193.4, 168.11], [93.73, 398.26, 96.7, 168.11]),
    ("strict", [287.53, 351.53, 288.52, 184.61], [287.53, 351.53, 144.26, 184.61]),
]


def _float32(box: list[float]) -> list[float]:
    return [float(np.float32(v)) for v in box]


def _boundary_build(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A refcoco build whose val targets are the BOUNDARY targets (one image each)."""
    images: list[CocoImage] = []
    anns: list[CocoAnnotation] = []
    refs: list[Ref] = []
    for i, (_, _, target) in enumerate(BOUNDARY):
        images.append({"id": 100 + i, "width": 640, "height": 480, "flickr_url": ""})
        anns.append({"id": 10 + i, "image_id": 100 + i, "category_id": 1, "bbox": target})
        refs.append(
            {
                "ref_id": i,
                "ann_id": 10 + i,
                "image_id": 100 + i,
                "category_id": 1,
                "split": "val",
                "sentences": [{"sent_id": i, "sent": f"thing {i}"}],
            }
        )
    raw = tmp_path / "raw"
    write_refer(raw / "refcoco", "refs(unc).p", refs, images, anns)
    out = tmp_path / "refcoco.h5"
    run_build(raw, out, BuildOptions(tasks=("refcoco",), clean=False))
    # The targets as the official code reads them: the standard json module.
    doc = json.loads((raw / "refcoco" / "instances.json").read_text())
    return out, doc["annotations"]


def test_boundary_predictions_match_official_float64(tmp_path: Path) -> None:
    out, anns = _boundary_build(tmp_path)
    with UnifiedFile(out) as uf:
        gt = refexp.groundtruth(uf, "refcoco", ("val",))
    assert gt.boxes.dtype == np.float64
    assert gt.boxes.tolist() == [a["bbox"] for a in anns]  # bit for bit
    for i, (variant, pred, _) in enumerate(BOUNDARY):
        target = anns[i]["bbox"]
        formula, correct = OFFICIAL[variant]
        official = formula(pred, target)
        # The case is on the boundary: float32 storage would flip the official verdict.
        assert correct(official) != correct(formula(pred, _float32(target))), variant
        got = refexp.iou(np.array([pred]), gt.boxes[i : i + 1], variant)[0]
        assert got == official, variant  # bit for bit
        one = refexp.RefExpGroundTruth(gt.sent_ids[i : i + 1], gt.boxes[i : i + 1], ["val"])
        records = json.dumps([{"sent_id": i, "bbox": pred}]).encode()
        result = refexp.score(one, P.parse_refexp(records), variant=variant)
        assert result.metrics["accuracy"] == (100.0 if correct(official) else 0.0), variant
        assert result.per_example["score"].tolist() == [1.0 if correct(official) else 0.0]
        assert result.per_example["iou"].tolist() == [official]


def test_a_file_older_than_schema_1_1_is_refused(tmp_path: Path) -> None:
    out, _ = _boundary_build(tmp_path)
    with h5py.File(out, "r+") as f:
        f.attrs["schema_version"] = "1.0"
    with UnifiedFile(out) as uf, pytest.raises(SchemaError, match=r"schema 1\.0 .*rebuild"):
        refexp.groundtruth(uf, "refcoco", ())


def test_groundtruth_defaults_to_every_eval_split(tmp_path: Path) -> None:
    out, _ = _boundary_build(tmp_path)
    with UnifiedFile(out) as uf:
        gt = refexp.groundtruth(uf, "refcoco", ())
        with pytest.raises(SchemaError, match="split 'testC' not in task 'refcoco'"):
            refexp.groundtruth(uf, "refcoco", ("testC",))
    assert gt.sent_ids.tolist() == [0, 1, 2] and list(gt.splits) == ["val"] * 3


two_decimals = st.integers(0, 50_000).map(lambda v: v / 100)
sizes = st.integers(1, 30_000).map(lambda v: v / 100)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(two_decimals, two_decimals, sizes, sizes),
    st.tuples(two_decimals, two_decimals, sizes, sizes),
    st.sampled_from([0.0, 0.01, -0.01]),
)
def test_pycocotools_iou_is_bit_identical_to_the_official_arithmetic(
    gold: tuple[float, ...], other: tuple[float, ...], nudge: float
) -> None:
    """Random boxes, and boxes twice the target's width (IoU 0.5 up to rounding)."""
    gold_box = list(gold)
    half = [gold[0], gold[1], round(2 * gold[2] + nudge, 2), gold[3]]
    for pred in (list(other), half):
        want = official_continuous(pred, gold_box)
        assert refexp.iou(np.array([pred]), np.array([gold_box]))[0] == want
        if all(v > 1 for v in (pred[2], pred[3], gold[2], gold[3])):
            assert refexp.iou(np.array([pred]), np.array([gold_box]), "mattnet")[0] == (
                official_mattnet(pred, gold_box)
            )


def test_blocks_of_pycocotools_calls_keep_row_order() -> None:
    rng = np.random.default_rng(0)
    n = refexp.BLOCK * 2 + 7
    gold = np.round(rng.uniform(1, 300, size=(n, 4)), 2)
    pred = gold.copy()
    pred[:, 2] *= rng.choice([1.0, 2.0, 4.0], size=n)
    got = refexp.iou(pred, gold)
    want = [official_continuous(p, g) for p, g in zip(pred.tolist(), gold.tolist(), strict=True)]
    assert got.tolist() == want
