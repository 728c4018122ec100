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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from evalserver.metrics.predictions import BoxPredictions, Problem, ProblemLog, match_ids
from evalserver.metrics.result import Result, percent

__all__ = ["VARIANTS", "RefExpGroundTruth", "iou", "score", "validate", "version_of"]

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


def iou(pred: np.ndarray, gold: np.ndarray, variant: str = "default") -> np.ndarray:
    """Row-wise IoU of two [N, 4] arrays of [x, y, w, h] boxes under a named rule."""
    version_of(variant)
    a = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(gold, dtype=np.float64).reshape(-1, 4)
    area = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3]
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        if variant == "mattnet":
            x2 = np.minimum(a[:, 0] + a[:, 2] - 1, b[:, 0] + b[:, 2] - 1)
            y2 = np.minimum(a[:, 1] + a[:, 3] - 1, b[:, 1] + b[:, 3] - 1)
            overlap = (x1 < x2) & (y1 < y2)
            inter = np.where(overlap, (x2 - x1 + 1) * (y2 - y1 + 1), 0.0)
        else:
            x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
            y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = area - inter
        # A degenerate pair (both boxes empty) has no overlap to speak of: IoU 0.
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


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
    details: dict[str, Any] = {
        "variant": variant,
        "per_split": per_split,
        "per_sentence_iou": dict(zip(gt.sent_ids.tolist(), values.tolist(), strict=True)),
    }
    return Result(metrics, details, version, "accuracy", True)
