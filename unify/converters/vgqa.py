"""Visual Genome QA (v1.2): free-form QA pairs on VG images, one human answer each.

``val`` = the 5,000 QA pairs with the largest qa_id (pinned), ``train`` = the rest. Answers
are stored raw and VQA-normalised; the label set is vqa2's when vqa2 is in the same build
(12-in-1 shares one answer head across the VQA group), else vgqa's own vocabulary by the
same min-count rule. ``image_data.json`` gives image sizes and is the bridge between the
VG, COCO and Flickr universes (its coco_id / flickr_id become /links rows).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import rules
from unify.converters.base import BuildContext, Converter, RawFile, require
from unify.errors import RecordError
from unify.images import LINK_VG_COCO, LINK_VG_FLICKR, coco_key, flickr_key, vg_key
from unify.rawio import load_json
from unify.rules import MAX_PIXELS, Range, Same, Unique
from unify.table import SplitTable, TaskTable
from unify.text import clean_whitespace, normalize_answer
from unify.vocab import Vocabulary

VAL_SIZE = 5000
MIN_ANSWER_COUNT = 9
IMAGE_DATA = "image_data.json"
QUESTION_ANSWERS = "question_answers.json"
#: The raw folder that holds VG's image_data.json, which several tasks read.
VG_FOLDER = "vgqa"
ID_MAX = rules.INT64.max

QA_RULES = (
    Unique("qa_id", "QA pair id"),
    Range("qa_id", 0, ID_MAX),
    Range("image_id", 0, ID_MAX),
    Same("image_id", "entry id", "a QA pair's image is the image entry that holds it"),
)
#: image_data.json, checked inline while it is read (its records are few: one per image).
IMAGE_DATA_RULES = (
    Unique("image_id", "image id"),
    Range("image_id", 0, ID_MAX),
    Range("width", 1, MAX_PIXELS),
    Range("height", 1, MAX_PIXELS),
    Range("coco_id", 0, ID_MAX),
    Range("flickr_id", 0, ID_MAX),
)


@dataclass(frozen=True)
class VgImage:
    width: int | None
    height: int | None
    coco_id: int | None
    flickr_id: int | None


def image_data_path(raw_root: Path) -> Path:
    """Where every converter looks for VG's image_data.json (the vgqa folder)."""
    return raw_root / VG_FOLDER / IMAGE_DATA


def load_vg_image_data(ctx: BuildContext) -> dict[int, VgImage] | None:
    """VG image records by image_id, read once per build; None if the file is absent."""
    path = image_data_path(ctx.raw_root)
    if not path.is_file():
        return None

    def load() -> dict[int, VgImage]:
        records = load_json(path, VG_FOLDER, ctx.sources, ctx.limits)
        if not isinstance(records, list):
            require({"x": records}, "x", list, path, "<top level>")
        out: dict[int, VgImage] = {}
        for i, rec in enumerate(records):
            try:
                image_id = rec["image_id"]
                width, height = rec.get("width"), rec.get("height")
                coco_id, flickr_id = rec.get("coco_id"), rec.get("flickr_id")
                ok = (
                    type(image_id) is int
                    and 0 <= image_id <= ID_MAX
                    and (width is None or (type(width) is int and 0 < width <= MAX_PIXELS))
                    and (height is None or (type(height) is int and 0 < height <= MAX_PIXELS))
                    and (coco_id is None or (type(coco_id) is int and 0 <= coco_id <= ID_MAX))
                    and (flickr_id is None or (type(flickr_id) is int and 0 <= flickr_id <= ID_MAX))
                    and image_id not in out
                )
            except (KeyError, TypeError, AttributeError):
                ok = False
            if not ok:  # slow path: name the record and the field
                _explain_image(rec, i, path, out)
            out[image_id] = VgImage(width, height, coco_id, flickr_id)
        return out

    return ctx.shared("vg_image_data", load)


def add_vg_links(ctx: BuildContext, bridges_only: bool = False) -> dict[str, int]:
    """The coco_id / flickr_id links of image_data.json into /links (whole file).

    With ``bridges_only`` (a build without VG images), only records that name both a COCO
    image and a Flickr photo are added: a VG key that no task uses can only matter by
    joining two other universes, so the ~60k one-sided links would be dead weight.
    """
    records = load_vg_image_data(ctx)
    if records is None:
        return {}
    source = f"{VG_FOLDER}/{IMAGE_DATA}"
    counts = {LINK_VG_COCO: 0, LINK_VG_FLICKR: 0}
    for image_id, rec in records.items():
        if bridges_only and (rec.coco_id is None or rec.flickr_id is None):
            continue
        if rec.coco_id is not None:
            ctx.links.add(LINK_VG_COCO, vg_key(image_id), coco_key(rec.coco_id), source)
            counts[LINK_VG_COCO] += 1
        if rec.flickr_id is not None:
            ctx.links.add(LINK_VG_FLICKR, vg_key(image_id), flickr_key(rec.flickr_id), source)
            counts[LINK_VG_FLICKR] += 1
    return counts


def fill_vg_sizes(ctx: BuildContext) -> None:
    """Give every registered ``vg:`` key its size from image_data.json."""
    keys = [k for k in ctx.images.sizes if k.startswith("vg:")]
    records = load_vg_image_data(ctx) if keys else None
    if records is None:
        return
    for key in keys:
        rec = records.get(int(key[3:]))
        if rec is not None:
            ctx.images.update_size(key, rec.width, rec.height)


class Vgqa(Converter):
    version = "1.0.0"
    answer_columns = ("answer", "answer_normalized", "label")
    homepage = "https://homes.cs.washington.edu/~ranjay/visualgenome/api.html"
    field_rules = MappingProxyType(
        {"question_answers.json": QA_RULES, "image_data.json": IMAGE_DATA_RULES}
    )
    raw_files = (
        RawFile(QUESTION_ANSWERS, True, "QA pairs per image (v1.2)"),
        RawFile(IMAGE_DATA, True, "image metadata with coco_id/flickr_id"),
    )

    def convert(self, ctx: BuildContext) -> TaskTable:
        path = self.file(ctx.raw_root, QUESTION_ANSWERS)
        doc = self.load_json(ctx, QUESTION_ANSWERS)
        if not isinstance(doc, list):
            require({"x": doc}, "x", list, path, "<top level>")
        ids: list[int] = []
        image_ids: list[int] = []
        entry_ids: list[int] = []
        questions: list[str] = []
        answers: list[str] = []
        qa_iter = (
            (entry_id, qa)
            for entry_index, entry in enumerate(doc)
            for entry_id, qa in _entry_qas(entry, entry_index, path)
        )
        for entry_id, qa in ctx.limit(ctx.progress(qa_iter, desc="vgqa QA pairs")):
            try:
                qa_id, image_id, question, answer = (
                    qa["qa_id"],
                    qa["image_id"],
                    qa["question"],
                    qa["answer"],
                )
                ok = (
                    type(qa_id) is int
                    and type(image_id) is int
                    and type(question) is str
                    and type(answer) is str
                )
            except (KeyError, TypeError):
                ok = False
            if not ok:
                rid = qa.get("qa_id", "?") if isinstance(qa, dict) else "?"
                for key, kind in (
                    ("qa_id", int),
                    ("image_id", int),
                    ("question", str),
                    ("answer", str),
                ):
                    require(qa, key, kind, path, rid)
            ids.append(qa_id)
            image_ids.append(image_id)
            entry_ids.append(image_id if entry_id is None else entry_id)
            questions.append(question)
            answers.append(answer)
        del doc
        rules.require_records(path, len(ids), "QA pairs")
        id_arr = rules.int_array(ids, np.int64, path, "qa_id", ids)
        columns = {
            "qa_id": id_arr,
            "image_id": rules.int_array(image_ids, np.int64, path, "image_id", ids),
            "entry id": rules.int_array(entry_ids, np.int64, path, "entry id", ids),
        }
        rules.check(path, ids, columns, QA_RULES)
        images = [vg_key(i) for i in image_ids]
        normalized = [normalize_answer(clean_whitespace(a)) for a in answers]

        if "vqa2" in ctx.vocabularies:
            vocab = ctx.vocabularies["vqa2"]
            vocab_note = "shared with vqa2 (same build)"
        else:
            vocab = Vocabulary.from_counts(
                "vgqa",
                Counter(normalized),
                MIN_ANSWER_COUNT,
                ["vgqa/train", "vgqa/val"],
                normalized=True,
            )
            ctx.vocabularies[vocab.name] = vocab
            vocab_note = "own (vqa2 not in this build)"
        labels = np.fromiter(
            (vocab.label(a) for a in normalized), dtype=np.int32, count=len(normalized)
        )

        order = np.argsort(id_arr, kind="stable")
        is_val = np.zeros(len(id_arr), dtype=bool)
        is_val[order[max(0, len(order) - VAL_SIZE) :]] = True
        columns: dict[str, Any] = {
            "id": id_arr,
            "image": images,
            "question": questions,
            "answer": answers,
            "answer_normalized": normalized,
            "label": labels,
        }
        full = SplitTable("all", "train", columns)
        splits = []
        for name, role, rows in (
            ("train", "train", np.flatnonzero(~is_val)),
            ("val", "eval", np.flatnonzero(is_val)),
        ):
            splits.append(SplitTable(name, role, full.take(rows)))
        for split in splits:
            ctx.images.add_many(split.columns["image"])
        report = {
            "vocabulary": vocab.name,
            "vocabulary_note": vocab_note,
            "counts": {s.name: s.num_examples for s in splits},
            "out_of_vocabulary": int((labels < 0).sum()),
        }
        # Required file: parse and record it even if no size is needed. It may be empty: it
        # only adds sizes and links, no split depends on it.
        load_vg_image_data(ctx)
        return TaskTable(self.name, self.task_attrs(label_set=vocab.name), splits, report)


def _entry_qas(entry: Any, index: int, path: Path) -> list[tuple[int | None, Any]]:
    """(the entry's image id, QA pair) for the QA pairs of one image entry."""
    rid = entry.get("id", f"#{index}") if isinstance(entry, dict) else f"#{index}"
    qas = require(entry, "qas", list, path, f"image entry {rid}")
    entry_id = entry.get("id")
    if entry_id is not None and type(entry_id) is not int:
        require(entry, "id", int, path, f"image entry #{index}")
    return [(entry_id, qa) for qa in qas]


def _explain_image(rec: Any, index: int, path: Path, seen: dict[int, VgImage]) -> None:
    """Slow path for an image_data.json record: name the bad field and raise."""
    rid = rec.get("image_id", f"#{index}") if isinstance(rec, dict) else f"#{index}"
    image_id = require(rec, "image_id", int, path, rid)
    for key in ("width", "height", "coco_id", "flickr_id"):
        if rec.get(key) is not None:
            require(rec, key, int, path, rid)
    ids = {"image_id": image_id} | {
        k: rec[k] for k in ("width", "height", "coco_id", "flickr_id") if rec.get(k) is not None
    }
    for rule in IMAGE_DATA_RULES:
        if isinstance(rule, Range) and rule.field in ids:
            rule.check(path, [rid], {rule.field: [ids[rule.field]]})
    if image_id in seen:
        raise RecordError(path, rid, "image_id", f"duplicate image id {image_id}")
    raise RecordError(path, rid, "<record>", "malformed")  # pragma: no cover
