"""GuessWhat?! (de Vries et al. 2017): find the object a dialogue was about.

One gzip-compressed JSON Lines file per split (``guesswhat.{train,valid,test}.jsonl.gz``),
one game per line: the game's ``object_id``, its dialogue (``qas``), the candidate
``objects`` with COCO boxes ``[x, y, w, h]``, and the COCO image record (train2014 or
val2014 ids, with width, height and the ``flickr_url`` that links the image to Flickr).
The guesser's target ``label`` is the index of ``object_id`` among the game's objects, in
release order; ``status`` is kept because the GuessWhat authors score successful games only
while 12-in-1 scores all of them.

Keys this converter does not use are ignored, so derived releases with extra blocks (e.g.
CompGuessWhat?!'s ``image.visual_genome``) convert as the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import rules
from unify.converters.base import (
    BuildContext,
    Converter,
    RawFile,
    require,
    require_items,
)
from unify.errors import RecordError
from unify.images import LINK_COCO_FLICKR, coco_key, flickr_id_from_url, flickr_key
from unify.rules import MAX_PIXELS, Boxes, Range, Unique
from unify.table import Ragged, SplitTable, TaskTable

SPLIT_NAMES = ("train", "valid", "test")
FILE = "guesswhat.{}.jsonl.gz"
STATUSES = ("success", "failure", "incomplete")
_NUMBER = (int, float)
ID_MAX = rules.INT64.max

GAME_RULES = (
    Unique("id", "game id"),
    Range("id", 0, ID_MAX),
    "`status`: one of success, failure, incomplete",
    "`object_id`: the id of one of the game's objects",
    "`objects[].id`: unique within the game",
    f"`image.width`, `image.height`: 1 to {MAX_PIXELS}, the same in every game of the image",
    Range("image.id", 0, ID_MAX),
    Unique("qas.id", "question id"),
    Range("qas.id", 0, ID_MAX),
    Range("objects.id", 0, ID_MAX),
    Range("objects.category_id", 0, int(np.iinfo(np.int32).max)),
    Boxes("objects.bbox"),
)


class GuessWhat(Converter):
    version = "1.0.0"
    answer_columns = ("object_id", "label")
    homepage = "https://guesswhat.ai/download"
    raw_files = tuple(
        RawFile(FILE.format(s), True, f"{s} games (gzip JSON Lines)") for s in SPLIT_NAMES
    )
    field_rules = MappingProxyType({"games": GAME_RULES})

    def convert(self, ctx: BuildContext) -> TaskTable:
        splits: list[SplitTable] = []
        report: dict[str, Any] = {
            "status": {},
            "flickr_links": {},
            "images_without_flickr_id": {},
            "accepted": {"boxes_beyond_image": {}},
        }
        for split in SPLIT_NAMES:
            table, links, no_flickr, beyond = self._read(ctx, split, FILE.format(split))
            report["accepted"]["boxes_beyond_image"][split] = beyond
            splits.append(table)
            statuses = table.columns["status"]
            report["status"][split] = {s: statuses.count(s) for s in STATUSES}
            report["flickr_links"][split] = links
            report["images_without_flickr_id"][split] = no_flickr
        report["counts"] = {s.name: s.num_examples for s in splits}
        return TaskTable(self.name, self.task_attrs(), splits, report)

    def _records(self, ctx: BuildContext, file: str) -> Iterator[tuple[int, Any]]:
        """The file's (line, game) pairs, the first N in smoke mode.

        The rest of the file is still read so that its sha256 is recorded and a truncated
        gzip stream is reported even in smoke mode.
        """
        items = self.iter_jsonl(ctx, file)
        yield from ctx.limit(ctx.progress(items, desc=f"{self.name} {file}"))
        for _ in items:
            pass

    def _read(self, ctx: BuildContext, split: str, file: str) -> tuple[SplitTable, int, int, int]:
        path = self.file(ctx.raw_root, file)
        source = f"{self.name}/{file}"
        ids: list[int] = []
        images: list[str] = []
        statuses: list[str] = []
        object_ids: list[int] = []
        labels: list[int] = []
        # Ragged fields as flat values plus per-game lengths (no per-game lists kept).
        qa_lengths: list[int] = []
        qa_ids: list[int] = []
        questions: list[str] = []
        answers: list[str] = []
        obj_lengths: list[int] = []
        obj_ids: list[int] = []
        boxes: list[list[float]] = []
        category_ids: list[int] = []
        categories: list[str] = []
        seen_images: dict[int, tuple[int, int]] = {}
        image_ids: list[int] = []
        image_sizes: list[tuple[int, int]] = []
        links = no_flickr = 0
        intern: dict[str, str] = {}
        for lineno, game in self._records(ctx, file):
            try:
                gid, status, target = game["id"], game["status"], game["object_id"]
                image, qas, objects = game["image"], game["qas"], game["objects"]
                image_id, width, height = image["id"], image["width"], image["height"]
                g_qa_ids = [q["id"] for q in qas]
                g_questions = [q["question"] for q in qas]
                g_answers = [q["answer"] for q in qas]
                g_obj_ids = [o["id"] for o in objects]
                g_boxes = [o["bbox"] for o in objects]
                g_cat_ids = [o["category_id"] for o in objects]
                g_cats = [o["category"] for o in objects]
                label = g_obj_ids.index(target)
                ok = (
                    type(gid) is int
                    and status in STATUSES
                    and type(target) is int
                    and type(image_id) is int
                    and type(width) is int
                    and type(height) is int
                    and 0 < width <= MAX_PIXELS
                    and 0 < height <= MAX_PIXELS
                    and seen_images.get(image_id, (width, height)) == (width, height)
                    and all(type(v) is int for v in g_qa_ids)
                    and all(type(v) is str for v in g_questions)
                    and all(type(v) is str for v in g_answers)
                    and all(type(v) is int for v in g_obj_ids)
                    and all(type(v) is int for v in g_cat_ids)
                    and all(type(v) is str for v in g_cats)
                    and all(
                        type(b) is list and len(b) == 4 and all(type(v) in _NUMBER for v in b)
                        for b in g_boxes
                    )
                    and len(set(g_obj_ids)) == len(g_obj_ids)
                )
            except (KeyError, TypeError, AttributeError, ValueError):
                ok = False
            if not ok:
                _explain(game, path, lineno, seen_images)
            ids.append(gid)
            key = coco_key(image_id)
            images.append(key)
            statuses.append(intern.setdefault(status, status))
            object_ids.append(target)
            labels.append(label)
            qa_lengths.append(len(qas))
            qa_ids.extend(g_qa_ids)
            questions.extend(g_questions)
            answers.extend(intern.setdefault(a, a) for a in g_answers)
            obj_lengths.append(len(objects))
            obj_ids.extend(g_obj_ids)
            boxes.extend(g_boxes)
            category_ids.extend(g_cat_ids)
            categories.extend(intern.setdefault(c, c) for c in g_cats)
            image_ids.append(image_id)
            image_sizes.append((width, height))
            if image_id not in seen_images:
                seen_images[image_id] = (width, height)
                ctx.images.add(key, width, height)
                url = image.get("flickr_url")
                photo = flickr_id_from_url(url) if isinstance(url, str) else None
                if photo is None:
                    no_flickr += 1
                else:
                    ctx.links.add(LINK_COCO_FLICKR, key, flickr_key(photo), source)
                    links += 1
        rules.require_records(path, len(ids), "games")
        qa_offsets, obj_offsets = _offsets(qa_lengths), _offsets(obj_lengths)
        box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        int64 = np.int64
        checked = {
            "id": rules.int_array(ids, int64, path, "id", ids),
            "image.id": rules.int_array(image_ids, int64, path, "image.id", ids),
            "qas.id": Ragged(
                qa_offsets, {"v": rules.int_array(qa_ids, int64, path, "qas.id", ids, qa_offsets)}
            ),
            "objects.id": Ragged(
                obj_offsets,
                {"v": rules.int_array(obj_ids, int64, path, "objects.id", ids, obj_offsets)},
            ),
            "objects.category_id": Ragged(
                obj_offsets,
                {
                    "v": rules.int_array(
                        category_ids, np.int32, path, "objects.category_id", ids, obj_offsets
                    )
                },
            ),
            "objects.bbox": Ragged(obj_offsets, {"v": box_array}),
        }
        rules.check(path, ids, checked, GAME_RULES)
        beyond = _beyond_image(box_array, obj_lengths, image_sizes)
        columns: dict[str, Any] = {
            "id": checked["id"],
            "image": images,
            "status": statuses,
            "object_id": np.asarray(object_ids, dtype=np.int64),
            "dialogue": Ragged(
                qa_offsets,
                {
                    "qa_ids": checked["qas.id"].values["v"],
                    "questions": questions,
                    "answers": answers,
                },
            ),
            "objects": Ragged(
                obj_offsets,
                {
                    "ids": checked["objects.id"].values["v"],
                    "boxes": box_array.astype(np.float32),
                    "category_ids": checked["objects.category_id"].values["v"],
                    "categories": categories,
                },
            ),
            "label": np.asarray(labels, dtype=np.int32),
        }
        return SplitTable(split, self.split_role(split), columns), links, no_flickr, beyond


def _offsets(lengths: list[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


def _beyond_image(
    boxes: np.ndarray, obj_lengths: list[int], image_sizes: list[tuple[int, int]]
) -> int:
    """How many object boxes reach past the edge of their game's image (accepted)."""
    if not len(boxes):
        return 0
    sizes = np.repeat(np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2), obj_lengths, 0)
    x, y, w, h = boxes.T
    return int(((x < 0) | (y < 0) | (x + w > sizes[:, 0]) | (y + h > sizes[:, 1])).sum())


def _explain(game: Any, path: Path, lineno: int, seen: dict[int, tuple[int, int]]) -> None:
    """Slow path: name the game and the field that is wrong, and raise."""
    rid: object = f"line {lineno}"
    if isinstance(game, dict) and type(game.get("id")) is int:
        rid = game["id"]
    require(game, "id", int, path, rid)
    status = require(game, "status", str, path, rid)
    if status not in STATUSES:
        raise RecordError(
            path, rid, "status", f"expected one of {', '.join(STATUSES)}, got {status!r:.60}"
        )
    target = require(game, "object_id", int, path, rid)
    image = require(game, "image", dict, path, rid)
    require_items(image, (("id", int), ("width", int), ("height", int)), path, rid, "image")
    for key in ("width", "height"):
        if not 0 < image[key] <= MAX_PIXELS:
            raise RecordError(path, rid, f"image.{key}", f"{image[key]} is outside 1..{MAX_PIXELS}")
    known = seen.get(image["id"])
    if known is not None and known != (image["width"], image["height"]):
        raise RecordError(
            path,
            rid,
            "image.width",
            f"image {image['id']} is {image['width']}x{image['height']} here but "
            f"{known[0]}x{known[1]} in an earlier game",
        )
    qas = require(game, "qas", list, path, rid)
    for i, qa in enumerate(qas):
        require_items(qa, (("id", int), ("question", str), ("answer", str)), path, rid, f"qas[{i}]")
    objects = require(game, "objects", list, path, rid)
    seen: set[int] = set()
    for i, obj in enumerate(objects):
        where = f"objects[{i}]"
        require_items(
            obj,
            (("id", int), ("category_id", int), ("category", str), ("bbox", list)),
            path,
            rid,
            where,
        )
        box = obj["bbox"]
        if len(box) != 4 or not all(type(v) in _NUMBER for v in box):
            raise RecordError(path, rid, f"{where}.bbox", f"expected 4 numbers, got {box!r:.80}")
        if obj["id"] in seen:
            raise RecordError(path, rid, f"{where}.id", f"duplicate object id {obj['id']}")
        seen.add(obj["id"])
    if target not in seen:
        raise RecordError(
            path, rid, "object_id", f"{target} is not among the game's {len(objects)} objects"
        )
    raise RecordError(path, rid, "<record>", "malformed")
