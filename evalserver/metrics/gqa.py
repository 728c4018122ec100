"""GQA accuracy and its companions, as the official ``eval.py`` of the GQA release (v1.2).

Rule (per balanced question): correct iff the prediction string equals the answer string,
no normalisation. Reported like the official script, in percent: ``accuracy``, ``binary``
and ``open`` (open = structural type "query"), per structural / semantic type, per number
of reasoning steps and per question length (words); ``consistency`` over entailed questions
when predictions for the split's all-questions file are given; ``validity`` and
``plausibility`` when the unified file holds the split's choices (``valid_answers`` /
``plausible_answers``, from the optional ``*_choices.json`` raw files); ``distribution``
(chi-square, lower is better).

Float parity with the official script, to the last bit: its sums run left to right over
the questions in the order of the file it reads, which is the balanced questions file
without ``--consistency`` and the all-questions file with it. Consistency and distribution
depend on that order (the accuracies are sums of 0/1 and do not), so the ground truth keeps
the balanced questions' order in the all-questions file (``all_order``) and the scorer
iterates in that order in consistency mode. Sums use ``sequential_sum`` (Python 3.12's
``sum`` compensates rounding and would change last bits).

Choices where the official script is silent or wrong (docs/metrics.md):
- Without choices in the file, validity/plausibility are NOT reported (the script reports 0).
- "Balanced question" = a question of the balanced split given as ground truth (the
  script uses the ``isBalanced`` flag of its questions file; our minval_all split only
  holds questions of minval images, some of whose balanced questions belong to trainval).
- Consistency mode starts when the predictions contain any all-questions id; then every
  all-questions id must be predicted (the script's ``--consistency`` requirement).
- An entailed id absent from the ground truth is skipped (the script raises KeyError);
  their number is reported in details.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from evalserver.metrics.columns import column, ragged, split_view
from evalserver.metrics.predictions import (
    AnswerPredictions,
    Problem,
    ProblemLog,
    id_array,
    match_ids,
)
from evalserver.metrics.result import Result, sequential_sum
from unify.converters.gqa import program_steps
from unify.reader import SplitView, UnifiedFile

__all__ = ["VERSION", "GqaChoices", "GqaGroundTruth", "groundtruth", "score", "validate"]

VERSION = "gqa-eval-1.2"

#: The official ``belongs``: a detailed type containing "Common" accepts these answers.
_COMMON_GROUP = ("color", "material", "shape")


@dataclass(frozen=True, eq=False)
class GqaChoices:
    """Valid and plausible answers of each balanced question (ragged, row order of the
    ground truth's balanced rows), from the release's ``*_choices.json``."""

    valid_offsets: np.ndarray  # int64 [num_balanced + 1]
    valid: Sequence[str]
    plausible_offsets: np.ndarray  # int64 [num_balanced + 1]
    plausible: Sequence[str]

    @classmethod
    def from_mapping(
        cls, ids: Sequence[str], entries: Mapping[str, Mapping[str, Sequence[str]]]
    ) -> GqaChoices:
        """From a choices file's content; every id of ``ids`` needs an entry."""
        lists: dict[str, list[Sequence[str]]] = {"valid": [], "plausible": []}
        for qid in ids:
            entry = entries.get(qid)
            if entry is None:
                raise ValueError(f"the choices have no entry for question {qid}")
            for key, out in lists.items():
                out.append(entry[key])
        packed = {k: _pack(v) for k, v in lists.items()}
        return cls(*packed["valid"], *packed["plausible"])

    def sets(self, n: int) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        if len(self.valid_offsets) != n + 1 or len(self.plausible_offsets) != n + 1:
            raise ValueError("choices need one entry per balanced question")
        return _unpack(self.valid_offsets, self.valid), _unpack(
            self.plausible_offsets, self.plausible
        )


def _pack(rows: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return offsets, [a for r in rows for a in r]


def _unpack(offsets: np.ndarray, values: Sequence[str]) -> list[frozenset[str]]:
    bounds = offsets.tolist()
    return [frozenset(values[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]


@dataclass(frozen=True, eq=False)
class GqaGroundTruth:
    """Questions of a balanced split, then (optionally) the extra all-questions rows.

    Rows ``[0, num_balanced)`` are scored, in the balanced file's order; the rest exist
    only so that consistency can look up entailed questions' answers and so that their ids
    are accepted in predictions. ``group_global`` is "" where the release has null.
    ``all_order`` lists the balanced rows in the order of the all-questions file (the order
    the official script sums in with ``--consistency``); ``steps`` is each question's number
    of reasoning steps; ``choices`` covers the balanced rows.
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
    steps: np.ndarray | None = None  # int64 [N], reasoning steps per question
    choices: GqaChoices | None = None
    all_order: np.ndarray | None = None  # int64 [num_balanced], a permutation

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.num_balanced <= 0 or self.num_balanced > n:
            raise ValueError("the ground truth needs at least one balanced question")
        for name in ("answers", "structural", "semantic", "detailed", "group_global"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs one entry per question")
        for name in ("question_words", "steps"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} needs one entry per question")
        if len(self.entailed_offsets) != n + 1:
            raise ValueError("entailed_offsets needs N + 1 entries")
        if len(np.unique(self.ids)) != n:
            raise ValueError("question ids of the ground truth are not unique")
        if self.all_order is not None and not np.array_equal(
            np.sort(self.all_order), np.arange(self.num_balanced)
        ):
            raise ValueError("all_order must be a permutation of the balanced rows")
        if self.choices is not None:
            self.choices.sets(self.num_balanced)

    @property
    def has_all_questions(self) -> bool:
        return len(self.ids) > self.num_balanced

    @classmethod
    def from_questions(
        cls,
        balanced: Mapping[str, Mapping[str, Any]],
        all_questions: Mapping[str, Mapping[str, Any]] | None = None,
        choices: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    ) -> GqaGroundTruth:
        """From official ``*_balanced_questions.json`` (and ``*_all_questions.json`` and
        ``*_choices.json``) dicts, in their iteration order."""
        records = list(balanced.items())
        all_order = None
        if all_questions is not None:
            records += [(q, r) for q, r in all_questions.items() if q not in balanced]
            all_order = _all_order(list(balanced), all_questions)
        offsets = [0]
        entailed: list[str] = []
        for _, rec in records:
            entailed.extend(str(e) for e in rec.get("entailed") or [])
            offsets.append(len(entailed))
        has_programs = all("semantic" in r for _, r in records)
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
            steps=(
                np.asarray([program_steps(r["semantic"]) for _, r in records], dtype=np.int64)
                if has_programs
                else None
            ),
            choices=None if choices is None else GqaChoices.from_mapping(list(balanced), choices),
            all_order=all_order,
        )

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {q: i for i, q in enumerate(self.ids.tolist())}


def _all_order(balanced_ids: Sequence[str], all_ids: Any) -> np.ndarray:
    """Balanced rows in the all-questions file's order; balanced questions the file lacks
    (none in the release: the balanced set is a sample of it) follow in their own order."""
    row = {q: i for i, q in enumerate(balanced_ids)}
    seen = [row[q] for q in all_ids if q in row]
    rest = sorted(set(range(len(balanced_ids))) - set(seen))
    return np.asarray(seen + rest, dtype=np.int64)


# --------------------------------------------------------------------------- from the file

_BASE = ("answer", "structural", "semantic", "detailed", "group_global")


def _read_split(view: SplitView) -> dict[str, Any]:
    entailed = ragged(view, "entailed")
    cols: dict[str, Any] = {name: column(view, name).tolist() for name in _BASE}
    cols["ids"] = id_array(column(view, "id").tolist(), str)
    cols["offsets"] = entailed.offsets
    cols["entailed"] = entailed.values["values"].tolist()
    cols["words"] = np.asarray([len(q.split()) for q in column(view, "question").tolist()])
    cols["steps"] = column(view, "steps").astype(np.int64) if "steps" in view.group else None
    return cols


def groundtruth(
    uf: UnifiedFile, task: str, splits: tuple[str, ...], all_split: str | None = "auto"
) -> GqaGroundTruth:
    """The balanced split (one), plus the all-questions split's other questions.

    ``all_split="auto"`` takes ``<split>_all`` when the file has it; ``None`` leaves it out
    (then predictions may only name balanced questions). Choices come from the split's
    ``valid_answers`` / ``plausible_answers`` columns when the build had the choices file.
    """
    if len(splits) != 1:
        raise ValueError(f"{task} scores one balanced split at a time, got {list(splits)}")
    (split,) = splits
    view = split_view(uf, task, split)
    cols = _read_split(view)
    n_bal = len(cols["ids"])
    choices = None
    if "valid_answers" in view.group:
        valid, plausible = ragged(view, "valid_answers"), ragged(view, "plausible_answers")
        choices = GqaChoices(
            valid.offsets,
            valid.values["values"].tolist(),
            plausible.offsets,
            plausible.values["values"].tolist(),
        )
    if all_split == "auto":
        all_split = f"{split}_all" if f"{split}_all" in uf.splits(task) else None
    all_order = None
    if all_split is not None:
        extra = _read_split(split_view(uf, task, all_split))
        extra_ids = extra["ids"].tolist()
        all_order = _all_order(cols["ids"].tolist(), extra_ids)
        balanced = set(cols["ids"].tolist())
        keep = [i for i, q in enumerate(extra_ids) if q not in balanced]
        bounds = extra["offsets"].tolist()
        entailed = [extra["entailed"][bounds[i] : bounds[i + 1]] for i in keep]
        for name in _BASE:
            cols[name] = cols[name] + [extra[name][i] for i in keep]
        cols["ids"] = np.concatenate([cols["ids"], extra["ids"][keep]])
        cols["offsets"] = np.concatenate(
            [cols["offsets"], cols["offsets"][-1] + np.cumsum([len(e) for e in entailed])]
        ).astype(np.int64)
        cols["entailed"] = cols["entailed"] + [e for es in entailed for e in es]
        cols["words"] = np.concatenate([cols["words"], extra["words"][keep]])
        if cols["steps"] is not None and extra["steps"] is not None:
            cols["steps"] = np.concatenate([cols["steps"], extra["steps"][keep]])
        else:
            cols["steps"] = None
    return GqaGroundTruth(
        ids=cols["ids"],
        answers=cols["answer"],
        structural=cols["structural"],
        semantic=cols["semantic"],
        detailed=cols["detailed"],
        group_global=cols["group_global"],
        entailed_offsets=cols["offsets"],
        entailed=cols["entailed"],
        num_balanced=n_bal,
        question_words=cols["words"],
        steps=cols["steps"],
        choices=choices,
        all_order=all_order,
    )


# --------------------------------------------------------------------------- scoring


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
    """The official ``avg``: 0 for an empty list, else float(sum(l)) / len(l), the sum
    left to right."""
    if not values:
        return 0
    return sequential_sum(values) / len(values)


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


def score(gt: GqaGroundTruth, predictions: AnswerPredictions) -> Result:
    """Score GQA predictions; raises ``ValidationError`` for a bad file.

    ``per_example`` (balanced rows, ground-truth order): ``score`` (1/0, accuracy), and
    ``valid`` / ``plausible`` (1/0) when the ground truth has choices.
    """
    pred_row, log = _match(gt, predictions)
    log.raise_if_any()
    n_bal = gt.num_balanced
    predicted: list[str | None] = [
        predictions.answers[j] if j >= 0 else None for j in pred_row.tolist()
    ]
    ids = gt.ids.tolist()
    consistency_mode = bool(gt.has_all_questions and (pred_row[n_bal:] >= 0).any())
    # The official script sums in the order of the file it reads: the all-questions file
    # with --consistency (the order fixes the last bits of consistency and distribution).
    all_file_order = consistency_mode and gt.all_order is not None
    order: Sequence[int] = range(n_bal)
    if all_file_order and gt.all_order is not None:
        order = gt.all_order.tolist()

    correct_of = np.zeros(n_bal, dtype=np.float64)
    binary: list[float] = []
    open_: list[float] = []
    per_structural: dict[str, list[float]] = defaultdict(list)
    per_semantic: dict[str, list[float]] = defaultdict(list)
    per_steps: dict[int, list[float]] = defaultdict(list)
    per_length: dict[int, list[float]] = defaultdict(list)
    consistency: list[float] = []
    dist_gold: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    dist_pred: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    missing_entailed = 0
    row_of = gt._row_of
    offsets = gt.entailed_offsets.tolist()
    words = None if gt.question_words is None else gt.question_words.tolist()
    steps = None if gt.steps is None else gt.steps.tolist()

    for i in order:
        gold, guess = gt.answers[i], predicted[i]
        correct = guess == gold
        value = 1.0 if correct else 0.0
        correct_of[i] = value
        per_structural[gt.structural[i]].append(value)
        per_semantic[gt.semantic[i]].append(value)
        if words is not None:
            per_length[words[i]].append(value)
        if steps is not None:
            per_steps[steps[i]].append(value)
        (open_ if gt.structural[i] == "query" else binary).append(value)
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
        "accuracy": _avg(correct_of.tolist()) * 100,
        "binary": _avg(binary) * 100,
        "open": _avg(open_) * 100,
    }
    per_example: dict[str, np.ndarray] = {"score": correct_of}
    if consistency_mode:
        metrics["consistency"] = _avg(consistency) * 100
    if gt.choices is not None:
        valid_sets, plausible_sets = gt.choices.sets(n_bal)
        valid = np.zeros(n_bal, dtype=np.float64)
        plausible = np.zeros(n_bal, dtype=np.float64)
        for i in range(n_bal):
            common = "Common" in gt.detailed[i]
            guess = predicted[i]
            valid[i] = guess in (_COMMON_GROUP if common else valid_sets[i])
            plausible[i] = guess in (_COMMON_GROUP if common else plausible_sets[i])
        metrics["validity"] = _avg(valid.tolist()) * 100
        metrics["plausibility"] = _avg(plausible.tolist()) * 100
        per_example |= {"valid": valid, "plausible": plausible}
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
            "distribution_questions": sum(sum(a.values()) for a in dist_gold.values()),
            "distribution_groups": len(dist_gold),
        },
        "reported": {
            "consistency": consistency_mode,
            "validity_plausibility": gt.choices is not None,
            "per_steps": steps is not None,
        },
        "summation_order": "all-questions file" if all_file_order else "balanced file",
    }
    if per_steps:
        details["per_steps"] = table(per_steps)
    if per_length:
        details["per_length"] = table(per_length)
    if consistency_mode:
        details["counts"]["entailed_ids_not_in_ground_truth"] = missing_entailed
    lower = ("distribution",) if "distribution" in metrics else ()
    return Result(metrics, details, VERSION, "accuracy", True, lower, per_example=per_example)
