"""SNLI-VE 3-way accuracy (no official script; the rule is defined here).

Accuracy (percent) over the split's pairs, and per-class accuracy (the recall of each gold
class). Every pair of the split needs a prediction. The release has no pair with gold "-"
(no annotator majority): its generator keeps only SNLI pairs whose gold label is not "-".
Should a raw copy hold some, the converter drops them and lists their ids in the split
array ``dropped_gold_dash``; a prediction for such an id is refused with a message that
says why (it is not part of the benchmark), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalserver.metrics.columns import column, split_view
from evalserver.metrics.predictions import (
    SNLI_VE_LABELS,
    LabelPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result, percent
from unify.reader import UnifiedFile

__all__ = ["DROPPED_ARRAY", "LABELS", "VERSION", "SnliVeGroundTruth", "groundtruth", "score"]

VERSION = "snli_ve-acc-1"
#: Label names by the unified file's int8 code (contradiction 0, neutral 1, entailment 2).
LABELS = SNLI_VE_LABELS
#: The split array listing pairs the build dropped for a gold "-" label.
DROPPED_ARRAY = "dropped_gold_dash"
NO_GOLD = "-"


@dataclass(frozen=True, eq=False)
class SnliVeGroundTruth:
    """Gold label code per pair; ``dropped_ids`` are gold "-" pairs the build left out."""

    pair_ids: np.ndarray  # unicode [N]
    labels: np.ndarray  # int8 [N], 0..2
    dropped_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.pair_ids)
        if n == 0:
            raise ValueError("the ground truth holds no pair")
        if len(self.labels) != n:
            raise ValueError("labels need one entry per pair")
        labels = np.asarray(self.labels)
        if ((labels < 0) | (labels >= len(LABELS))).any():
            raise ValueError(f"labels must be codes 0..{len(LABELS) - 1} ({', '.join(LABELS)})")
        if len(np.unique(self.pair_ids)) != n:
            raise ValueError("pair ids of the ground truth are not unique")
        if set(self.dropped_ids) & set(np.asarray(self.pair_ids).tolist()):
            raise ValueError("a dropped gold '-' pair id is also a scored pair")

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> SnliVeGroundTruth:
        """From the release's JSON-lines records (``pairID``, ``gold_label``); gold "-"
        pairs are left out as the converter leaves them out."""
        code = {name: i for i, name in enumerate(LABELS)}
        ids: list[str] = []
        labels: list[int] = []
        dropped: list[str] = []
        for rec in records:
            if rec["gold_label"] == NO_GOLD:
                dropped.append(rec["pairID"])
                continue
            ids.append(rec["pairID"])
            labels.append(code[rec["gold_label"]])
        return cls(id_array(ids, str), np.asarray(labels, dtype=np.int8), tuple(dropped))


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> SnliVeGroundTruth:
    """The pairs of one split (a phase of this task is always one split)."""
    if len(splits) != 1:
        raise ValueError(f"{task} scores one split at a time, got {list(splits)}")
    view = split_view(uf, task, splits[0])
    dropped = column(view, DROPPED_ARRAY).tolist() if DROPPED_ARRAY in view.arrays else []
    return SnliVeGroundTruth(
        id_array(column(view, "id").tolist(), str),
        column(view, "label").astype(np.int8),
        tuple(dropped),
    )


def _match(
    gt: SnliVeGroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    """Every pair required; a dropped gold "-" id gets its own message, not "unknown"."""
    log = ProblemLog() if log is None else log
    n = len(gt.pair_ids)
    ids = gt.pair_ids
    if gt.dropped_ids:
        ids = np.concatenate([np.asarray(ids, dtype=str), np.asarray(gt.dropped_ids, dtype=str)])
    required = np.arange(len(ids)) < n
    match = match_ids(ids, predictions, log, required=required)
    given = np.flatnonzero(match.pred_row[n:] >= 0)
    listed = given[: log.room()]
    for k in listed:
        row = int(match.pred_row[n + k])
        log.add(
            f'gold label "{NO_GOLD}" in the raw file (no annotator majority): not part of '
            f"SNLI-VE, remove it from the prediction file",
            predictions.where(row),
            gt.dropped_ids[k],
            predictions.id_field,
        )
    log.skip(len(given) - len(listed))
    return match.pred_row[:n], log


def validate(
    gt: SnliVeGroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _match(gt, predictions, log)[1].listing()


def score(gt: SnliVeGroundTruth, predictions: LabelPredictions) -> Result:
    """``accuracy`` and ``accuracy_<class>`` in percent; confusion counts in details."""
    pred_row, log = _match(gt, predictions)
    log.raise_if_any()
    gold = np.asarray(gt.labels, dtype=np.int64)
    predicted = predictions.labels[pred_row].astype(np.int64)
    correct = predicted == gold
    metrics = {"accuracy": percent(int(correct.sum()), len(correct))}
    per_class: dict[str, Any] = {}
    for code, name in enumerate(LABELS):
        mask = gold == code
        if mask.any():
            metrics[f"accuracy_{name}"] = percent(int(correct[mask].sum()), int(mask.sum()))
        per_class[name] = {"count": int(mask.sum()), "correct": int(correct[mask].sum())}
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(confusion, (gold, predicted), 1)
    details: dict[str, Any] = {
        "per_class": per_class,
        "confusion": {"labels": list(LABELS), "gold_by_predicted": confusion.tolist()},
        "counts": {"scored": len(gold), "dropped_gold_dash": len(gt.dropped_ids)},
    }
    per_example = {"score": correct.astype(np.float64)}
    return Result(metrics, details, VERSION, "accuracy", True, per_example=per_example)
