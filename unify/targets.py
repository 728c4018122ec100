"""Uniform training targets: one adapter per kind of task, named by ``TaskSpec.target_adapter``.

Twelve tasks store their gold answers twelve ways (soft scores, a vocabulary label, the
caption's image, a box among candidate regions, an object of a game, a class id). A
multi-task trainer wants one shape: every adapter returns a small dict with ``kind`` (the
adapter's name) and ``index`` (the gold class / candidate position, ``-1`` when there is
none: an answer out of the vocabulary, or a split whose answers are held by the
organisers), plus the few keys of its kind listed in ``TargetAdapter.keys``:

============  =================================================================================
adapter       keys besides ``kind`` and ``index``
============  =================================================================================
vqa_soft      ``labels`` int64 [k] and ``scores`` float32 [k]: soft scores (VQA: min(#humans /
              3, 1)) of the answers in the vocabulary; ``index`` is the best-scored label;
              ``num_classes`` the vocabulary size
answer_class  ``num_classes``: ``index`` is the answer's row of the task's vocabulary
retrieval     ``image`` (/images row of the caption's image, the positive); ``index`` is its
              position among the split's ``candidates``; ``num_candidates``
box_choice    ``box`` [x, y, w, h] of the target; ``index`` is its position among the
              example's ``regions``; ``num_choices`` (the image's number of regions)
choice        ``num_choices`` (4): ``index`` among the candidate boxes
object_choice ``object_id``; ``index`` among the game's ``objects``; ``num_choices``
label         ``num_classes``: ``index`` is the class id (nlvr2: 0 False, 1 True; snli_ve:
              contradiction, neutral, entailment)
============  =================================================================================

An adapter is bound once per split (it reads the few columns it needs into memory, and
the vocabulary size) and then maps an example's row to its target in microseconds. It
reads the split's columns itself, so targets do not depend on which columns an example
carries (``select=``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from unify import tasks
from unify.columns import Ragged
from unify.errors import DataError
from unify.schema import VOCAB

if TYPE_CHECKING:
    from unify.reader import SplitView

__all__ = ["ADAPTERS", "TargetAdapter", "bind"]

Target = dict[str, Any]
Bound = Callable[[int], Target]


@dataclass(frozen=True)
class TargetAdapter:
    """How one kind of task turns a split's gold fields into a uniform target."""

    name: str
    keys: tuple[str, ...]  # every key of the dict it returns
    description: str
    bind: Callable[[SplitView], Bound]  # read what it needs once; then row -> target


def _ragged(view: SplitView, name: str) -> Ragged:
    column = view.cached(name)
    if not isinstance(column, Ragged):
        raise DataError(f"{view.file.path}: {view.where}/{name} should be a ragged column")
    return column


def _num_labels(view: SplitView) -> int:
    """Size of the task's label set: a /vocab name or a JSON list of class names."""
    label_set = view.file.task_attrs(view.task).get("label_set")
    if label_set is None:
        raise DataError(f"{view.file.path}: task {view.task} has no label_set attribute")
    label_set = str(label_set)
    if label_set.startswith("["):
        return len(json.loads(label_set))
    return int(view.file.h5[VOCAB][label_set].shape[0])


def _has(view: SplitView, *names: str) -> bool:
    return all(n in view.fields for n in names)


def _vqa_soft(view: SplitView) -> Bound:
    kind, num = "vqa_soft", _num_labels(view)
    if not _has(view, "targets"):  # test splits: answers held by the organisers
        empty_l, empty_s = np.zeros(0, np.int64), np.zeros(0, np.float32)
        return lambda i: {
            "kind": kind,
            "index": -1,
            "labels": empty_l,
            "scores": empty_s,
            "num_classes": num,
        }
    col = _ragged(view, "targets")
    labels = np.asarray(col.values["labels"], dtype=np.int64)
    scores = np.asarray(col.values["scores"], dtype=np.float32)

    def target(i: int) -> Target:
        a, b = col.bounds(i)
        s = scores[a:b]
        return {
            "kind": kind,
            "index": int(labels[a + int(np.argmax(s))]) if b > a else -1,
            "labels": labels[a:b],
            "scores": s,
            "num_classes": num,
        }

    return target


def _indexed(kind: str, view: SplitView, column: str, **extra: Any) -> Bound:
    """Targets whose index is a stored integer column (-1 kept as 'no gold')."""
    if not _has(view, column):
        return lambda i: {"kind": kind, "index": -1, **extra}
    values = view.numbers(column)
    return lambda i: {"kind": kind, "index": int(values[i]), **extra}


def _answer_class(view: SplitView) -> Bound:
    return _indexed("answer_class", view, "label", num_classes=_num_labels(view))


def _label(view: SplitView) -> Bound:
    return _indexed("label", view, "label", num_classes=_num_labels(view))


def _choice(view: SplitView) -> Bound:
    boxes = view.group["candidate_box_ids"] if _has(view, "candidate_box_ids") else None
    num = int(boxes.shape[1]) if boxes is not None and boxes.ndim == 2 else 4
    return _indexed("choice", view, "label", num_choices=num)


def _retrieval(view: SplitView) -> Bound:
    images = view.image_rows()
    candidates = view.column("candidates") if "candidates" in view.arrays else images[:0]
    position = np.full(len(view.file.image_keys), -1, dtype=np.int64)
    position[candidates] = np.arange(len(candidates))
    num = len(candidates)
    return lambda i: {
        "kind": "retrieval",
        "index": int(position[images[i]]),
        "image": int(images[i]),
        "num_candidates": num,
    }


def _box_choice(view: SplitView) -> Bound:
    regions = _ragged(view, "regions")
    if not _has(view, "ann_id", "bbox"):
        raise DataError(f"{view.file.path}: {view.where} has no ann_id/bbox to point at")
    ann = view.numbers("ann_id")
    bbox = view.numbers("bbox")
    ids = np.asarray(regions.values["ann_ids"])
    counts = np.diff(regions.offsets)
    # Position of each example's target among its regions, for all rows at once.
    owner = np.repeat(np.arange(len(counts)), counts)
    hit = np.flatnonzero(ids == ann[owner])
    index = np.full(len(counts), -1, dtype=np.int64)
    first = hit[::-1]  # keep the first match of a row when assigning in reverse
    index[owner[first]] = first - (regions.offsets[owner[first]] - regions.base)

    def target(i: int) -> Target:
        return {
            "kind": "box_choice",
            "index": int(index[i]),
            "box": bbox[i].tolist(),
            "num_choices": int(counts[i]),
        }

    return target


def _object_choice(view: SplitView) -> Bound:
    objects = _ragged(view, "objects")
    counts = np.diff(objects.offsets)
    labels = view.numbers("label") if _has(view, "label") else None
    object_ids = view.numbers("object_id") if _has(view, "object_id") else None

    def target(i: int) -> Target:
        return {
            "kind": "object_choice",
            "index": int(labels[i]) if labels is not None else -1,
            "object_id": int(object_ids[i]) if object_ids is not None else -1,
            "num_choices": int(counts[i]),
        }

    return target


ADAPTERS: Mapping[str, TargetAdapter] = MappingProxyType(
    {
        a.name: a
        for a in (
            TargetAdapter(
                "vqa_soft",
                ("kind", "index", "labels", "scores", "num_classes"),
                "soft scores over the answer vocabulary (VQA v2's 10 annotator answers)",
                _vqa_soft,
            ),
            TargetAdapter(
                "answer_class",
                ("kind", "index", "num_classes"),
                "one answer class of the task's vocabulary, -1 out of vocabulary",
                _answer_class,
            ),
            TargetAdapter(
                "retrieval",
                ("kind", "index", "image", "num_candidates"),
                "the caption's image, the positive among the split's candidate images",
                _retrieval,
            ),
            TargetAdapter(
                "box_choice",
                ("kind", "index", "box", "num_choices"),
                "the referred box among the image's candidate regions",
                _box_choice,
            ),
            TargetAdapter(
                "choice",
                ("kind", "index", "num_choices"),
                "the answer among the four candidate boxes",
                _choice,
            ),
            TargetAdapter(
                "object_choice",
                ("kind", "index", "object_id", "num_choices"),
                "the guessed object among the game's objects",
                _object_choice,
            ),
            TargetAdapter(
                "label",
                ("kind", "index", "num_classes"),
                "a class id of the task's label_set",
                _label,
            ),
        )
    }
)


def adapter_for(task: str) -> TargetAdapter:
    """The adapter the task's TaskSpec names."""
    name = tasks.get(task).target_adapter
    try:
        return ADAPTERS[name]
    except KeyError:
        raise DataError(
            f"task {task}: target_adapter {name!r} is not one of {', '.join(ADAPTERS)}"
        ) from None


def bind(view: SplitView) -> Bound:
    """The target function (row -> target dict) of a split."""
    return adapter_for(view.task).bind(view)
