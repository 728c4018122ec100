"""The scorers, keyed by METRIC name; a task reaches its scorer through its TaskSpec.

``unify.tasks`` declares each task's metric (``TaskSpec.metric``); this table maps metric
names to how a prediction file of that metric is parsed, validated, scored and written, and
which named variants it has. No task is named here: twelve tasks share nine metrics, and a
new task that reuses a metric needs no line in this module. A test checks that every
TaskSpec's metric is a key here and that ``groundtruth.GROUNDTRUTH`` has the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np

from evalserver.metrics import (
    gqa,
    guesswhat,
    nlvr2,
    pointing,
    refexp,
    retrieval,
    snli_ve,
    vqa,
)
from evalserver.metrics import predictions as P
from evalserver.metrics.limits import Expected
from evalserver.metrics.predictions import PredictionFormat, Problem
from evalserver.metrics.result import Result
from unify import tasks
from unify.errors import DataError

__all__ = ["SCORERS", "Scorer", "get_scorer", "tasks_of_metric", "variant_names"]


@dataclass(frozen=True)
class Scorer:
    """How one metric is scored.

    ``parse(source, *, log=None)`` reads a prediction file into a container;
    ``validate(gt, parsed, log=None)`` lists every id-level problem; ``score(gt, parsed,
    **options)`` returns a ``Result``; ``write(ids, values, **extra)`` writes the official
    format; ``formats`` says what that format looks like (``predictions.sniff_format``);
    ``example_ids(gt)`` gives the ids the per-example arrays are aligned with.
    ``version`` is the default rule's version; ``variants`` maps each named variant to the
    version it reports (refexp's IoU rules); ``options`` names the keyword options
    ``score`` accepts. ``parse`` also takes ``limits`` and ``expected`` (``expected(gt)``:
    what the ground truth allows a file to hold), which bound its work.
    """

    metric: str
    version: str
    parse: Callable[..., Any]
    validate: Callable[..., list[Problem]]
    score: Callable[..., Result]
    write: Callable[..., bytes]
    formats: tuple[PredictionFormat, ...]
    example_ids: Callable[[Any], np.ndarray]
    variants: Mapping[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    #: What the ground truth allows a file to hold (rows, columns, id length), for the
    #: parsers' bounds; None: the ids of ``example_ids`` are all a file may name.
    expected_of: Callable[[Any], Expected] | None = None

    def expected(self, gt: Any) -> Expected:
        """``Expected`` of a metric object (the parsers bound rows and ids by it)."""
        if self.expected_of is not None:
            return self.expected_of(gt)
        return Expected.of_ids(self.example_ids(gt))


_VQA_FORMAT = PredictionFormat("a VQA results JSON", "json", ("question_id", "answer"))
_write_vqa = partial(P.write_answers, id_field="question_id", answer_field="answer")

SCORERS: Mapping[str, Scorer] = MappingProxyType(
    {
        s.metric: s
        for s in (
            Scorer(
                "vqa",
                vqa.VERSION,
                P.parse_vqa,
                vqa.validate,
                vqa.score,
                _write_vqa,
                (_VQA_FORMAT,),
                lambda gt: gt.question_ids,
            ),
            Scorer(
                "gqa",
                gqa.VERSION,
                P.parse_gqa,
                gqa.validate,
                gqa.score,
                partial(P.write_answers, id_field="questionId", answer_field="prediction"),
                (PredictionFormat("a GQA predictions JSON", "json", ("questionId", "prediction")),),
                lambda gt: gt.ids[: gt.num_balanced],
                expected_of=lambda gt: Expected.of_ids(gt.ids),  # all-questions ids too
            ),
            Scorer(
                "vgqa",
                vqa.VGQA_VERSION,
                P.parse_vqa,
                vqa.validate_vgqa,
                vqa.score_vgqa,
                _write_vqa,
                (_VQA_FORMAT,),
                lambda gt: gt.qa_ids,
            ),
            Scorer(
                "retrieval",
                retrieval.VERSION,
                P.parse_retrieval,
                retrieval.validate,
                retrieval.score,
                P.write_score_matrix,
                (
                    PredictionFormat(
                        "a retrieval score-matrix NPZ",
                        "npz",
                        ("scores", "caption_ids", "image_ids"),
                    ),
                    PredictionFormat(
                        "a retrieval ranked-list JSON", "json", ("caption_id", "image_ids")
                    ),
                ),
                lambda gt: gt.caption_ids,
                expected_of=lambda gt: Expected.of_ids(gt.caption_ids, columns=len(gt.image_ids)),
            ),
            Scorer(
                "refexp",
                refexp.VARIANTS["default"],
                P.parse_refexp,
                refexp.validate,
                refexp.score,
                P.write_refexp,
                (
                    PredictionFormat(
                        "a referring-expression boxes JSON", "json", ("sent_id", "bbox")
                    ),
                ),
                lambda gt: gt.sent_ids,
                variants=MappingProxyType(dict(refexp.VARIANTS)),
                options=("variant",),
            ),
            Scorer(
                "pointing",
                pointing.VERSION,
                P.parse_pointing,
                pointing.validate,
                pointing.score,
                partial(P.write_choices, id_field="qa_id", choice_field="box_id"),
                (PredictionFormat("a Visual7W pointing JSON", "json", ("qa_id", "box_id")),),
                lambda gt: gt.qa_ids,
            ),
            Scorer(
                "guesswhat",
                guesswhat.VERSION,
                P.parse_guesswhat,
                guesswhat.validate,
                guesswhat.score,
                partial(P.write_choices, id_field="game_id", choice_field="object_id"),
                (PredictionFormat("a GuessWhat?! guesses JSON", "json", ("game_id", "object_id")),),
                lambda gt: gt.game_ids,
            ),
            Scorer(
                "nlvr2",
                nlvr2.VERSION,
                P.parse_nlvr2,
                nlvr2.validate,
                nlvr2.score,
                partial(P.write_labels_csv, names=P.NLVR2_LABELS),
                (PredictionFormat("an NLVR2 predictions CSV", "csv", labels=P.NLVR2_LABELS),),
                lambda gt: gt.identifiers,
            ),
            Scorer(
                "snli_ve",
                snli_ve.VERSION,
                P.parse_snli_ve,
                snli_ve.validate,
                snli_ve.score,
                partial(P.write_labels_csv, names=P.SNLI_VE_LABELS),
                (
                    PredictionFormat("an SNLI-VE predictions CSV", "csv", labels=P.SNLI_VE_LABELS),
                    PredictionFormat("an SNLI-VE predictions JSON", "json", ("pairID", "label")),
                ),
                lambda gt: gt.pair_ids,
                expected_of=lambda gt: Expected.of_ids([*gt.pair_ids, *gt.dropped_ids]),
            ),
        )
    }
)


def get_scorer(task: str) -> Scorer:
    """The scorer of ``task``'s metric (``unify.tasks.get(task).metric``).

    An unknown task is a ``DataError`` listing the known ones; a task whose metric has no
    scorer is a ``DataError`` naming both.
    """
    spec = tasks.get(task)
    try:
        return SCORERS[spec.metric]
    except KeyError:
        raise DataError(
            f"task {task!r} declares metric {spec.metric!r}, which has no scorer "
            f"(metrics: {', '.join(SCORERS)})"
        ) from None


def tasks_of_metric(metric: str) -> tuple[str, ...]:
    """The tasks scored by ``metric``, in canonical order."""
    return tuple(s.name for s in tasks.all_tasks().values() if s.metric == metric)


def variant_names() -> tuple[str, ...]:
    """Every named scoring variant of any metric (CLI choices), in registry order."""
    return tuple(dict.fromkeys(v for s in SCORERS.values() for v in s.variants))
