"""GuessWhat?! guesser accuracy, on all games and on successful games, both labelled.

Correct iff the chosen object id equals the game's target ``object_id``. The GuessWhat?!
authors report the error on games whose status is "success" only; 12-in-1 reports accuracy
on all games. Both are computed; the leaderboard's primary metric is ``accuracy`` (all
games), ``accuracy_success`` is the other. An object id that is not one of the game's
objects is a validation problem when the ground truth lists the objects.
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

__all__ = ["VERSION", "GuessWhatGroundTruth", "groundtruth", "score", "validate"]

VERSION = "guesswhat-1"
SUCCESS = "success"


@dataclass(frozen=True, eq=False)
class GuessWhatGroundTruth:
    """Target object per game, the game's status, and (optionally) its objects' ids."""

    game_ids: np.ndarray  # int64 [N]
    object_ids: np.ndarray  # int64 [N], the target
    status: Sequence[str]  # "success" | "failure" | "incomplete"
    object_offsets: np.ndarray | None = None  # int64 [N + 1]
    candidate_ids: np.ndarray | None = None  # int64 [total objects]

    def __post_init__(self) -> None:
        n = len(self.game_ids)
        if n == 0:
            raise ValueError("the ground truth holds no game")
        if len(self.object_ids) != n or len(self.status) != n:
            raise ValueError("object_ids and status need one entry per game")
        if (self.object_offsets is None) != (self.candidate_ids is None):
            raise ValueError("object_offsets and candidate_ids go together")
        if self.object_offsets is not None and len(self.object_offsets) != n + 1:
            raise ValueError("object_offsets needs N + 1 entries")
        if len(np.unique(self.game_ids)) != n:
            raise ValueError("game ids of the ground truth are not unique")


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> GuessWhatGroundTruth:
    """Target object, status and the ids of the game's objects, per game."""
    phase = read_phase(uf, task, splits)
    offsets, candidates = None, None
    if phase.has("objects"):
        objects = phase.ragged("objects")
        offsets, candidates = objects.offsets, objects.values["ids"].astype(np.int64)
    return GuessWhatGroundTruth(
        phase.ids(int),
        phase.column("object_id").astype(np.int64),
        phase.strings("status"),
        offsets,
        candidates,
    )


def _check(
    gt: GuessWhatGroundTruth, predictions: ChoicePredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    log = ProblemLog() if log is None else log
    match = match_ids(gt.game_ids, predictions, log)
    if gt.object_offsets is not None and gt.candidate_ids is not None:
        offsets = np.asarray(gt.object_offsets)
        candidates = np.asarray(gt.candidate_ids)
        game_of = np.repeat(np.arange(len(gt.game_ids)), np.diff(offsets))
        # A (game row, object id) pair is valid iff it appears among the game's objects.
        valid_pairs = set(zip(game_of.tolist(), candidates.tolist(), strict=True))
        known = np.flatnonzero(match.gt_row >= 0)
        pairs = zip(match.gt_row[known].tolist(), predictions.choices[known].tolist(), strict=True)
        outside = [
            p for p, pair in zip(known.tolist(), pairs, strict=True) if pair not in valid_pairs
        ]
        listed = outside[: log.room()]
        for p in listed:
            log.add(
                f"object_id {int(predictions.choices[p])} is not one of the game's objects",
                predictions.where(p),
                int(predictions.ids[p]),
                "game_id",
            )
        log.skip(len(outside) - len(listed))
    return match.pred_row, log


def validate(
    gt: GuessWhatGroundTruth, predictions: ChoicePredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _check(gt, predictions, log)[1].listing()


def score(gt: GuessWhatGroundTruth, predictions: ChoicePredictions) -> Result:
    """``accuracy`` on all games (12-in-1) and ``accuracy_success`` on successful games
    (the GuessWhat?! authors' protocol, who print the error = 100 - accuracy_success)."""
    pred_row, log = _check(gt, predictions)
    log.raise_if_any()
    correct = predictions.choices[pred_row] == np.asarray(gt.object_ids)
    status = np.asarray(gt.status, dtype=str)
    success = status == SUCCESS
    metrics = {"accuracy": percent(int(correct.sum()), len(correct))}
    if success.any():
        metrics["accuracy_success"] = percent(int(correct[success].sum()), int(success.sum()))
    details: dict[str, Any] = {
        "labels": {
            "accuracy": "all games (12-in-1)",
            "accuracy_success": "games with status 'success' only (GuessWhat?! authors)",
        },
        "per_status": {
            s: {
                "accuracy": percent(int(correct[status == s].sum()), int((status == s).sum())),
                "count": int((status == s).sum()),
            }
            for s in dict.fromkeys(gt.status)
        },
    }
    return Result(
        metrics,
        details,
        VERSION,
        "accuracy",
        True,
        per_example={"score": correct.astype(np.float64)},
        example_ids=gt.game_ids,
    )
