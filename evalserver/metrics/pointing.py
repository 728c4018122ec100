"""Visual7W pointing accuracy (yukezhu/visual7w-toolkit ``evaluate.py``, leaderboard-strict).

Each question has 4 candidate boxes; the answer is a box id; correct iff it equals the
gold box id. Accuracy in percent, overall and per question type.

Deliberate differences from the toolkit (docs/metrics.md): the toolkit skips questions
missing from the result file and aborts on an unknown qa_id; here every question must be
answered exactly once, unknown ids are rejected, and a box id that is not one of the
question's 4 candidates is a validation problem (it cannot be right, and it almost always
means ids were mixed up, e.g. a candidate index 0-3 sent instead of a box id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalserver.metrics.phaseread import read_phase
from evalserver.metrics.predictions import ChoicePredictions, Problem, ProblemLog, match_ids
from evalserver.metrics.result import Result, percent
from unify.reader import UnifiedFile

__all__ = ["VERSION", "PointingGroundTruth", "groundtruth", "score", "validate"]

VERSION = "pointing-1"


@dataclass(frozen=True, eq=False)
class PointingGroundTruth:
    """Candidate box ids per question and the index of the gold one."""

    qa_ids: np.ndarray  # int64 [N]
    candidate_box_ids: np.ndarray  # int64 [N, 4]
    label: np.ndarray  # int64 [N], index of the gold box in the candidates
    types: Sequence[str] | None = None  # question type ("which", ...)

    def __post_init__(self) -> None:
        n = len(self.qa_ids)
        if n == 0:
            raise ValueError("the ground truth holds no question")
        if np.ndim(self.candidate_box_ids) != 2 or len(self.candidate_box_ids) != n:
            raise ValueError("candidate_box_ids must be [N, k]")
        label = np.asarray(self.label)
        if len(label) != n or label.min() < 0 or label.max() >= self.candidate_box_ids.shape[1]:
            raise ValueError("label must index the candidates of each question")
        if self.types is not None and len(self.types) != n:
            raise ValueError("types needs one entry per question")
        if len(np.unique(self.qa_ids)) != n:
            raise ValueError("qa ids of the ground truth are not unique")

    @property
    def gold_box_ids(self) -> np.ndarray:
        return np.take_along_axis(
            np.asarray(self.candidate_box_ids), np.asarray(self.label)[:, None], axis=1
        )[:, 0]


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> PointingGroundTruth:
    """Candidate box ids, the gold one's index and the question type, per question."""
    phase = read_phase(uf, task, splits)
    return PointingGroundTruth(
        phase.ids(int),
        phase.column("candidate_box_ids").astype(np.int64),
        phase.column("label").astype(np.int64),
        phase.strings("type") if phase.has("type") else None,
    )


def _check(
    gt: PointingGroundTruth, predictions: ChoicePredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    log = ProblemLog() if log is None else log
    match = match_ids(gt.qa_ids, predictions, log)
    known = np.flatnonzero(match.gt_row >= 0)
    candidates = np.asarray(gt.candidate_box_ids)[match.gt_row[known]]
    chosen = predictions.choices[known]
    outside = known[~(candidates == chosen[:, None]).any(axis=1)]
    listed = outside[: log.room()]
    for p in listed:
        options = ", ".join(str(int(b)) for b in gt.candidate_box_ids[match.gt_row[p]])
        log.add(
            f"box_id {int(predictions.choices[p])} is not one of the question's candidates "
            f"({options})",
            predictions.where(p),
            int(predictions.ids[p]),
            "qa_id",
        )
    log.skip(len(outside) - len(listed))
    return match.pred_row, log


def validate(
    gt: PointingGroundTruth, predictions: ChoicePredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _check(gt, predictions, log)[1].listing()


def score(gt: PointingGroundTruth, predictions: ChoicePredictions) -> Result:
    """Pointing accuracy (percent), overall and per question type."""
    pred_row, log = _check(gt, predictions)
    log.raise_if_any()
    correct = predictions.choices[pred_row] == gt.gold_box_ids
    metrics = {"accuracy": percent(int(correct.sum()), len(correct))}
    details: dict[str, Any] = {"counts": {"questions": len(correct), "correct": int(correct.sum())}}
    if gt.types is not None:
        types = np.asarray(gt.types, dtype=str)
        details["per_type"] = {
            t: {
                "accuracy": percent(int(correct[types == t].sum()), int((types == t).sum())),
                "count": int((types == t).sum()),
            }
            for t in dict.fromkeys(gt.types)
        }
    return Result(
        metrics,
        details,
        VERSION,
        "accuracy",
        True,
        per_example={"score": correct.astype(np.float64)},
        example_ids=gt.qa_ids,
    )
