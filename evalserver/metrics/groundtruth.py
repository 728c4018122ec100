"""Ground truth for every scorer, read from a split of the unified HDF5 file.

Follows docs/schema.md (version 1.x) directly with h5py, so the scorers depend on the file
contract only, not on the converters' code: a split is ``/tasks/<task>/<split>``; plain
columns are datasets of length N; a ragged field is a sub-group with ``offsets`` (N + 1)
and value datasets; ``image`` columns hold int32 row indices into ``/images/key``. Every
builder reads only the columns its scorer needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from evalserver.metrics.gqa import GqaGroundTruth
from evalserver.metrics.guesswhat import GuessWhatGroundTruth
from evalserver.metrics.nlvr2 import Nlvr2GroundTruth
from evalserver.metrics.pointing import PointingGroundTruth
from evalserver.metrics.predictions import id_array
from evalserver.metrics.refexp import RefExpGroundTruth
from evalserver.metrics.retrieval import RetrievalGroundTruth
from evalserver.metrics.snli_ve import SnliVeGroundTruth
from evalserver.metrics.vqa import VgqaGroundTruth, VqaGroundTruth

__all__ = [
    "BUILDERS",
    "DEFAULT_SPLITS",
    "SchemaError",
    "gqa_groundtruth",
    "guesswhat_groundtruth",
    "load_groundtruth",
    "nlvr2_groundtruth",
    "open_unified",
    "refexp_groundtruth",
    "retrieval_groundtruth",
    "snli_ve_groundtruth",
    "split_group",
    "vgqa_groundtruth",
    "visual7w_groundtruth",
    "vqa2_groundtruth",
]

SCHEMA_MAJOR = 1
OFFSETS = "offsets"


class SchemaError(ValueError):
    """The file, task, split or column is not what docs/schema.md promises."""


# --------------------------------------------------------------------------- access


def open_unified(path: str | os.PathLike[str]) -> h5py.File:
    """Open a unified file read-only after checking its schema MAJOR version."""
    handle = h5py.File(path, "r")
    try:
        _check_version(handle)
    except SchemaError:
        handle.close()
        raise
    return handle


def _check_version(root: h5py.File | h5py.Group) -> None:
    version = root.file.attrs.get("schema_version")
    if isinstance(version, bytes):
        version = version.decode()
    if version is None:
        raise SchemaError(f"{root.file.filename}: no schema_version attribute; not a unified file")
    major = str(version).split(".")[0]
    if major != str(SCHEMA_MAJOR):
        raise SchemaError(
            f"{root.file.filename}: schema version {version}; these scorers read {SCHEMA_MAJOR}.x"
        )


def split_group(root: h5py.File | h5py.Group, task: str, split: str) -> h5py.Group:
    """``/tasks/<task>/<split>``, with a message that lists what exists when it does not."""
    tasks = root.file.get("tasks")
    if tasks is None or task not in tasks:
        have = sorted(tasks) if tasks is not None else []
        raise SchemaError(f"task {task!r} is not in the file (it holds {have})")
    if split not in tasks[task]:
        raise SchemaError(f"task {task!r} has no split {split!r} (it has {sorted(tasks[task])})")
    return tasks[task][split]


def _dataset(group: h5py.Group, name: str) -> h5py.Dataset:
    item = group.get(name)
    if not isinstance(item, h5py.Dataset):
        raise SchemaError(f"{group.name} has no column {name!r} (it has {sorted(group)})")
    return item


def _column(group: h5py.Group, name: str) -> np.ndarray:
    """A plain column; vlen strings come back as an object array of ``str``."""
    ds = _dataset(group, name)
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[()]
    return ds[()]


def _strings(group: h5py.Group, name: str) -> list[str]:
    return _column(group, name).tolist()


def _ragged(group: h5py.Group, name: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a ragged field."""
    sub = group.get(name)
    if not isinstance(sub, h5py.Group):
        raise SchemaError(f"{group.name} has no ragged field {name!r}")
    offsets = _column(sub, OFFSETS).astype(np.int64)
    values = _column(sub, value)
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(values):
        raise SchemaError(f"{sub.name}: offsets do not span the values")
    return offsets, values


def _num_examples(group: h5py.Group) -> int:
    n = len(_dataset(group, "id"))
    declared = group.attrs.get("num_examples")
    if declared is not None and int(declared) != n:
        raise SchemaError(f"{group.name}: num_examples={declared} but {n} ids")
    return n


def _ids(group: h5py.Group, kind: type) -> np.ndarray:
    raw = _column(group, "id")
    return id_array(raw.tolist() if raw.dtype == object else raw, kind)


def _image_ids(root: h5py.File | h5py.Group, indices: np.ndarray) -> np.ndarray:
    """Numeric ids of image rows: ``coco:391895`` -> 391895, ``flickr:1000092795`` -> ..."""
    keys = root.file["images"]["key"].asstr()[()]
    ids = np.empty(len(indices), dtype=np.int64)
    for i, index in enumerate(np.asarray(indices).tolist()):
        key = keys[index]
        try:
            ids[i] = int(key.split(":", 1)[1])
        except (IndexError, ValueError):
            raise SchemaError(f"image key {key!r} has no numeric id") from None
    return ids


# --------------------------------------------------------------------------- builders


def vqa2_groundtruth(root: h5py.File | h5py.Group, split: str = "minval") -> VqaGroundTruth:
    group = split_group(root, "vqa2", split)
    _num_examples(group)
    if "answers" not in group:
        raise SchemaError(f"vqa2/{split} has no answers (a test split cannot be scored here)")
    offsets, answers = _ragged(group, "answers", "values")
    return VqaGroundTruth(
        question_ids=_ids(group, int),
        answer_offsets=offsets,
        answers=answers.tolist(),
        question_types=_strings(group, "question_type"),
        answer_types=_strings(group, "answer_type"),
    )


def vgqa_groundtruth(root: h5py.File | h5py.Group, split: str = "val") -> VgqaGroundTruth:
    group = split_group(root, "vgqa", split)
    _num_examples(group)
    questions = _strings(group, "question") if "question" in group else None
    return VgqaGroundTruth(_ids(group, int), _strings(group, "answer"), questions)


def _gqa_columns(group: h5py.Group) -> dict[str, Any]:
    offsets, entailed = _ragged(group, "entailed", "values")
    return {
        "ids": _ids(group, str),
        "answers": _strings(group, "answer"),
        "structural": _strings(group, "structural"),
        "semantic": _strings(group, "semantic"),
        "detailed": _strings(group, "detailed"),
        "group_global": _strings(group, "group_global"),
        "offsets": offsets,
        "entailed": entailed.tolist(),
        "words": np.asarray([len(q.split()) for q in _strings(group, "question")]),
    }


def gqa_groundtruth(
    root: h5py.File | h5py.Group, split: str = "testdev", all_split: str | None = "auto"
) -> GqaGroundTruth:
    """Balanced ``split``; plus the all-questions split (``auto``: ``<split>_all`` when the
    file has it) whose extra questions serve consistency only."""
    group = split_group(root, "gqa", split)
    _num_examples(group)
    cols = _gqa_columns(group)
    if all_split == "auto":
        all_split = f"{split}_all" if f"{split}_all" in root.file["tasks"]["gqa"] else None
    if all_split is not None:
        extra = _gqa_columns(split_group(root, "gqa", all_split))
        balanced = set(cols["ids"].tolist())
        keep = np.flatnonzero([q not in balanced for q in extra["ids"].tolist()])
        offsets = extra["offsets"]
        entailed = [extra["entailed"][offsets[i] : offsets[i + 1]] for i in keep]
        lengths = [len(e) for e in entailed]
        cols = {
            "ids": np.concatenate([cols["ids"], extra["ids"][keep]]),
            "answers": cols["answers"] + [extra["answers"][i] for i in keep],
            "structural": cols["structural"] + [extra["structural"][i] for i in keep],
            "semantic": cols["semantic"] + [extra["semantic"][i] for i in keep],
            "detailed": cols["detailed"] + [extra["detailed"][i] for i in keep],
            "group_global": cols["group_global"] + [extra["group_global"][i] for i in keep],
            "offsets": np.concatenate(
                [cols["offsets"], cols["offsets"][-1] + np.cumsum(lengths, dtype=np.int64)]
            ),
            "entailed": cols["entailed"] + [e for es in entailed for e in es],
            "words": np.concatenate([cols["words"], extra["words"][keep]]),
            "num_balanced": len(cols["ids"]),
        }
    return GqaGroundTruth(
        ids=cols["ids"],
        answers=cols["answers"],
        structural=cols["structural"],
        semantic=cols["semantic"],
        detailed=cols["detailed"],
        group_global=cols["group_global"],
        entailed_offsets=cols["offsets"],
        entailed=cols["entailed"],
        num_balanced=cols.get("num_balanced", len(cols["ids"])),
        question_words=cols["words"],
    )


def retrieval_groundtruth(
    root: h5py.File | h5py.Group, task: str = "coco_retrieval", split: str = "test"
) -> RetrievalGroundTruth:
    """Captions, their image and the candidate images; the 1k fold per image when the split
    has a ``fold`` column (COCO test)."""
    group = split_group(root, task, split)
    _num_examples(group)
    caption_ids = _ids(group, int)
    image_rows = _column(group, "image").astype(np.int64)
    candidates = _column(group, "candidates").astype(np.int64)
    position = {int(row): i for i, row in enumerate(candidates.tolist())}
    try:
        caption_image = np.fromiter((position[r] for r in image_rows.tolist()), np.int64)
    except KeyError as exc:
        raise SchemaError(f"{group.name}: a caption's image {exc} is not a candidate") from None
    folds = None
    if "fold" in group:
        caption_fold = _column(group, "fold").astype(np.int64)
        folds = np.full(len(candidates), -1, dtype=np.int64)
        folds[caption_image] = caption_fold
        if (folds[caption_image] != caption_fold).any():
            raise SchemaError(f"{group.name}: captions of one image disagree on its fold")
    return RetrievalGroundTruth(caption_ids, caption_image, _image_ids(root, candidates), folds)


def refexp_groundtruth(
    root: h5py.File | h5py.Group, task: str = "refcoco", splits: str | Sequence[str] | None = None
) -> RefExpGroundTruth:
    """Target boxes of one or several splits (default: every split whose role is eval)."""
    if splits is None:
        tasks = root.file.get("tasks")
        if tasks is None or task not in tasks:
            raise SchemaError(f"task {task!r} is not in the file")
        splits = [s for s in tasks[task] if tasks[task][s].attrs.get("role") == "eval"]
        if not splits:
            raise SchemaError(f"task {task!r} has no split with role 'eval'")
    elif isinstance(splits, str):
        splits = [splits]
    ids, boxes, names = [], [], []
    for split in splits:
        group = split_group(root, task, split)
        n = _num_examples(group)
        ids.append(_ids(group, int))
        boxes.append(np.asarray(_column(group, "bbox"), dtype=np.float64).reshape(n, 4))
        names += [split] * n
    return RefExpGroundTruth(np.concatenate(ids), np.concatenate(boxes), names)


def visual7w_groundtruth(root: h5py.File | h5py.Group, split: str = "test") -> PointingGroundTruth:
    group = split_group(root, "visual7w", split)
    _num_examples(group)
    types = _strings(group, "type") if "type" in group else None
    return PointingGroundTruth(
        _ids(group, int),
        _column(group, "candidate_box_ids").astype(np.int64),
        _column(group, "label").astype(np.int64),
        types,
    )


def guesswhat_groundtruth(
    root: h5py.File | h5py.Group, split: str = "test"
) -> GuessWhatGroundTruth:
    group = split_group(root, "guesswhat", split)
    _num_examples(group)
    offsets, candidates = (None, None)
    if "objects" in group:
        offsets, candidates = _ragged(group, "objects", "ids")
        candidates = candidates.astype(np.int64)
    return GuessWhatGroundTruth(
        _ids(group, int),
        _column(group, "object_id").astype(np.int64),
        _strings(group, "status"),
        offsets,
        candidates,
    )


def nlvr2_groundtruth(root: h5py.File | h5py.Group, split: str = "test1") -> Nlvr2GroundTruth:
    group = split_group(root, "nlvr2", split)
    _num_examples(group)
    return Nlvr2GroundTruth(_ids(group, str), _column(group, "label").astype(np.int64) == 1)


def snli_ve_groundtruth(root: h5py.File | h5py.Group, split: str = "test") -> SnliVeGroundTruth:
    group = split_group(root, "snli_ve", split)
    _num_examples(group)
    return SnliVeGroundTruth(_ids(group, str), _column(group, "label").astype(np.int8))


# --------------------------------------------------------------------------- dispatch


def _refexp(task: str) -> Callable[..., RefExpGroundTruth]:
    def build(root: h5py.File | h5py.Group, split: str | Sequence[str] | None = None) -> Any:
        return refexp_groundtruth(root, task, split)

    return build


def _retrieval(task: str) -> Callable[..., RetrievalGroundTruth]:
    def build(root: h5py.File | h5py.Group, split: str = "test") -> Any:
        return retrieval_groundtruth(root, task, split)

    return build


#: task -> builder(root, split, **options)
BUILDERS: dict[str, Callable[..., Any]] = {
    "vqa2": vqa2_groundtruth,
    "vgqa": vgqa_groundtruth,
    "gqa": gqa_groundtruth,
    "coco_retrieval": _retrieval("coco_retrieval"),
    "flickr30k_retrieval": _retrieval("flickr30k_retrieval"),
    "refcoco": _refexp("refcoco"),
    "refcoco_plus": _refexp("refcoco_plus"),
    "refcocog": _refexp("refcocog"),
    "visual7w": visual7w_groundtruth,
    "guesswhat": guesswhat_groundtruth,
    "nlvr2": nlvr2_groundtruth,
    "snli_ve": snli_ve_groundtruth,
}

#: The split each task is scored on when none is named (refer tasks: all eval splits).
DEFAULT_SPLITS: dict[str, str | None] = {
    "vqa2": "minval",
    "vgqa": "val",
    "gqa": "testdev",
    "coco_retrieval": "test",
    "flickr30k_retrieval": "test",
    "refcoco": None,
    "refcoco_plus": None,
    "refcocog": None,
    "visual7w": "test",
    "guesswhat": "test",
    "nlvr2": "test1",
    "snli_ve": "test",
}


def load_groundtruth(
    source: str | os.PathLike[str] | h5py.File | h5py.Group,
    task: str,
    split: str | None = None,
    **options: Any,
) -> Any:
    """The ground-truth object of ``task``/``split`` (default split per ``DEFAULT_SPLITS``).

    ``source`` is a path (opened and closed here) or an open file. ``options`` go to the
    builder (gqa: ``all_split``).
    """
    if task not in BUILDERS:
        raise SchemaError(f"no scorer for task {task!r}; tasks: {sorted(BUILDERS)}")
    chosen = DEFAULT_SPLITS[task] if split is None else split
    args = (chosen,) if chosen is not None else ()
    if isinstance(source, (h5py.File, h5py.Group)):
        _check_version(source)
        return BUILDERS[task](source, *args, **options)
    with open_unified(Path(source)) as handle:
        return BUILDERS[task](handle, *args, **options)
