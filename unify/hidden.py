"""Hidden splits: evaluation splits whose answers only the challenge's organisers hold.

A leaderboard is only worth something when its test answers are hidden. The public
releases hold no answers for some splits (``TaskSpec.hidden``: VQA v2 test and test-dev,
GQA submission); ``unify build --hide TASK:SPLIT`` hides more. A build given the
organisers' files (``--organiser DIR``) is a *private* build: its hidden splits hold their
answers, for the evaluation server. ``unify publish`` (``unify.publish``) copies it without
those answers, for participants.

Every split group records what it is (docs/schema.md): ``hidden`` (bool), ``answers``
("present" or "absent") and, for a hidden split, ``answer_columns`` (JSON list: the
columns that hold its answers in a private build, which a public copy leaves out).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from unify.errors import DataError
from unify.table import SplitTable
from unify.tasks import TaskSpec

#: The folder of organiser answers that ``unify sample`` writes next to the raw folders,
#: and the prefix of organiser files' paths in a build's ``sources``.
ORGANISER = "organiser"
#: Split attributes (docs/schema.md, "Hidden splits").
HIDDEN_ATTR = "hidden"
ANSWERS_ATTR = "answers"
ANSWER_COLUMNS_ATTR = "answer_columns"
PRESENT, ABSENT = "present", "absent"
#: Root attribute of a public copy: the fingerprint of the private build it comes from.
PUBLISHED_FROM = "published_from"
#: How many differing ids an error message names.
SHOWN_IDS = 5


def parse_hide(values: Iterable[str], specs: Mapping[str, TaskSpec]) -> tuple[str, ...]:
    """``--hide TASK:SPLIT`` values, checked and sorted as ``task:split`` strings.

    The split must be an evaluation split of a task of the build; a split the TaskSpec
    already hides is accepted (hiding it again changes nothing).
    """
    out: set[str] = set()
    for value in values:
        task, sep, split = value.partition(":")
        if not sep or not task or not split:
            raise DataError(f"--hide {value!r}: expected TASK:SPLIT (e.g. nlvr2:test1)")
        spec = specs.get(task)
        if spec is None:
            raise DataError(
                f"--hide {value!r}: task {task!r} is not in this build (tasks: {', '.join(specs)})"
            )
        if split not in spec.split_names or spec.role(split) != "eval":
            raise DataError(
                f"--hide {value!r}: {task} has no evaluation split {split!r} "
                f"(evaluation splits: {', '.join(spec.eval_splits)})"
            )
        if split == spec.val_split:
            raise DataError(
                f"--hide {value!r}: {split!r} is {task}'s model-selection split, "
                "which participants need with its answers"
            )
        out.add(f"{task}:{split}")
    return tuple(sorted(out))


def hidden_splits(spec: TaskSpec, hide: Collection[str]) -> frozenset[str]:
    """The splits of ``spec`` hidden in a build: the TaskSpec's and those of ``--hide``."""
    extra = {h.partition(":")[2] for h in hide if h.partition(":")[0] == spec.name}
    return frozenset(spec.hidden) | extra


def mark_split(split: SplitTable, answer_columns: tuple[str, ...], hidden: bool) -> None:
    """Record on ``split`` whether it is hidden and whether its answers are in the file.

    A converter that declares no answer columns (retrieval: the answer is the caption's
    image, which is also an input) has its answers present by definition.
    """
    present = [c for c in answer_columns if c in split.columns]
    split.attrs[HIDDEN_ATTR] = bool(hidden)
    split.attrs[ANSWERS_ATTR] = PRESENT if present or not answer_columns else ABSENT
    if hidden:
        split.attrs[ANSWER_COLUMNS_ATTR] = json.dumps(present)


def check_ids(
    path: Path | str,
    where: str,
    public: Iterable[object],
    organiser: Iterable[object],
    *,
    every_organiser_id: bool = True,
) -> None:
    """Every public id of ``where`` has an answer in the organiser file ``path``, and (with
    ``every_organiser_id``) every id of the file is a public question of ``where``.

    A mismatch is one error naming the file and the first ids that differ each way: an
    organiser file of another release, or public questions of another version, would
    otherwise give a private build that scores something else than participants see.
    """
    public_ids = set(public)
    organiser_ids = set(organiser)
    unanswered = sorted(public_ids - organiser_ids, key=str)
    unknown = sorted(organiser_ids - public_ids, key=str) if every_organiser_id else []
    problems = []
    if unanswered:
        problems.append(
            f"{len(unanswered)} public question(s) of {where} have no answer in it "
            f"(first: {unanswered[:SHOWN_IDS]})"
        )
    if unknown:
        problems.append(
            f"{len(unknown)} id(s) in it are not public questions of {where} "
            f"(first: {unknown[:SHOWN_IDS]})"
        )
    if problems:
        raise DataError(
            f"{path}: organiser file does not match the public questions: " + "; ".join(problems)
        )
