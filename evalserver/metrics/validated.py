"""Parse a prediction file once, keep the result, score it later (possibly elsewhere).

The server's API validates an upload and answers the participant at once; its worker scores
it later in another process. The file is parsed exactly once, by ``validate_file``: the
parsed rows (a compact array form, not the participant's text) and every problem found are
a ``Validated``, which ``save`` writes to an ``.npz`` and ``load_validated`` reads back in
the worker, where ``score_validated`` scores it without reading the upload again.

    gt = load_groundtruth("vl12.h5", "vqa2")                 # the task's default phase
    validated = validate_file("vqa2", gt, "upload.json.gz")  # parses once
    if not validated.ok:
        report(validated.listing())                          # every problem, capped
    validated.save("sub-42.npz")
    ...                                                      # later, in the worker
    result = score_validated(gt, load_validated("sub-42.npz"))

A ``Validated`` records the task, phase, splits and benchmark fingerprint it was checked
against; ``score_validated`` refuses ground truth of another task, phase or build (a
submission checked against one benchmark is never scored against another).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalserver.metrics import predictions as P
from evalserver.metrics.groundtruth import GroundTruth, describe_fingerprint
from evalserver.metrics.limits import Limits
from evalserver.metrics.predictions import Problem, ProblemLog, Source, ValidationError
from evalserver.metrics.registry import SCORERS, Scorer, get_scorer, tasks_of_metric
from evalserver.metrics.result import Result, json_array, load_arrays, save_arrays
from unify import tasks
from unify.errors import DataError

__all__ = [
    "VALIDATED_FORMAT",
    "Validated",
    "check_file",
    "load_validated",
    "score_file",
    "score_validated",
    "validate_file",
]

#: Written into a saved validated form; ``load_validated`` refuses any other.
VALIDATED_FORMAT = "vl12-validated-1"


@dataclass(frozen=True, eq=False)
class Validated:
    """A prediction file parsed and checked against one (task, phase) ground truth.

    ``problems`` lists at most ``MAX_PROBLEMS`` problems and ``total`` counts all of them;
    ``predictions`` is the parsed container (None when the file could not be read at all).
    Only a ``Validated`` without problems can be scored.
    """

    task: str
    metric: str
    phase: str | None
    splits: tuple[str, ...]
    fingerprint: str | None
    problems: tuple[Problem, ...]
    total: int
    predictions: Any | None

    @property
    def ok(self) -> bool:
        return self.total == 0 and self.predictions is not None

    def listing(self) -> list[Problem]:
        """The listed problems plus one entry counting those not listed (as ``check_file``)."""
        hidden = self.total - len(self.problems)
        tail = [Problem(f"... and {hidden} more problem(s) not listed")] if hidden > 0 else []
        return [*self.problems, *tail]

    def error(self) -> ValidationError:
        return ValidationError(self.problems, self.total)

    def describe(self) -> str:
        """What it was checked against, for messages."""
        where = f"{self.task}, phase {self.phase} (splits {', '.join(self.splits)})"
        return f"{where}, {describe_fingerprint(self.fingerprint)}"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write it to ``path`` (``.npz``, atomically; no pickle): problems and context as
        JSON, the parsed rows as arrays (a score matrix as it came, uncompressed)."""
        header: dict[str, Any] = {
            "format": VALIDATED_FORMAT,
            "task": self.task,
            "metric": self.metric,
            "phase": self.phase,
            "splits": list(self.splits),
            "fingerprint": self.fingerprint,
            "total": self.total,
            "problems": [
                {"message": p.message, "location": p.location, "id": p.id, "id_field": p.id_field}
                for p in self.problems
            ],
            "predictions": None,
        }
        arrays: dict[str, Any] = {}
        if self.predictions is not None:
            container, values = P.pack(self.predictions)
            header["predictions"] = container
            arrays = {f"predictions__{k}": v for k, v in values.items()}
        return save_arrays(Path(path), {"meta": json_array(header), **arrays})


def load_validated(path: str | os.PathLike[str]) -> Validated:
    """A ``Validated`` written by ``save``; a ``DataError`` naming the file otherwise."""
    path = Path(path)
    arrays = load_arrays(path, VALIDATED_FORMAT, "validated predictions file")
    header = json.loads(arrays.pop("meta").tobytes())
    predictions = None
    if header["predictions"] is not None:
        values = {k.removeprefix("predictions__"): v for k, v in arrays.items()}
        try:
            predictions = P.unpack(header["predictions"], values)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: damaged validated predictions file ({exc})") from None
    return Validated(
        task=header["task"],
        metric=header["metric"],
        phase=header["phase"],
        splits=tuple(header["splits"]),
        fingerprint=header["fingerprint"],
        problems=tuple(Problem(**p) for p in header["problems"]),
        total=int(header["total"]),
        predictions=predictions,
    )


# --------------------------------------------------------------------------- validate


def _context(task: str, gt: Any) -> tuple[Any, str | None, tuple[str, ...], str | None]:
    """(the metric's object, phase, splits, fingerprint) of a ``GroundTruth`` or of a bare
    metric object (tests, ground truth made from release files: no phase, no file)."""
    if isinstance(gt, GroundTruth):
        if gt.task != task:
            raise ValueError(f"the ground truth is of task {gt.task!r}, not {task!r}")
        return gt.data, gt.phase, gt.splits, gt.fingerprint
    return gt, None, (), None


def validate_file(task: str, gt: Any, source: Source, *, limits: Limits | None = None) -> Validated:
    """Parse and check a prediction file once: every problem (row-level and id-level
    together, listed up to the cap, all counted) and the parsed rows.

    Never raises on bad content (a file of another task's format gets a first problem that
    says what it looks like; a file over a limit gets a problem naming the limit); a
    missing or unreadable file is still an ``OSError``. ``limits`` (default ``Limits()``,
    docs/metrics.md "Limits") bounds the bytes read and decompressed, the JSON's depth and
    values, the rows (against the size of ``gt``) and the string lengths: memory and time
    stay proportional to the file's size on disk.
    """
    scorer = get_scorer(task)
    data_gt, phase, splits, fingerprint = _context(task, gt)
    limits = Limits() if limits is None else limits
    log = ProblemLog()
    parsed = None
    data = b""
    try:
        data = P.read_source(source, limits=limits)
        expected = scorer.expected(data_gt)
        parsed = scorer.parse(data, log=log, limits=limits, expected=expected)
    except ValidationError as exc:  # the file as a whole cannot be read
        log.extend(exc.problems)
        log.skip(exc.total - len(exc.problems))
    else:
        scorer.validate(data_gt, parsed, log)
    problems, total = list(log.problems), log.total
    if total and (parsed is None or P.num_rows(parsed) == 0):
        hint = _format_hint(task, scorer, data)
        if hint is not None:
            problems, total = [hint, *problems][: log.cap], total + 1
    return Validated(
        task, scorer.metric, phase, splits, fingerprint, tuple(problems), total, parsed
    )


def _format_hint(task: str, scorer: Scorer, data: bytes) -> Problem | None:
    """A first problem saying which other format the content looks like ("this looks like
    an NLVR2 predictions CSV ..."); None when it matches none, or its own."""
    formats = [f for s in SCORERS.values() for f in s.formats]
    found = P.sniff_format(data, formats)
    if found is None or found in scorer.formats:
        return None
    users = [
        name for s in SCORERS.values() if found in s.formats for name in tasks_of_metric(s.metric)
    ]
    expected = " or ".join(f.name for f in scorer.formats)
    return Problem(
        f"this looks like {found.name} (the format of {', '.join(users)}), not {expected}, "
        f"the format of {task}"
    )


# --------------------------------------------------------------------------- score


def score_validated(gt: Any, validated: Validated, **options: Any) -> Result:
    """Score a ``Validated`` against ``gt`` (no file is read).

    Raises ``ValidationError`` (its problems) if it has any, ``DataError`` if it was checked
    against another task, phase or benchmark build than ``gt``, ``TypeError``/``ValueError``
    for an option the metric does not take. The ``Result`` records the task, phase, splits
    and fingerprint; its metrics follow the TaskSpec's column order and ``absent`` says why
    a column is missing.
    """
    scorer = get_scorer(validated.task)
    data_gt, phase, splits, fingerprint = _context(validated.task, gt)
    if validated.metric != scorer.metric:
        raise DataError(
            f"these predictions were validated for metric {validated.metric!r}; "
            f"{validated.task} is scored with {scorer.metric!r}"
        )
    if phase is not None and validated.phase is not None and validated.phase != phase:
        raise DataError(
            f"these predictions were validated against {validated.describe()}, "
            f"not against phase {phase}"
        )
    if None not in (fingerprint, validated.fingerprint) and fingerprint != validated.fingerprint:
        raise DataError(
            f"these predictions were validated against {validated.describe()}, but the "
            f"ground truth has {describe_fingerprint(fingerprint)}: another build"
        )
    if not validated.ok:
        raise validated.error()
    _check_options(validated.task, scorer, options)
    result = scorer.score(data_gt, validated.predictions, **options)
    return _in_context(result, scorer, data_gt, validated.task, phase, splits, fingerprint)


def _check_options(task: str, scorer: Scorer, options: dict[str, Any]) -> None:
    unknown = set(options) - set(scorer.options)
    if unknown:
        raise TypeError(f"{task} scoring takes no option(s) {sorted(unknown)}")
    variant = options.get("variant")
    if variant is not None and variant not in scorer.variants:
        raise ValueError(
            f"unknown {scorer.metric} variant {variant!r}; choose one of {list(scorer.variants)}"
        )


def _in_context(
    result: Result,
    scorer: Scorer,
    data_gt: Any,
    task: str,
    phase: str | None,
    splits: tuple[str, ...],
    fingerprint: str | None,
) -> Result:
    """The result with its metrics in the TaskSpec's column order (a metric outside the
    columns stays, after them: the consistency test forbids it), the absent columns with
    their reason, its example ids and what it was scored against."""
    spec = tasks.get(task)
    columns = [c.name for c in spec.columns]
    metrics = {name: result.metrics[name] for name in columns if name in result.metrics}
    metrics |= {k: v for k, v in result.metrics.items() if k not in metrics}
    absent = {
        c.name: c.absent_when or "not reported by this scorer"
        for c in spec.columns
        if c.name not in result.metrics
    }
    ids = result.example_ids
    if ids is None and result.per_example:
        candidate = scorer.example_ids(data_gt)
        if len(candidate) == result.num_examples:
            ids = candidate
    return result.replace(
        metrics=metrics,
        absent=absent,
        example_ids=ids,
        task=task,
        phase=phase,
        splits=splits,
        fingerprint=fingerprint,
    )


# --------------------------------------------------------------------------- one call


def check_file(
    task: str, gt: Any, source: Source, *, limits: Limits | None = None
) -> list[Problem]:
    """Every problem of a prediction file (empty: it can be scored). Never raises on bad
    content; a missing file is still an ``OSError``. To check and then score, use
    ``validate_file`` and ``score_validated``: the file is parsed once."""
    return validate_file(task, gt, source, limits=limits).listing()


def score_file(
    task: str, gt: Any, source: Source, *, limits: Limits | None = None, **options: Any
) -> Result:
    """Validate and score a prediction file in one call (parsed once); ``ValidationError``
    listing every problem if it is invalid."""
    validated = validate_file(task, gt, source, limits=limits)
    if not validated.ok:
        raise validated.error()
    return score_validated(gt, validated, **options)
