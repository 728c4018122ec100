"""One declaration per task: the single list of tasks every other part derives from.

A ``TaskSpec`` holds what the rest of vl12 needs to know about a task: its group and image
universes, its splits and their roles, its id, its converter (by import path, so that this
module stays free of the converters' dependencies), the metric that scores it and the
leaderboard columns it reports, its chance level, what a model reads and predicts, the
split for model selection and the leaderboard phases.

The converter registry, the scorers' registry (``evalserver.metrics`` maps metric names to
scorers; unify never imports evalserver), CLI choices, docs tables and test
parametrisations are all derived from :func:`all_tasks`. A test checks that they agree.

Tasks outside this package register through the ``vl12.tasks`` entry-point group: each
entry point names a ``TaskSpec`` object. Nothing is registered at run time, so there is no
global mutable registry; the set of tasks is fixed by what is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal

from unify.errors import DataError
from unify.schema import Role

__all__ = [
    "ENTRY_POINT_GROUP",
    "GROUPS",
    "UNIVERSES",
    "Chance",
    "Column",
    "Phase",
    "Split",
    "TaskSpec",
    "all_tasks",
    "get",
    "task_names",
    "tasks_in_group",
]

TaskGroup = Literal["vqa", "retrieval", "refer", "verification"]

#: The four task groups of 12-in-1, in the paper's order, with their display names.
GROUPS: Mapping[str, str] = MappingProxyType(
    {
        "vqa": "Vocabulary-based VQA",
        "retrieval": "Image retrieval",
        "refer": "Referring expressions",
        "verification": "Multi-modal verification",
    }
)

#: Image universes: the prefix of an image key (``coco:391895``) and what it names.
UNIVERSES: Mapping[str, str] = MappingProxyType(
    {
        "coco": "COCO 2014 image id",
        "vg": "Visual Genome image id",
        "flickr": "Flickr30k photo (file stem)",
        "nlvr2": "NLVR2 image (pair stem and -img0/-img1)",
        "gqa": "GQA image that is not a Visual Genome photo (non-digit id)",
    }
)

ENTRY_POINT_GROUP = "vl12.tasks"


@dataclass(frozen=True)
class Split:
    """A split of the unified file, its role and where it comes from."""

    name: str
    role: Role
    description: str = ""


@dataclass(frozen=True)
class Column:
    """A leaderboard column: a metric the scorer reports.

    ``absent_when`` says when the scorer cannot report it (e.g. GQA's validity needs the
    choices file); ``None`` means the column is always present.
    """

    name: str
    higher_is_better: bool = True
    precision: int = 2
    description: str = ""
    absent_when: str | None = None


@dataclass(frozen=True)
class Phase:
    """A leaderboard phase: one split, or several scored together from one file.

    A submission, a prediction file and a leaderboard column are always for one
    (task, phase). A phase with one split has that split's name.
    """

    name: str
    splits: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Chance:
    """The chance level of the primary metric.

    ``percent`` is a fixed level (two classes: 50); when it is ``None`` the level depends on
    the ground truth and is the expected score of a guess drawn uniformly from ``over``
    (each example's candidates, the split's answers, ...), which the scorers compute.
    """

    over: str
    percent: float | None = None


@dataclass(frozen=True)
class TaskSpec:
    """Everything vl12 knows about one task, declared once."""

    name: str
    title: str
    group: TaskGroup
    universes: tuple[str, ...]
    splits: tuple[Split, ...]
    id_field: str  # the release's name of the example id
    id_kind: type  # int or str: how the release types the id (string ids are never cast)
    example_unit: str
    converter: str  # "module:Class", imported on demand
    metric: str  # a key of evalserver.metrics' scorer registry
    primary: str  # the column that ranks the leaderboard
    columns: tuple[Column, ...]
    chance: Chance
    inputs: tuple[str, ...]  # fields a model reads ("image" is the image or image pair)
    targets: tuple[str, ...]  # fields it learns to predict
    target_adapter: str  # a key of unify.targets.ADAPTERS
    val_split: str  # model selection; never hidden
    phases: tuple[Phase, ...]
    default_phase: str  # scored when no phase is named
    aliases: tuple[str, ...] = field(default=())  # other raw folder names
    #: "module:function" of the task's sample generator (``unify sample``), imported on
    #: demand like ``converter``; ``None``: the sample world does not write this task.
    sample: str | None = None
    #: Evaluation splits whose answers the public release withholds (the challenge's
    #: organisers hold them): a private build reads them from organiser files
    #: (``unify build --organiser``), ``unify publish`` leaves them out of a public copy.
    hidden: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [s.name for s in self.splits]
        problems = []
        if self.group not in GROUPS:
            problems.append(f"group {self.group!r} is not one of {list(GROUPS)}")
        problems += [f"universe {u!r} is unknown" for u in self.universes if u not in UNIVERSES]
        if len(set(names)) != len(names):
            problems.append(f"split names repeat: {names}")
        if self.val_split not in names:
            problems.append(f"val_split {self.val_split!r} is not a split")
        for phase in self.phases:
            problems += [
                f"phase {phase.name!r} names unknown split {s!r}"
                for s in phase.splits
                if s not in names
            ]
            if len(phase.splits) == 1 and phase.name != phase.splits[0]:
                problems.append(
                    f"single-split phase {phase.name!r} must be named {phase.splits[0]!r}"
                )
            if len(phase.splits) > 1 and phase.name in names:
                problems.append(f"multi-split phase {phase.name!r} shadows a split name")
        for split in self.hidden:
            if split not in names:
                problems.append(f"hidden split {split!r} is not a split")
            elif self.role(split) != "eval":
                problems.append(f"hidden split {split!r} is not an evaluation split")
            elif split == self.val_split:
                problems.append(f"hidden split {split!r} is the model-selection split")
        if self.default_phase not in {p.name for p in self.phases}:
            problems.append(f"default_phase {self.default_phase!r} is not a phase")
        column_names = [c.name for c in self.columns]
        if self.primary not in column_names:
            problems.append(f"primary {self.primary!r} is not a column")
        elif self.column(self.primary).absent_when is not None:
            problems.append(f"primary column {self.primary!r} must always be present")
        if self.id_kind not in (int, str):
            problems.append("id_kind must be int or str")
        if ":" not in self.converter:
            problems.append(f"converter {self.converter!r} is not 'module:Class'")
        if problems:
            raise ValueError(f"TaskSpec {self.name!r}: " + "; ".join(problems))

    # ------------------------------------------------------------------ derived facts
    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.splits)

    def role(self, split: str) -> Role:
        for s in self.splits:
            if s.name == split:
                return s.role
        raise KeyError(split)

    @property
    def eval_splits(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.splits if s.role == "eval")

    @property
    def train_splits(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.splits if s.role == "train")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def phase(self, name: str) -> Phase:
        """A phase by name; a split's name is accepted as the one-split phase of it."""
        for p in self.phases:
            if p.name == name:
                return p
        if name in self.split_names:
            return Phase(name, (name,), f"the {name} split")
        known = [p.name for p in self.phases]
        raise DataError(
            f"{self.name} has no phase or split {name!r} (phases: {', '.join(known)}; "
            f"splits: {', '.join(self.split_names)})"
        )

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.phases)

    def converter_class(self) -> type[Any]:
        module, _, attr = self.converter.partition(":")
        return getattr(importlib.import_module(module), attr)

    def make_converter(self) -> Any:
        """A fresh converter bound to this spec."""
        return self.converter_class()(self)


# ---------------------------------------------------------------------- declarations

_ACC = "accuracy"


def _accuracy(extra: tuple[Column, ...] = ()) -> tuple[Column, ...]:
    return (Column(_ACC, description="percent of examples right"), *extra)


_RANKED = "a ranked-list submission (it needs the full score matrix)"


def _retrieval_columns(test_folds: bool) -> tuple[Column, ...]:
    cols: list[Column] = []
    for direction, what in (("t2i", "image retrieval"), ("i2t", "caption retrieval")):
        matrix = None if direction == "t2i" else _RANKED
        for k in (1, 5, 10):
            cols.append(
                Column(f"{direction}_r{k}", description=f"{what} recall@{k}", absent_when=matrix)
            )
        cols.append(
            Column(f"{direction}_medr", False, 1, f"{what} median rank (lower is better)", _RANKED)
        )
        cols.append(
            Column(f"{direction}_meanr", False, 1, f"{what} mean rank (lower is better)", _RANKED)
        )
    cols.append(Column("rsum", description="sum of the six recalls", absent_when=_RANKED))
    if test_folds:
        cols += [
            Column(
                f"1k_avg_{c.name}",
                c.higher_is_better,
                c.precision,
                f"{c.description}, averaged over the five 1k folds",
                f"the split has no 1k folds (COCO test only), or {_RANKED}",
            )
            for c in list(cols)
        ]
    return tuple(cols)


def _refer(name: str, title: str, tests: tuple[str, ...], dataset: str) -> TaskSpec:
    splits = (
        Split("train", "train", f"{dataset} train refs"),
        Split("val", "eval", f"{dataset} val refs"),
        *(Split(t, "eval", f"{dataset} {t} refs") for t in tests),
    )
    evals = ("val", *tests)
    return TaskSpec(
        name=name,
        title=title,
        group="refer",
        universes=("coco",),
        splits=splits,
        id_field="sent_id",
        id_kind=int,
        example_unit="sentence",
        converter=f"unify.converters.refer:{_REFER_CLASSES[name]}",
        metric="refexp",
        primary=_ACC,
        columns=_accuracy(
            tuple(
                Column(f"accuracy_{s}", description=f"accuracy on {s}", absent_when=f"no {s}")
                for s in evals
            )
        ),
        chance=Chance("the image's COCO boxes (candidate regions)"),
        inputs=("sentence", "image", "regions"),
        targets=("bbox",),
        target_adapter="box_choice",
        val_split="val",
        phases=(
            *(Phase(s, (s,), f"the {s} split") for s in evals),
            Phase("all", evals, "every evaluation split, scored together from one file"),
        ),
        default_phase="all",
        aliases=("refcoco+",) if name == "refcoco_plus" else (),
        sample="unify.sample.refer_format:write_sample",
    )


_REFER_CLASSES = {"refcoco": "RefCoco", "refcoco_plus": "RefCocoPlus", "refcocog": "RefCocog"}

BUILTIN: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="vqa2",
        title="VQA v2",
        group="vqa",
        universes=("coco",),
        splits=(
            Split("trainval", "train", "train2014 + val2014 without minval"),
            Split("minval", "eval", "the 3,000 val2014 questions of largest question_id"),
            Split("test", "eval", "test2015 questions (answers held by the organisers)"),
            Split("test-dev", "eval", "test-dev2015 questions (answers held by the organisers)"),
        ),
        id_field="question_id",
        id_kind=int,
        example_unit="question",
        converter="unify.converters.vqa2:Vqa2",
        metric="vqa",
        primary="overall",
        columns=(
            Column("overall", description="VQA accuracy (min(#humans that said it / 3, 1))"),
            Column(
                "yes/no",
                description="accuracy on yes/no questions",
                absent_when="no yes/no questions in the split",
            ),
            Column(
                "number",
                description="accuracy on number questions",
                absent_when="no number questions in the split",
            ),
            Column(
                "other",
                description="accuracy on other questions",
                absent_when="no other questions in the split",
            ),
        ),
        chance=Chance("the split's distinct answers"),
        inputs=("question", "image"),
        targets=("answers",),
        target_adapter="vqa_soft",
        val_split="minval",
        phases=(
            Phase("minval", ("minval",), "held-out val2014 questions"),
            Phase("test-dev", ("test-dev",), "test-dev2015"),
            Phase("test", ("test",), "test-standard (test2015)"),
        ),
        default_phase="minval",
        sample="unify.sample.vqa2_format:write_sample",
        hidden=("test-dev", "test"),
    ),
    TaskSpec(
        name="gqa",
        title="GQA (balanced, v1.2)",
        group="vqa",
        universes=("vg", "gqa"),
        splits=(
            Split("trainval", "train", "train balanced + val balanced without minval"),
            Split("minval", "eval", "held-out val balanced questions"),
            Split("testdev", "eval", "testdev balanced questions"),
            Split("minval_all", "extra", "val all questions of minval's images (consistency)"),
            Split("testdev_all", "extra", "testdev all questions (consistency)"),
            Split("submission", "eval", "submission questions (answers held by the organisers)"),
        ),
        id_field="questionId",
        id_kind=str,
        example_unit="question",
        converter="unify.converters.gqa:Gqa",
        metric="gqa",
        primary=_ACC,
        columns=(
            Column(_ACC, description="exact-match accuracy"),
            Column("binary", description="accuracy on yes/no questions"),
            Column("open", description="accuracy on open questions"),
            Column(
                "consistency",
                description="accuracy on the entailed questions of questions answered right",
                absent_when="the file has no all-questions split for this phase",
            ),
            Column(
                "validity",
                description="answers among the question's valid answers",
                absent_when="the build had no *_choices.json file",
            ),
            Column(
                "plausibility",
                description="answers among the question's plausible answers",
                absent_when="the build had no *_choices.json file",
            ),
            Column("distribution", False, 4, "chi-square distance of answer distributions"),
        ),
        chance=Chance("the split's distinct answers"),
        inputs=("question", "image"),
        targets=("answer",),
        target_adapter="answer_class",
        val_split="minval",
        phases=(
            Phase("minval", ("minval",), "held-out val balanced questions"),
            Phase("testdev", ("testdev",), "testdev balanced questions"),
            Phase("submission", ("submission",), "the challenge's submission questions"),
        ),
        default_phase="testdev",
        sample="unify.sample.gqa_format:write_sample",
        hidden=("submission",),
    ),
    TaskSpec(
        name="vgqa",
        title="Visual Genome QA",
        group="vqa",
        universes=("vg",),
        splits=(
            Split("train", "train", "QA pairs of the train images"),
            Split("val", "eval", "QA pairs of the held-out images"),
        ),
        id_field="qa_id",
        id_kind=int,
        example_unit="qa_pair",
        converter="unify.converters.vgqa:Vgqa",
        metric="vgqa",
        primary=_ACC,
        columns=_accuracy(),
        chance=Chance("the split's distinct answers"),
        inputs=("question", "image"),
        targets=("answer_normalized",),
        target_adapter="answer_class",
        val_split="val",
        phases=(Phase("val", ("val",), "QA pairs of the held-out images"),),
        default_phase="val",
        sample="unify.sample.vgqa_format:write_sample",
    ),
    TaskSpec(
        name="coco_retrieval",
        title="COCO caption retrieval (Karpathy split)",
        group="retrieval",
        universes=("coco",),
        splits=(
            Split("train", "train", "Karpathy train + restval"),
            Split("val", "eval", "Karpathy val (5k images)"),
            Split("test", "eval", "Karpathy test (5k images, five 1k folds)"),
        ),
        id_field="sentid",
        id_kind=int,
        example_unit="caption",
        converter="unify.converters.coco_retrieval:CocoRetrieval",
        metric="retrieval",
        primary="t2i_r1",
        columns=_retrieval_columns(test_folds=True),
        chance=Chance("the split's candidate images"),
        inputs=("caption", "image"),
        targets=("image",),
        target_adapter="retrieval",
        val_split="val",
        phases=(
            Phase("val", ("val",), "Karpathy val"),
            Phase("test", ("test",), "Karpathy test (5k, with the 1k-fold average)"),
        ),
        default_phase="test",
        sample="unify.sample.karpathy_format:write_coco_sample",
    ),
    TaskSpec(
        name="flickr30k_retrieval",
        title="Flickr30k caption retrieval (Karpathy split)",
        group="retrieval",
        universes=("flickr",),
        splits=(
            Split("train", "train", "Karpathy train"),
            Split("val", "eval", "Karpathy val (1k images)"),
            Split("test", "eval", "Karpathy test (1k images)"),
        ),
        id_field="sentid",
        id_kind=int,
        example_unit="caption",
        converter="unify.converters.flickr30k_retrieval:Flickr30kRetrieval",
        metric="retrieval",
        primary="t2i_r1",
        columns=_retrieval_columns(test_folds=False),
        chance=Chance("the split's candidate images"),
        inputs=("caption", "image"),
        targets=("image",),
        target_adapter="retrieval",
        val_split="val",
        phases=(
            Phase("val", ("val",), "Karpathy val"),
            Phase("test", ("test",), "Karpathy test"),
        ),
        default_phase="test",
        sample="unify.sample.karpathy_format:write_flickr30k_sample",
    ),
    _refer("refcoco", "RefCOCO (UNC splits)", ("testA", "testB"), "UNC"),
    _refer("refcoco_plus", "RefCOCO+ (UNC splits)", ("testA", "testB"), "UNC"),
    _refer("refcocog", "RefCOCOg (UMD splits)", ("test",), "UMD"),
    TaskSpec(
        name="visual7w",
        title="Visual7W (pointing)",
        group="refer",
        universes=("vg",),
        splits=(
            Split("train", "train", "pointing QA pairs, train images"),
            Split("val", "eval", "pointing QA pairs, val images"),
            Split("test", "eval", "pointing QA pairs, test images"),
        ),
        id_field="qa_id",
        id_kind=int,
        example_unit="qa_pair",
        converter="unify.converters.visual7w:Visual7w",
        metric="pointing",
        primary=_ACC,
        columns=_accuracy(),
        chance=Chance("the four candidate boxes", 25.0),
        inputs=("question", "image", "candidate_boxes"),
        targets=("label",),
        target_adapter="choice",
        val_split="val",
        phases=(Phase("val", ("val",), "val"), Phase("test", ("test",), "test")),
        default_phase="test",
        sample="unify.sample.visual7w_format:write_sample",
    ),
    TaskSpec(
        name="guesswhat",
        title="GuessWhat?!",
        group="refer",
        universes=("coco",),
        splits=(
            Split("train", "train", "games of guesswhat.train.jsonl.gz"),
            Split("valid", "eval", "games of guesswhat.valid.jsonl.gz"),
            Split("test", "eval", "games of guesswhat.test.jsonl.gz"),
        ),
        id_field="id",
        id_kind=int,
        example_unit="game",
        converter="unify.converters.guesswhat:GuessWhat",
        metric="guesswhat",
        primary=_ACC,
        columns=_accuracy(
            (
                Column(
                    "accuracy_success",
                    description="accuracy on games the players won",
                    absent_when="no successful game in the split",
                ),
            )
        ),
        chance=Chance("the game's candidate objects"),
        inputs=("dialogue", "image", "objects"),
        targets=("object_id",),
        target_adapter="object_choice",
        val_split="valid",
        phases=(Phase("valid", ("valid",), "valid"), Phase("test", ("test",), "test")),
        default_phase="test",
        sample="unify.sample.guesswhat_format:write_sample",
    ),
    TaskSpec(
        name="nlvr2",
        title="NLVR2",
        group="verification",
        universes=("nlvr2",),
        splits=(
            Split("train", "train", "train.json"),
            Split("dev", "eval", "dev.json"),
            Split("test1", "eval", "test1.json (public)"),
            Split("test2", "eval", "test2.json (released later; optional)"),
        ),
        id_field="identifier",
        id_kind=str,
        example_unit="sentence_image_pair",
        converter="unify.converters.nlvr2:Nlvr2",
        metric="nlvr2",
        primary=_ACC,
        columns=_accuracy(
            (Column("consistency", description="sentences with all their pairs right"),)
        ),
        chance=Chance("true and false", 50.0),
        inputs=("sentence", "image"),
        targets=("label",),
        target_adapter="label",
        val_split="dev",
        phases=(
            Phase("dev", ("dev",), "dev"),
            Phase("test1", ("test1",), "test-P"),
            Phase("test2", ("test2",), "test-U"),
        ),
        default_phase="test1",
        sample="unify.sample.nlvr2_format:write_sample",
    ),
    TaskSpec(
        name="snli_ve",
        title="SNLI-VE",
        group="verification",
        universes=("flickr",),
        splits=(
            Split("train", "train", "snli_ve_train.jsonl (Flickr30k Entities train images)"),
            Split("dev", "eval", "snli_ve_dev.jsonl (Flickr30k Entities val images)"),
            Split("test", "eval", "snli_ve_test.jsonl (Flickr30k Entities test images)"),
        ),
        id_field="pairID",
        id_kind=str,
        example_unit="image_hypothesis_pair",
        converter="unify.converters.snli_ve:SnliVe",
        metric="snli_ve",
        primary=_ACC,
        columns=_accuracy(
            tuple(
                Column(
                    f"accuracy_{label}",
                    description=f"accuracy on {label} pairs",
                    absent_when=f"no {label} pair in the split",
                )
                for label in ("contradiction", "neutral", "entailment")
            )
        ),
        chance=Chance("the three labels", 100.0 / 3),
        inputs=("hypothesis", "image"),
        targets=("label",),
        target_adapter="label",
        val_split="dev",
        phases=(Phase("dev", ("dev",), "dev"), Phase("test", ("test",), "test")),
        default_phase="test",
        sample="unify.sample.snli_ve_format:write_sample",
    ),
)


@cache
def all_tasks() -> Mapping[str, TaskSpec]:
    """Every task, built-in ones first in canonical order, then installed plug-ins.

    Plug-ins are ``vl12.tasks`` entry points naming a ``TaskSpec``; one that clashes with a
    known name or is not a TaskSpec is an error, never a silent override.
    """
    specs: dict[str, TaskSpec] = {spec.name: spec for spec in BUILTIN}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        spec = ep.load()
        if not isinstance(spec, TaskSpec):
            raise DataError(f"entry point {ep.name} ({ep.value}) is not a TaskSpec")
        if spec.name in specs or spec.name != ep.name:
            raise DataError(
                f"entry point {ep.name} ({ep.value}): task {spec.name!r} "
                + ("is already declared" if spec.name in specs else "must match its name")
            )
        specs[spec.name] = spec
    return MappingProxyType(specs)


def task_names() -> tuple[str, ...]:
    """Every task name, in canonical order (CLI choices, parametrisations, docs)."""
    return tuple(all_tasks())


def get(name: str) -> TaskSpec:
    """The spec of ``name``; a ``DataError`` listing the known tasks otherwise."""
    try:
        return all_tasks()[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known: {', '.join(all_tasks())}") from None


def tasks_in_group(group: str) -> tuple[TaskSpec, ...]:
    return tuple(s for s in all_tasks().values() if s.group == group)
