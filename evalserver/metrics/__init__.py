"""The official scorers of the 12 tasks, one module per metric, and their registry.

Each scorer is a pure function of (ground truth, parsed predictions) -> ``Result``; the
ground truth comes from the unified HDF5 file (``groundtruth``), predictions from the
participant's file (``predictions``). Nothing here knows about the web server, database
or queue: the server calls ``check_file`` before queueing and ``score_file`` in a worker.

    gt = load_groundtruth("vl12.h5", "vqa2", "minval")
    result = score_file("vqa2", gt, "submission.json.gz")
    result.metrics["overall"], result.version

The registry is a plain table (no import-time registration): adding a task means adding
one row below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from evalserver.metrics import (
    gqa,
    guesswhat,
    nlvr2,
    pointing,
    predictions,
    refexp,
    retrieval,
    snli_ve,
    vqa,
)
from evalserver.metrics.groundtruth import load_groundtruth
from evalserver.metrics.predictions import Problem, ProblemLog, Source, ValidationError
from evalserver.metrics.result import Result

__all__ = [
    "SCORERS",
    "TASKS",
    "Problem",
    "Result",
    "Scorer",
    "ValidationError",
    "check_file",
    "get_scorer",
    "load_groundtruth",
    "score_file",
]


@dataclass(frozen=True)
class Scorer:
    """How one task is scored: parse a file, validate it, score it, load its ground truth.

    ``version`` is the default rule's version (a ``Result`` carries the version actually
    used, e.g. refexp variants); ``options`` names the keyword options ``score`` accepts.
    """

    task: str
    metric: str  # the metric module's name, as the unified file's task attribute ``metric``
    version: str
    primary: str
    parse: Callable[..., Any]  # (source, *, log=None) -> parsed predictions
    validate: Callable[..., list[Problem]]  # (gt, parsed, log=None) -> problems
    score: Callable[..., Result]
    options: tuple[str, ...] = ()

    def load_groundtruth(self, source: Any, split: str | None = None, **options: Any) -> Any:
        return load_groundtruth(source, self.task, split, **options)


def _refer(task: str) -> Scorer:
    return Scorer(
        task,
        "refexp",
        refexp.VARIANTS["default"],
        "accuracy",
        predictions.parse_refexp,
        refexp.validate,
        refexp.score,
        ("variant",),
    )


def _retrieval(task: str) -> Scorer:
    return Scorer(
        task,
        "retrieval",
        retrieval.VERSION,
        "t2i_r1",
        predictions.parse_retrieval,
        retrieval.validate,
        retrieval.score,
    )


SCORERS: Mapping[str, Scorer] = MappingProxyType(
    {
        "vqa2": Scorer(
            "vqa2", "vqa", vqa.VERSION, "overall", predictions.parse_vqa, vqa.validate, vqa.score
        ),
        "gqa": Scorer(
            "gqa",
            "gqa",
            gqa.VERSION,
            "accuracy",
            predictions.parse_gqa,
            gqa.validate,
            gqa.score,
        ),
        "vgqa": Scorer(
            "vgqa",
            "vgqa",
            vqa.VGQA_VERSION,
            "accuracy",
            predictions.parse_vqa,
            vqa.validate_vgqa,
            vqa.score_vgqa,
        ),
        "coco_retrieval": _retrieval("coco_retrieval"),
        "flickr30k_retrieval": _retrieval("flickr30k_retrieval"),
        "refcoco": _refer("refcoco"),
        "refcoco_plus": _refer("refcoco_plus"),
        "refcocog": _refer("refcocog"),
        "visual7w": Scorer(
            "visual7w",
            "pointing",
            pointing.VERSION,
            "accuracy",
            predictions.parse_pointing,
            pointing.validate,
            pointing.score,
        ),
        "guesswhat": Scorer(
            "guesswhat",
            "guesswhat",
            guesswhat.VERSION,
            "accuracy",
            predictions.parse_guesswhat,
            guesswhat.validate,
            guesswhat.score,
        ),
        "nlvr2": Scorer(
            "nlvr2",
            "nlvr2",
            nlvr2.VERSION,
            "accuracy",
            predictions.parse_nlvr2,
            nlvr2.validate,
            nlvr2.score,
        ),
        "snli_ve": Scorer(
            "snli_ve",
            "snli_ve",
            snli_ve.VERSION,
            "accuracy",
            predictions.parse_snli_ve,
            snli_ve.validate,
            snli_ve.score,
        ),
    }
)

TASKS: tuple[str, ...] = tuple(SCORERS)


def get_scorer(task: str) -> Scorer:
    """The scorer of ``task``; ``ValueError`` naming the known tasks otherwise."""
    try:
        return SCORERS[task]
    except KeyError:
        raise ValueError(f"no scorer for task {task!r}; tasks: {', '.join(TASKS)}") from None


def check_file(task: str, gt: Any, source: Source) -> list[Problem]:
    """Every problem of a prediction file, row-level and id-level together (empty list: it
    can be scored). Never raises on bad content; a missing file is still an ``OSError``."""
    scorer = get_scorer(task)
    log = ProblemLog()
    try:
        parsed = scorer.parse(source, log=log)
    except ValidationError as exc:  # the file as a whole cannot be read
        log.extend(exc.problems)
        log.skip(exc.total - len(exc.problems))
        return log.listing()
    return scorer.validate(gt, parsed, log)


def score_file(task: str, gt: Any, source: Source, **options: Any) -> Result:
    """Parse, validate and score a prediction file; ``ValidationError`` listing every
    problem if it is invalid."""
    scorer = get_scorer(task)
    unknown = set(options) - set(scorer.options)
    if unknown:
        raise TypeError(f"{task} scoring takes no option(s) {sorted(unknown)}")
    log = ProblemLog()
    parsed = scorer.parse(source, log=log)
    if log:
        scorer.validate(gt, parsed, log)
        log.raise_if_any()
    return scorer.score(gt, parsed, **options)
