"""Visual7W pointing (Zhu et al. 2016): "which" questions answered by pointing at a box.

One example is one QA pair (``qa_id``) on a Visual Genome image. Its ``answer`` and its 3
``multiple_choices`` are box ids, joined with the file's top-level ``boxes`` list by
``box_id``. The 4 candidates are stored SORTED by box id, as 12-in-1 does, so their order
never reveals the answer; ``label`` is the index of the answer box among them. Splits come
from each image's ``split`` field (train / val / test); any other value is an error.

The file states no image sizes; the build fills VG sizes from ``vgqa/image_data.json`` when
that file is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import rules
from unify.converters.base import BuildContext, Converter, RawFile, require
from unify.errors import RecordError
from unify.images import vg_key
from unify.rules import Boxes, Range, Unique
from unify.table import SplitTable, TaskTable

POINTING = "dataset_v7w_pointing.json"
NUM_CHOICES = 3  # multiple choices besides the answer
BOX_FIELDS = ("x", "y", "width", "height")
ID_MAX = rules.INT64.max

QA_RULES = (
    "`images[].image_id`: unique in the file, 0 or more",
    "`images[].split`: one of train, val, test",
    Unique("qa_id", "QA pair id"),
    Range("qa_id", 0, ID_MAX),
    "`qa_pairs[].image_id` (when given): its image entry's `image_id`",
    "`answer`, `multiple_choices`: 4 different box ids of the top-level `boxes` list",
)
BOX_RULES = ("`box_id`: unique in the file, 0 or more", Boxes("box"))


class Visual7w(Converter):
    version = "1.0.0"
    answer_columns = ("label",)
    homepage = "http://ai.stanford.edu/~yukez/visual7w/"
    raw_files = (RawFile(POINTING, True, "pointing QA pairs, splits and boxes"),)
    field_rules = MappingProxyType({"QA pairs": QA_RULES, "boxes": BOX_RULES})

    def convert(self, ctx: BuildContext) -> TaskTable:
        path = self.file(ctx.raw_root, POINTING)
        doc = self.load_json(ctx, POINTING)
        images = require(doc, "images", list, path, "<top level>")
        box_ids, box_coords = _read_boxes(require(doc, "boxes", list, path, "<top level>"), path)
        split_index = {decl.name: i for i, decl in enumerate(self.splits)}

        ids: list[int] = []
        image_keys: list[str] = []
        questions: list[str] = []
        types: list[str] = []
        candidates: list[tuple[int, int, int, int]] = []
        split_of: list[int] = []
        stream = _qa_pairs(images, path, split_index)
        for image_id, split, qa in ctx.limit(ctx.progress(stream, desc="visual7w QA pairs")):
            try:
                qa_id, question, qtype, answer, choices = (
                    qa["qa_id"],
                    qa["question"],
                    qa["type"],
                    qa["answer"],
                    qa["multiple_choices"],
                )
                ok = (
                    type(qa_id) is int
                    and type(question) is str
                    and type(qtype) is str
                    and type(answer) is int
                    and type(choices) is list
                    and len(choices) == NUM_CHOICES
                    and all(type(c) is int for c in choices)
                    and type(qa.get("image_id", image_id)) is int
                    and qa.get("image_id", image_id) == image_id
                )
            except (KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                _explain_qa(qa, image_id, path)
            ids.append(qa_id)
            image_keys.append(vg_key(image_id))
            questions.append(question)
            types.append(qtype)
            candidates.append((answer, *choices))
            split_of.append(split)

        rules.require_records(path, len(ids), "QA pairs")
        id_arr = rules.int_array(ids, np.int64, path, "qa_id", ids)
        rules.check(path, ids, {"qa_id": id_arr, "question": questions, "type": types}, QA_RULES)
        given = _candidate_array(candidates, ids, path)
        ordered = np.sort(given, axis=1)
        _check_distinct(ordered, id_arr, path)
        rows = _box_rows(box_ids, given, ordered, id_arr, path)
        label = (ordered == given[:, :1]).argmax(axis=1).astype(np.int8)
        full = SplitTable(
            "all",
            "train",
            {
                "id": id_arr,
                "image": image_keys,
                "question": questions,
                "type": types,
                "candidate_box_ids": ordered,
                "candidate_boxes": box_coords[rows].reshape(-1, NUM_CHOICES + 1, 4),
                "label": label,
            },
        )
        split_arr = np.asarray(split_of, dtype=np.int64)
        splits = [
            SplitTable(decl.name, decl.role, full.take(np.flatnonzero(split_arr == k)))
            for k, decl in enumerate(self.splits)
        ]
        for split in splits:
            ctx.images.add_many(split.columns["image"])
        report = {
            "counts": {s.name: s.num_examples for s in splits},
            "images": len(set(image_keys)),
            "boxes": len(box_ids),
        }
        return TaskTable(self.name, self.task_attrs(), splits, report)


def _candidate_array(candidates: list[Any], ids: list[int], path: Path) -> np.ndarray:
    """[N, 4] int64 box ids (answer first); an id beyond int64 is no box of the file."""
    try:
        return np.asarray(candidates, dtype=np.int64).reshape(-1, NUM_CHOICES + 1)
    except OverflowError:
        for qa_id, row in zip(ids, candidates, strict=True):
            for column, box in enumerate(row):
                if not -(2**63) <= box <= ID_MAX:
                    field = "answer" if column == 0 else f"multiple_choices[{column - 1}]"
                    raise RecordError(
                        path, qa_id, field, f"box id {box} is not in the top-level 'boxes' list"
                    ) from None
        raise


def _qa_pairs(
    images: list[Any], path: Path, split_index: dict[str, int]
) -> Iterator[tuple[int, int, Any]]:
    """(image_id, split index, qa record) for every QA pair, in release order."""
    seen: set[int] = set()
    for i, entry in enumerate(images):
        try:
            image_id, split, qas = entry["image_id"], entry["split"], entry["qa_pairs"]
            ok = (
                type(image_id) is int
                and 0 <= image_id <= ID_MAX
                and image_id not in seen
                and type(split) is str
                and type(qas) is list
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            rid = (
                f"image {entry.get('image_id', f'#{i}')}"
                if isinstance(entry, dict)
                else f"image #{i}"
            )
            image_id = require(entry, "image_id", int, path, rid)
            Range("image_id", 0, ID_MAX).check(path, [rid], {"image_id": [image_id]})
            if image_id in seen:
                raise RecordError(path, rid, "image_id", f"duplicate image id {image_id}")
            require(entry, "split", str, path, rid)
            require(entry, "qa_pairs", list, path, rid)
        seen.add(image_id)
        k = split_index.get(split)
        if k is None:
            raise RecordError(
                path,
                f"image {image_id}",
                "split",
                f"unknown split {split!r} (Visual7W's splits: {', '.join(split_index)})",
            )
        for qa in qas:
            yield image_id, k, qa


def _read_boxes(boxes: list[Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Box ids sorted ascending (int64 [B]) and their x, y, w, h (float32 [B, 4]).

    Coordinates are checked as float64 before the float32 cast, so a number that would
    overflow to inf is refused rather than stored."""
    n = len(boxes)
    ids = np.empty(n, dtype=np.int64)
    coords = np.empty((n, 4), dtype=np.float64)
    for i, box in enumerate(boxes):
        try:
            box_id = box["box_id"]
            xywh = (box["x"], box["y"], box["width"], box["height"])
            ok = (
                type(box_id) is int
                and 0 <= box_id <= ID_MAX
                and all(type(v) is int or type(v) is float for v in xywh)
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            rid = f"box {box.get('box_id', f'#{i}')}" if isinstance(box, dict) else f"box #{i}"
            box_id = require(box, "box_id", int, path, rid)
            Range("box_id", 0, ID_MAX).check(path, [rid], {"box_id": [box_id]})
            for key in BOX_FIELDS:
                require(box, key, (int, float), path, rid)
        ids[i] = box_id
        coords[i] = xywh
    rules.check(path, _BoxLabels(ids), {"box": coords}, BOX_RULES)
    coords = coords.astype(np.float32)
    order = np.argsort(ids, kind="stable")
    ids, coords = ids[order], coords[order]
    dup = np.flatnonzero(ids[1:] == ids[:-1])
    if len(dup):
        raise RecordError(path, f"box {int(ids[dup[0]])}", "box_id", "duplicate box id")
    return ids, coords


class _BoxLabels:
    """Record names of the top-level boxes by row: "box <id>"."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids

    def __getitem__(self, row: int) -> str:
        return f"box {int(self._ids[row])}"


def _explain_qa(qa: Any, image_id: int, path: Path) -> None:
    """Slow path: name the bad field of a QA pair, and raise."""
    rid = qa.get("qa_id", "?") if isinstance(qa, dict) else "?"
    require(qa, "qa_id", int, path, f"image {image_id} qa_pairs")
    for key, kind in (("question", str), ("type", str), ("answer", int)):
        require(qa, key, kind, path, rid)
    choices = require(qa, "multiple_choices", list, path, rid)
    if len(choices) != NUM_CHOICES:
        raise RecordError(
            path,
            rid,
            "multiple_choices",
            f"expected {NUM_CHOICES} box ids, got {len(choices)}",
        )
    for k, choice in enumerate(choices):
        if type(choice) is not int:
            raise RecordError(
                path, rid, f"multiple_choices[{k}]", f"expected a box id (int), got {choice!r:.60}"
            )
    if type(qa.get("image_id", image_id)) is not int or qa.get("image_id", image_id) != image_id:
        raise RecordError(
            path, rid, "image_id", f"{qa['image_id']!r:.40} differs from its image entry {image_id}"
        )
    raise RecordError(path, rid, "qa_pairs", "malformed")  # pragma: no cover


def _check_distinct(ordered: np.ndarray, ids: np.ndarray, path: Path) -> None:
    """The answer and its 3 choices must be 4 different boxes, else the label is ambiguous."""
    repeated = ordered[:, 1:] == ordered[:, :-1]
    bad = np.flatnonzero(repeated.any(axis=1))
    if len(bad):
        row = int(bad[0])
        box = int(ordered[row, 1:][repeated[row]][0])
        raise RecordError(
            path,
            int(ids[row]),
            "multiple_choices",
            f"box id {box} appears twice among the answer and the multiple choices",
        )


def _box_rows(
    box_ids: np.ndarray, given: np.ndarray, ordered: np.ndarray, ids: np.ndarray, path: Path
) -> np.ndarray:
    """Row of each sorted candidate in the sorted boxes; an unknown box id is an error."""
    pos = np.searchsorted(box_ids, ordered)
    clipped = np.minimum(pos, max(len(box_ids) - 1, 0))
    found = box_ids[clipped] == ordered if len(box_ids) else np.zeros(ordered.shape, dtype=bool)
    if not found.all():
        row = int(np.flatnonzero(~found.all(axis=1))[0])
        box = int(ordered[row][~found[row]][0])
        column = int(np.flatnonzero(given[row] == box)[0])
        field = "answer" if column == 0 else f"multiple_choices[{column - 1}]"
        raise RecordError(
            path, int(ids[row]), field, f"box id {box} is not in the top-level 'boxes' list"
        )
    return clipped
