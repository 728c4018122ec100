"""Referring expression comprehension accuracy (refcoco, refcoco_plus, refcocog).

One prediction per expression (sentence): a box [x, y, w, h] in pixels (COCO layout). The
expression counts as correct when the box overlaps the target box enough; accuracy is in
percent, per split and over all given splits.

Three named IoU rules, because the literature uses three and they disagree at the edge:
- ``default`` ("refexp-iou-ge0.5"): continuous coordinates, inter / (area_a + area_b -
  inter), correct iff IoU >= 0.5.
- ``mattnet`` ("refexp-mattnet-iou-ge0.5"): MAttNet's ``computeIoU``: intersection with
  inclusive pixel ends ((x2 - x1 + 1) * (y2 - y1 + 1), with x2 = x + w - 1) and counted only
  when x1 < x2 and y1 < y2 STRICTLY (a one-pixel-wide overlap counts 0), union with the
  plain w * h areas; correct iff IoU >= 0.5.
- ``strict`` ("refexp-iou-gt0.5"): 12-in-1's rule: continuous IoU, correct iff IoU > 0.5.

Exactness at the boundary: the continuous IoU is ``pycocotools.mask.iou`` (the field's
standard box IoU, iscrowd 0), whose C code does the same IEEE float64 operations in the same
order as the plain-Python formula (built with ``-std=c99``, so no fused multiply-add); the
tests check it bit for bit against plain Python. The target boxes must therefore be the
release's float64 values: a unified file older than schema 1.1 stored them as float32
(123.45 -> 123.4499969...), which flips verdicts of predictions exactly on IoU = 0.5, so
``groundtruth`` refuses it and says to rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from evalserver.metrics.columns import column, eval_splits, require_schema, split_view
from evalserver.metrics.predictions import (
    BoxPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result, percent
from unify.reader import UnifiedFile

__all__ = [
    "MIN_SCHEMA",
    "VARIANTS",
    "RefExpGroundTruth",
    "groundtruth",
    "iou",
    "score",
    "validate",
    "version_of",
]

#: The first schema that stores refer boxes at the release's precision (float64).
MIN_SCHEMA = (1, 1)
#: Boxes per pycocotools call: a block's IoU matrix is BLOCK x BLOCK, its diagonal is kept
#: (16: 11 ms for 21k expressions, measured; larger blocks waste quadratic work).
BLOCK = 16

Variant = Literal["default", "mattnet", "strict"]
VARIANTS: dict[str, str] = {
    "default": "refexp-iou-ge0.5",
    "mattnet": "refexp-mattnet-iou-ge0.5",
    "strict": "refexp-iou-gt0.5",
}


def version_of(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown IoU variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


@dataclass(frozen=True, eq=False)
class RefExpGroundTruth:
    """Target box per expression, with the split it belongs to (several splits allowed)."""

    sent_ids: np.ndarray  # int64 [N]
    boxes: np.ndarray  # float64 [N, 4], x, y, w, h
    splits: Sequence[str]  # [N]

    def __post_init__(self) -> None:
        n = len(self.sent_ids)
        if n == 0:
            raise ValueError("the ground truth holds no expression")
        if np.shape(self.boxes) != (n, 4) or len(self.splits) != n:
            raise ValueError("boxes ([N, 4]) and splits need one entry per expression")
        if len(np.unique(self.sent_ids)) != n:
            raise ValueError("sent ids of the ground truth are not unique")


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...] = ()) -> RefExpGroundTruth:
    """Target boxes of ``splits`` (all of the task's eval splits when empty), in order.

    Refuses a file older than schema 1.1 (float32 boxes) with a message to rebuild it.
    """
    require_schema(uf, MIN_SCHEMA, f"stores {task} target boxes at the release's precision")
    names = tuple(splits) or eval_splits(uf, task)
    if not names:
        raise ValueError(f"{uf.path}: task {task!r} has no split with role 'eval'")
    ids, boxes, split_of = [], [], []
    for name in names:
        view = split_view(uf, task, name)
        n = view.num_examples
        raw_ids = column(view, "id")
        ids.append(id_array(raw_ids.tolist() if raw_ids.dtype == object else raw_ids, int))
        bbox = column(view, "bbox")
        if bbox.dtype != np.float64:
            raise ValueError(f"{uf.path}: {task}/{name}/bbox is {bbox.dtype}, not float64")
        boxes.append(bbox.reshape(n, 4))
        split_of += [name] * n
    return RefExpGroundTruth(np.concatenate(ids), np.concatenate(boxes), split_of)


def _coco_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise continuous IoU by ``pycocotools.mask.iou`` (boxes, iscrowd 0).

    pycocotools computes all pairs; blocks of ``BLOCK`` rows keep that cheap and the
    diagonal is each row's pair.
    """
    try:
        from pycocotools import mask as coco_mask
    except ImportError:  # pragma: no cover - pycocotools is a dependency of the scorers
        raise ImportError(
            "refexp scoring needs pycocotools (the field's standard box IoU): "
            "pip install pycocotools"
        ) from None
    out = np.zeros(len(a), dtype=np.float64)
    for start in range(0, len(a), BLOCK):
        p = np.ascontiguousarray(a[start : start + BLOCK])
        g = np.ascontiguousarray(b[start : start + BLOCK])
        ious = np.asarray(coco_mask.iou(p, g, np.zeros(len(g), dtype=np.uint8)))
        out[start : start + len(p)] = np.diagonal(ious)
    return out


def _mattnet_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MAttNet's ``computeIoU``, the same float64 operations in the same order."""
    area = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3]
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2] - 1, b[:, 0] + b[:, 2] - 1)
    y2 = np.minimum(a[:, 1] + a[:, 3] - 1, b[:, 1] + b[:, 3] - 1)
    overlap = (x1 < x2) & (y1 < y2)
    inter = np.where(overlap, (x2 - x1 + 1) * (y2 - y1 + 1), 0.0)
    union = area - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        # A degenerate pair (both boxes empty) has no overlap to speak of: IoU 0.
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou(pred: np.ndarray, gold: np.ndarray, variant: str = "default") -> np.ndarray:
    """Row-wise IoU of two [N, 4] arrays of [x, y, w, h] boxes under a named rule."""
    version_of(variant)
    a = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(gold, dtype=np.float64).reshape(-1, 4)
    return _mattnet_iou(a, b) if variant == "mattnet" else _coco_iou(a, b)


def _correct(values: np.ndarray, variant: str) -> np.ndarray:
    return values > 0.5 if variant == "strict" else values >= 0.5


def validate(
    gt: RefExpGroundTruth, predictions: BoxPredictions, log: ProblemLog | None = None
) -> list[Problem]:
    log = ProblemLog() if log is None else log
    match_ids(gt.sent_ids, predictions, log)
    return log.listing()


def score(
    gt: RefExpGroundTruth, predictions: BoxPredictions, *, variant: str = "default"
) -> Result:
    """Accuracy (percent) overall and per split under the named IoU rule."""
    version = version_of(variant)
    log = ProblemLog()
    match = match_ids(gt.sent_ids, predictions, log)
    log.raise_if_any()
    values = iou(predictions.boxes[match.pred_row], gt.boxes, variant)
    correct = _correct(values, variant)
    splits = np.asarray(gt.splits, dtype=str)
    metrics = {"accuracy": percent(int(correct.sum()), len(correct))}
    per_split: dict[str, Any] = {}
    for split in dict.fromkeys(gt.splits):
        mask = splits == split
        metrics[f"accuracy_{split}"] = percent(int(correct[mask].sum()), int(mask.sum()))
        per_split[split] = {"accuracy": metrics[f"accuracy_{split}"], "count": int(mask.sum())}
    details: dict[str, Any] = {"variant": variant, "per_split": per_split}
    per_example = {"score": correct.astype(np.float64), "iou": values}
    return Result(metrics, details, version, "accuracy", True, per_example=per_example)
