"""NLVR2 accuracy and consistency (lil-lab/nlvr, ``nlvr2/eval/metrics.py``).

accuracy = correct / labelled examples; consistency = fraction of distinct sentences whose
examples are ALL correct, a sentence being the identifier with its third dash-separated
field (the image pair) blanked: "dev-850-1-0" -> "dev-850--0". That key is computed in one
place, ``unify.converters.nlvr2.sentence_key``: the converter stores it as the
``sentence_key`` column, which the ground truth reads; ground truth made from release
records calls the same function. Labels compare case-insensitively. The official script
prints both as fractions; ``details["official"]`` holds them to full float precision
(parity with the golden outputs), ``metrics`` holds the same values in percent like every
other scorer.

Not copied (docs/metrics.md): a missing prediction makes the script exit without a score;
extra or duplicate rows are silently accepted. Here both are validation problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from evalserver.metrics.phaseread import read_phase
from evalserver.metrics.predictions import (
    LabelPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result
from unify.converters.nlvr2 import sentence_key
from unify.reader import UnifiedFile

__all__ = ["VERSION", "Nlvr2GroundTruth", "groundtruth", "score", "validate"]

VERSION = "nlvr2-1"


@dataclass(frozen=True, eq=False)
class Nlvr2GroundTruth:
    """Identifier, boolean label and consistency group (sentence key) of every example."""

    identifiers: np.ndarray  # unicode [N]
    labels: np.ndarray  # bool [N], True = "True"
    sentence_keys: Sequence[str]  # [N], unify.converters.nlvr2.sentence_key

    def __post_init__(self) -> None:
        n = len(self.identifiers)
        if n == 0:
            raise ValueError("the ground truth holds no example")
        if len(self.labels) != n or len(self.sentence_keys) != n:
            raise ValueError("labels and sentence keys need one entry per identifier")
        if len(np.unique(self.identifiers)) != n:
            raise ValueError("identifiers of the ground truth are not unique")

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Nlvr2GroundTruth:
        """From the official JSON-lines records (``identifier``, ``label`` "True"/"False"),
        the sentence key computed as the converter computes it."""
        ids: list[str] = []
        labels: list[bool] = []
        for rec in records:
            ids.append(rec["identifier"])
            labels.append(str(rec["label"]).lower() == "true")
        keys = [sentence_key(i.split("-")) for i in ids]
        return cls(id_array(ids, str), np.asarray(labels, dtype=bool), keys)

    @cached_property
    def sentence_index(self) -> np.ndarray:
        """int64 [N]: index of each example's sentence key (the consistency group)."""
        keys: dict[str, int] = {}
        return np.fromiter(
            (keys.setdefault(k, len(keys)) for k in self.sentence_keys),
            dtype=np.int64,
            count=len(self.identifiers),
        )


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> Nlvr2GroundTruth:
    """Identifiers, labels and the converter's ``sentence_key`` column."""
    phase = read_phase(uf, task, splits)
    return Nlvr2GroundTruth(
        phase.ids(str), phase.column("label").astype(np.int64) == 1, phase.strings("sentence_key")
    )


def _match(
    gt: Nlvr2GroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    log = ProblemLog() if log is None else log
    match = match_ids(gt.identifiers, predictions, log)
    return match.pred_row, log


def validate(
    gt: Nlvr2GroundTruth, predictions: LabelPredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _match(gt, predictions, log)[1].listing()


def score(gt: Nlvr2GroundTruth, predictions: LabelPredictions) -> Result:
    """Accuracy and consistency, in percent; the official fractions in ``details``."""
    pred_row, log = _match(gt, predictions)
    log.raise_if_any()
    predicted = predictions.labels[pred_row].astype(bool)
    correct = predicted == np.asarray(gt.labels, dtype=bool)
    groups = gt.sentence_index
    n_groups = int(groups.max()) + 1
    wrong_per_group = np.bincount(groups, weights=~correct, minlength=n_groups)
    n_correct = int(correct.sum())
    n_consistent = int((wrong_per_group == 0).sum())
    accuracy = float(n_correct) / len(correct)
    consistency = float(n_consistent) / n_groups
    metrics = {"accuracy": 100 * accuracy, "consistency": 100 * consistency}
    details: dict[str, Any] = {
        "official": {"accuracy": accuracy, "consistency": consistency},
        "counts": {
            "examples": len(correct),
            "correct": n_correct,
            "sentences": n_groups,
            "consistent_sentences": n_consistent,
        },
    }
    return Result(
        metrics,
        details,
        VERSION,
        "accuracy",
        True,
        per_example={"score": correct.astype(np.float64)},
        example_ids=gt.identifiers,
    )
