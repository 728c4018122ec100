"""GQA accuracy and its companions, as the official ``eval.py`` of the GQA release (v1.2).

Rule (per balanced question): correct iff the prediction string equals the answer string,
no normalisation. Reported like the official script, in percent: ``accuracy``, ``binary``
and ``open`` (open = structural type "query"), per structural / semantic type and per
question length (words); ``consistency`` over entailed questions when predictions for the
split's all-questions file are given; ``validity`` and ``plausibility`` when the
``*_choices.json`` content is given; ``distribution`` (chi-square, lower is better).

Choices where the official script is silent or wrong (docs/metrics.md):
- Without choices, validity/plausibility are NOT reported (the script reports 0).
- "Balanced question" = a question of the balanced split given as ground truth (the
  script uses the ``isBalanced`` flag of its questions file; our minval_all split only
  holds questions of minval images, some of whose balanced questions belong to trainval).
- Consistency mode starts when the predictions contain any all-questions id; then every
  all-questions id must be predicted (the script's ``--consistency`` requirement).
- An entailed id absent from the ground truth is skipped (the script raises KeyError);
  their number is reported in details.
- Per steps-number accuracy needs the questions' programs, which the unified file does not
  keep; it is not reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from evalserver.metrics.predictions import (
    AnswerPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result

__all__ = ["VERSION", "Choices", "GqaGroundTruth", "score", "validate"]

VERSION = "gqa-eval-1.2"

#: ``{questionId: {"valid": [answers], "plausible": [answers]}}``, the choices file.
Choices = Mapping[str, Mapping[str, Sequence[str]]]

#: The official ``belongs``: a detailed type containing "Common" accepts these answers.
_COMMON_GROUP = ("color", "material", "shape")


@dataclass(frozen=True, eq=False)
class GqaGroundTruth:
    """Questions of a balanced split, then (optionally) the extra all-questions rows.

    Rows ``[0, num_balanced)`` are scored; the rest exist only so that consistency can look
    up entailed questions' answers and so that their ids are accepted in predictions.
    ``group_global`` is "" where the release has null. Rows keep the questions file order,
    which fixes the float summation order of consistency and distribution.
    """

    ids: np.ndarray  # unicode [N]
    answers: Sequence[str]
    structural: Sequence[str]
    semantic: Sequence[str]
    detailed: Sequence[str]
    group_global: Sequence[str]
    entailed_offsets: np.ndarray  # int64 [N + 1]
    entailed: Sequence[str]
    num_balanced: int
    question_words: np.ndarray | None = None  # int64 [N], words per question

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.num_balanced <= 0 or self.num_balanced > n:
            raise ValueError("the ground truth needs at least one balanced question")
        for name in ("answers", "structural", "semantic", "detailed", "group_global"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs one entry per question")
        if len(self.entailed_offsets) != n + 1:
            raise ValueError("entailed_offsets needs N + 1 entries")
        if len(np.unique(self.ids)) != n:
            raise ValueError("question ids of the ground truth are not unique")

    @property
    def has_all_questions(self) -> bool:
        return len(self.ids) > self.num_balanced

    @classmethod
    def from_questions(
        cls,
        balanced: Mapping[str, Mapping[str, Any]],
        all_questions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> GqaGroundTruth:
        """From official ``*_balanced_questions.json`` (and ``*_all_questions.json``) dicts."""
        records = list(balanced.items())
        if all_questions is not None:
            records += [(q, r) for q, r in all_questions.items() if q not in balanced]
        offsets = [0]
        entailed: list[str] = []
        for _, rec in records:
            entailed.extend(str(e) for e in rec.get("entailed") or [])
            offsets.append(len(entailed))
        return cls(
            ids=id_array([q for q, _ in records], str),
            answers=[r["answer"] for _, r in records],
            structural=[r["types"]["structural"] for _, r in records],
            semantic=[r["types"]["semantic"] for _, r in records],
            detailed=[r["types"]["detailed"] for _, r in records],
            group_global=[r["groups"].get("global") or "" for _, r in records],
            entailed_offsets=np.asarray(offsets, dtype=np.int64),
            entailed=entailed,
            num_balanced=len(balanced),
            question_words=np.asarray([len(r["question"].split()) for _, r in records]),
        )

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {q: i for i, q in enumerate(self.ids.tolist())}


def _match(
    gt: GqaGroundTruth, predictions: AnswerPredictions, log: ProblemLog | None = None
) -> tuple[np.ndarray, ProblemLog]:
    """Balanced ids required; all-questions ids allowed, and all required once one is given."""
    log = ProblemLog() if log is None else log
    required = np.zeros(len(gt.ids), dtype=bool)
    required[: gt.num_balanced] = True
    probe = ProblemLog(cap=0)
    match = match_ids(gt.ids, predictions, probe, required=required)
    if gt.has_all_questions and (match.pred_row[gt.num_balanced :] >= 0).any():
        required[:] = True
    hint = "not a question of this split's balanced or all-questions file"
    if not gt.has_all_questions:
        hint = "not a balanced question of this split (all-questions ids need the all split)"
    match = match_ids(gt.ids, predictions, log, required=required, unknown_hint=hint)
    return match.pred_row, log


def validate(
    gt: GqaGroundTruth, predictions: AnswerPredictions, log: ProblemLog | None = None
) -> list[Problem]:
    return _match(gt, predictions, log)[1].listing()


def _avg(values: Sequence[float]) -> float:
    """The official ``avg``: 0 for an empty list, else float(sum(l)) / len(l) (left to right)."""
    if not values:
        return 0
    total = 0.0
    for v in values:
        total = total + v
    return total / len(values)


def _chi_square(gold: dict[str, dict[str, int]], predicted: dict[str, dict[str, int]]) -> float:
    """The official ``chiSquare``: per group sum (o - e)^2 / e over GOLD answers, weighted by
    the group's size; iteration in first-appearance order like the script's dicts."""
    sum_score, sum_overall = 0.0, 0
    for group, answers in gold.items():
        score, overall = 0.0, 0
        for answer, expected in answers.items():
            observed = predicted[group].get(answer, 0)
            score += float(observed - expected) ** 2 / expected
            overall += expected
        sum_score += score * overall
        sum_overall += overall
    return float(sum_score) / sum_overall


def score(
    gt: GqaGroundTruth, predictions: AnswerPredictions, *, choices: Choices | None = None
) -> Result:
    """Score GQA predictions; raises ``ValidationError`` for a bad file, ``ValueError`` when
    ``choices`` lacks a balanced question."""
    pred_row, log = _match(gt, predictions)
    log.raise_if_any()
    n_bal = gt.num_balanced
    predicted: list[str | None] = [
        predictions.answers[j] if j >= 0 else None for j in pred_row.tolist()
    ]
    ids = gt.ids.tolist()

    accuracy: list[float] = []
    binary: list[float] = []
    open_: list[float] = []
    per_structural: dict[str, list[float]] = defaultdict(list)
    per_semantic: dict[str, list[float]] = defaultdict(list)
    per_length: dict[int, list[float]] = defaultdict(list)
    validity: list[float] = []
    plausibility: list[float] = []
    consistency: list[float] = []
    dist_gold: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    dist_pred: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    consistency_mode = bool(gt.has_all_questions and (pred_row[n_bal:] >= 0).any())
    missing_entailed = 0
    row_of = gt._row_of
    offsets = gt.entailed_offsets

    for i in range(n_bal):
        gold, guess = gt.answers[i], predicted[i]
        correct = guess == gold
        value = 1.0 if correct else 0.0
        accuracy.append(value)
        per_structural[gt.structural[i]].append(value)
        per_semantic[gt.semantic[i]].append(value)
        if gt.question_words is not None:
            per_length[int(gt.question_words[i])].append(value)
        (open_ if gt.structural[i] == "query" else binary).append(value)
        if choices is not None:
            entry = choices.get(ids[i])
            if entry is None:
                raise ValueError(f"the choices have no entry for question {ids[i]}")
            common = "Common" in gt.detailed[i]
            valid = _COMMON_GROUP if common else entry["valid"]
            plausible = _COMMON_GROUP if common else entry["plausible"]
            validity.append(1.0 if guess in valid else 0.0)
            plausibility.append(1.0 if guess in plausible else 0.0)
        group = gt.group_global[i]
        if group:
            dist_gold[group][gold] += 1
            dist_pred[group][guess] += 1  # type: ignore[index]
        if consistency_mode and correct:
            inferred = [e for e in gt.entailed[offsets[i] : offsets[i + 1]] if e != ids[i]]
            scores = []
            for e in inferred:
                row = row_of.get(e)
                if row is None:
                    missing_entailed += 1
                    continue
                scores.append(1.0 if predicted[row] == gt.answers[row] else 0.0)
            if scores:
                consistency.append(_avg(scores))

    metrics: dict[str, float] = {
        "accuracy": _avg(accuracy) * 100,
        "binary": _avg(binary) * 100,
        "open": _avg(open_) * 100,
    }
    if consistency_mode:
        metrics["consistency"] = _avg(consistency) * 100
    if choices is not None:
        metrics["validity"] = _avg(validity) * 100
        metrics["plausibility"] = _avg(plausibility) * 100
    if dist_gold:
        metrics["distribution"] = _chi_square(dist_gold, dist_pred) / 100

    def table(groups: Mapping[Any, list[float]]) -> dict[str, dict[str, float]]:
        return {
            str(k): {"accuracy": _avg(v) * 100, "count": len(v)}
            for k, v in sorted(groups.items(), key=lambda kv: kv[0])
        }

    details: dict[str, Any] = {
        "per_structural_type": table(per_structural),
        "per_semantic_type": table(per_semantic),
        "counts": {
            "balanced_questions": n_bal,
            "binary": len(binary),
            "open": len(open_),
            "consistency_questions": len(consistency),
        },
        "reported": {
            "consistency": consistency_mode,
            "validity_plausibility": choices is not None,
        },
    }
    if per_length:
        details["per_length"] = table(per_length)
    if consistency_mode:
        details["counts"]["entailed_ids_not_in_ground_truth"] = missing_entailed
    lower = ("distribution",) if "distribution" in metrics else ()
    return Result(metrics, details, VERSION, "accuracy", True, lower)
