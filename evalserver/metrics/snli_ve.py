"""SNLI-VE 3-way accuracy (no official script; the rule is defined here).

Accuracy (percent) over pairs whose gold label is entailment, neutral or contradiction,
and per-class accuracy (the recall of each gold class). Pairs with gold "-" (no annotator
majority; stored as label -1 when kept) are never scored: a prediction for one is accepted
and ignored, none is required.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalserver.metrics.predictions import (
    SNLI_VE_LABELS,
    LabelPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result, percent

__all__ = ["LABELS", "VERSION", "SnliVeGroundTruth", "score", "validate"]

VERSION = "snli_ve-acc-1"
#: Label names by the unified file's int8 code (contradiction 0, neutral 1, entailment 2).
LABELS = SNLI_VE_LABELS
UNSCORED = -1


@dataclass(frozen=True, eq=False)
class SnliVeGroundTruth:
    """Gold label code per pair (``UNSCORED`` for gold "-")."""

    pair_ids: np.ndarray  # unicode [N]
    labels: np.ndarray  # int8 [N]

    def __post_init__(self) -> None:
        n = len(self.pair_ids)
        if len(self.labels) != n:
            raise ValueError("labels need one entry per pair")
        if not (np.asarray(self.labels) >= 0).any():
            raise ValueError("the ground truth holds no scorable pair")
        if len(np.unique(self.pair_ids)) != n:
            raise ValueError("pair ids of the ground truth are not unique")

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> SnliVeGroundTruth:
        """From the release's JSON-lines records (``pairID``, ``gold_label``)."""
        code = {name: i for i, name in enumerate(LABELS)}
        ids: list[str] = []
        labels: list[int] = []
        for rec in records:
            ids.append(rec["pairID"])
            labels.append(code.get(rec["gold_label"], UNSCORED))
        return cls(id_array(ids, str), np.asarray(labels, dtype=np.int8))


def _match(
    gt: SnliVeGroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    log = ProblemLog() if log is None else log
    match = match_ids(gt.pair_ids, predictions, log, required=np.asarray(gt.labels) >= 0)
    return match.pred_row, log


def validate(
    gt: SnliVeGroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _match(gt, predictions, log)[1].listing()


def score(gt: SnliVeGroundTruth, predictions: LabelPredictions) -> Result:
    """``accuracy`` and ``accuracy_<class>`` in percent; confusion counts in details."""
    pred_row, log = _match(gt, predictions)
    log.raise_if_any()
    gold = np.asarray(gt.labels, dtype=np.int64)
    scored = gold >= 0
    gold = gold[scored]
    predicted = predictions.labels[pred_row[scored]].astype(np.int64)
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
        "counts": {"scored": int(scored.sum()), "unscored_gold_dash": int((~scored).sum())},
    }
    return Result(metrics, details, VERSION, "accuracy", True)
