"""RefCOCO, RefCOCO+ and RefCOCOg (umd): referring expressions on COCO train2014 images.

Three declarations, one reader, because the three releases share the refer toolkit's layout
(lichengunc/refer): ``refs(unc).p`` or ``refs(umd).p``, a Python-2 pickle of refs, and
``instances.json``, COCO instances for the referred images. One example is one sentence
(``sent_id``); its target is the ``bbox`` [x, y, w, h] of the ref's annotation ``ann_id``
in instances.json, and its candidate regions are every instance annotation of its image
(in instances.json order), as comprehension models rank them.

The pickle is read by ``unify.safe_pickle`` (no globals: a downloaded pickle never runs
code; default decoding first, then ``encoding="bytes"`` + UTF-8). Splits come from each
ref's ``split`` field; a value the release does not use (``testC``, a typo) is an error, not
a silently dropped ref. Image sizes and COCO -> Flickr links (``flickr_url``) come from the
instances.json image records of the images the examples use.

Smoke mode (``--max-examples N``) keeps the first N sentences of the refs file in release
order; instances.json is always read whole, since any ref may point anywhere in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

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
from unify.rawio import read_bytes
from unify.rules import MAX_PIXELS, Boxes, Range, Same, Text, Unique
from unify.safe_pickle import PlainPickle, loads_plain
from unify.table import Ragged, SplitTable, TaskTable

INSTANCES = "instances.json"
REFS_UNC = "refs(unc).p"
REFS_UMD = "refs(umd).p"
HOMEPAGE = "https://github.com/lichengunc/refer"

_NUMBER = (int, float)
ID_MAX = rules.INT64.max
INT32_MAX = int(np.iinfo(np.int32).max)

#: The refs pickle, per sentence (one example) and per ref.
REF_RULES = (
    Unique("sent_id", "sentence id"),
    Range("sent_id", 0, ID_MAX),
    "`ref_id`: unique in the file",
    Range("ref_id", 0, ID_MAX),
    "`split`: one of the task's splits",
    "`image_id`: an image of instances.json",
    "`ann_id`: an annotation of instances.json, on the ref's image",
    Same("category_id", "annotation category_id", "the ref's category is its annotation's"),
    Text("sent"),
    Text("raw"),
)
#: instances.json (checked inline while read, except the boxes).
INSTANCES_RULES = (
    "`images[].id`, `annotations[].id`: unique in the file, 0 or more",
    f"`images[].width`, `images[].height`: 1 to {MAX_PIXELS}",
    "`annotations[].category_id`: 0 to 2**31-1",
    Boxes("bbox"),
)

#: (ref_id, ann_id, image_id, category_id, split index, sentences)
RefFields = tuple[int, int, int, int, int, list[Any]]


@dataclass
class Instances:
    """instances.json, indexed for the refs: annotations grouped by image."""

    sizes: dict[int, tuple[int, int]]
    flickr_urls: dict[int, str | None]
    #: annotation id -> row in the grouped arrays below
    ann_row: dict[int, int]
    ann_ids: np.ndarray  # int64 [A], grouped by image (stable: file order within an image)
    ann_images: np.ndarray  # int64 [A]
    boxes: np.ndarray  # float64 [A, 4]: the release's JSON numbers exactly (schema 1.1)
    category_ids: np.ndarray  # int32 [A]
    #: image id -> (first row, number of rows) in the grouped arrays
    image_rows: dict[int, tuple[int, int]]
    #: annotations whose box reaches past the edge of their image (accepted, counted)
    beyond_image: int = 0


class ReferConverter(Converter):
    """The shared reader; subclasses declare the release (name, refs file, splits)."""

    refs_file: ClassVar[str]
    version = "1.1.0"  # 1.1: bbox and region boxes stored as float64
    answer_columns = ("ann_id", "category_id", "bbox")
    homepage = HOMEPAGE
    field_rules = MappingProxyType({"refs pickle": REF_RULES, INSTANCES: INSTANCES_RULES})

    def load_pickle(self, ctx: BuildContext, name: str) -> PlainPickle:
        """Read a pickle through the source log (hashed) and load it as plain data."""
        path = self.file(ctx.raw_root, name)
        return loads_plain(read_bytes(path, self.name, ctx.sources), path, ctx.limits)

    def convert(self, ctx: BuildContext) -> TaskTable:
        inst = self._read_instances(ctx)
        refs_path = self.file(ctx.raw_root, self.refs_file)
        loaded = self.load_pickle(ctx, self.refs_file)
        refs = loaded.value
        if not isinstance(refs, list):
            require({"refs": refs}, "refs", list, refs_path, "<top level>")
        split_names = [decl.name for decl in self.splits]
        split_index = {name: i for i, name in enumerate(split_names)}

        ids: list[int] = []
        ref_ids: list[int] = []
        ann_ids: list[int] = []
        image_ids: list[int] = []
        category_ids: list[int] = []
        sentences: list[str] = []
        raws: list[str] = []
        split_of: list[int] = []
        ref_count = 0
        stream = self._sentences(refs, refs_path, split_index, inst)
        for fields, new_ref, sent_id, text, raw in ctx.limit(
            ctx.progress(stream, desc=f"{self.name} sentences")
        ):
            ref_count += new_ref
            ids.append(sent_id)
            sentences.append(text)
            raws.append(raw)
            ref_ids.append(fields[0])
            ann_ids.append(fields[1])
            image_ids.append(fields[2])
            category_ids.append(fields[3])
            split_of.append(fields[4])

        rules.require_records(refs_path, ref_count, "refs")
        image_arr = np.asarray(image_ids, dtype=np.int64)
        ann_arr = np.asarray(ann_ids, dtype=np.int64)
        target_rows = np.fromiter(
            (inst.ann_row[a] for a in ann_ids), dtype=np.int64, count=len(ann_ids)
        )
        columns = {
            "sent_id": rules.int_array(ids, np.int64, refs_path, "sent_id", ids),
            "ref_id": rules.int_array(ref_ids, np.int64, refs_path, "ref_id", ids),
            "category_id": rules.int_array(category_ids, np.int32, refs_path, "category_id", ids),
            "annotation category_id": inst.category_ids[target_rows],
            "sent": sentences,
            "raw": raws,
        }
        rules.check(refs_path, ids, columns, REF_RULES)
        full = SplitTable(
            "all",
            "train",
            {
                "id": columns["sent_id"],
                "image": [coco_key(i) for i in image_ids],
                "ref_id": columns["ref_id"],
                "ann_id": ann_arr,
                "category_id": columns["category_id"],
                "sentence": sentences,
                "raw": raws,
                "bbox": inst.boxes[target_rows].reshape(-1, 4),
                "regions": _regions(image_arr, inst),
            },
        )
        split_arr = np.asarray(split_of, dtype=np.int64)
        splits = [
            SplitTable(name, self.split_role(name), full.take(np.flatnonzero(split_arr == k)))
            for k, name in enumerate(split_names)
        ]
        links = self._register_images(ctx, sorted(set(image_ids)), inst)
        report: dict[str, Any] = {
            "counts": {s.name: s.num_examples for s in splits},
            "refs": ref_count,
            "images": len(set(image_ids)),
            "refs_pickle_decoding": loaded.decoding,
            "coco_flickr_links": links,
            # Accepted knowingly (docs/raw-layout.md): COCO boxes computed from polygons can
            # end past the image edge; counted, not refused.
            "accepted": {"boxes_beyond_image": inst.beyond_image},
        }
        return TaskTable(self.name, self.task_attrs(), splits, report)

    def _sentences(
        self,
        refs: list[Any],
        path: Path,
        split_index: dict[str, int],
        inst: Instances,
    ) -> Iterator[tuple[RefFields, bool, int, str, str]]:
        """(ref fields, first sentence of its ref?, sent_id, sent, raw) in release order."""
        seen: set[int] = set()
        for index, ref in enumerate(refs):
            fields = _ref_fields(ref, index, path, split_index, inst)
            if fields[0] in seen:
                raise RecordError(path, fields[0], "ref_id", f"duplicate ref id {fields[0]}")
            seen.add(fields[0])
            for j, sent in enumerate(fields[5]):
                try:
                    sent_id, text, raw = sent["sent_id"], sent["sent"], sent["raw"]
                    ok = type(sent_id) is int and type(text) is str and type(raw) is str
                except (KeyError, TypeError):
                    ok = False
                if not ok:
                    _explain_sentence(sent, fields[0], j, path)
                yield fields, j == 0, sent_id, text, raw

    def _read_instances(self, ctx: BuildContext) -> Instances:
        path = self.file(ctx.raw_root, INSTANCES)
        doc = self.load_json(ctx, INSTANCES)
        images = require(doc, "images", list, path, "<top level>")
        annotations = require(doc, "annotations", list, path, "<top level>")

        sizes: dict[int, tuple[int, int]] = {}
        urls: dict[int, str | None] = {}
        for i, img in enumerate(images):
            try:
                image_id, width, height = img["id"], img["width"], img["height"]
                url = img.get("flickr_url")
                ok = (
                    type(image_id) is int
                    and 0 <= image_id <= ID_MAX
                    and type(width) is int
                    and 0 < width <= MAX_PIXELS
                    and type(height) is int
                    and 0 < height <= MAX_PIXELS
                    and (url is None or type(url) is str)
                )
            except (KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                rid = f"image {img.get('id', f'#{i}')}" if isinstance(img, dict) else f"image #{i}"
                for key in ("id", "width", "height"):
                    require(img, key, int, path, rid)
                require(img, "flickr_url", str, path, rid)
                for rule in (
                    Range("id", 0, ID_MAX),
                    Range("width", 1, MAX_PIXELS),
                    Range("height", 1, MAX_PIXELS),
                ):
                    rule.check(path, [rid], {rule.field: [img[rule.field]]})
            if image_id in sizes:
                raise RecordError(path, f"image {image_id}", "id", "duplicate image id")
            sizes[image_id] = (width, height)
            urls[image_id] = url

        n = len(annotations)
        ann_ids = np.empty(n, dtype=np.int64)
        ann_images = np.empty(n, dtype=np.int64)
        category_ids = np.empty(n, dtype=np.int32)
        # float64, never float32: the scorer compares these with predictions at the IoU = 0.5
        # boundary, where a float32 rounding of 123.45 flips verdicts (schema 1.1).
        boxes = np.empty((n, 4), dtype=np.float64)
        for i, ann in enumerate(annotations):
            try:
                aid, image_id, cat, bbox = (
                    ann["id"],
                    ann["image_id"],
                    ann["category_id"],
                    ann["bbox"],
                )
                ok = (
                    type(aid) is int
                    and 0 <= aid <= ID_MAX
                    and type(image_id) is int
                    and 0 <= image_id <= ID_MAX
                    and type(cat) is int
                    and 0 <= cat <= INT32_MAX
                    and type(bbox) is list
                    and len(bbox) == 4
                    and all(type(v) is float or type(v) is int for v in bbox)
                )
            except (KeyError, TypeError):
                ok = False
            if not ok:
                _explain_annotation(ann, i, path)
            ann_ids[i], ann_images[i], category_ids[i] = aid, image_id, cat
            boxes[i] = bbox
        rules.check(path, _AnnotationLabels(ann_ids), {"bbox": boxes}, INSTANCES_RULES)
        beyond = _beyond_image(ann_images, boxes, sizes)

        order = np.argsort(ann_images, kind="stable")
        ann_ids, ann_images = ann_ids[order], ann_images[order]
        category_ids, boxes = category_ids[order], boxes[order]
        ann_row = {int(a): r for r, a in enumerate(ann_ids.tolist())}
        if len(ann_row) != n:
            uniq, counts = np.unique(ann_ids, return_counts=True)
            dup = int(uniq[counts > 1][0])
            raise RecordError(path, f"annotation {dup}", "id", "duplicate annotation id")
        starts = np.flatnonzero(np.r_[True, ann_images[1:] != ann_images[:-1]]) if n else []
        ends = [*list(starts[1:]), n]
        image_rows = {
            int(ann_images[s]): (int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)
        }
        return Instances(
            sizes, urls, ann_row, ann_ids, ann_images, boxes, category_ids, image_rows, beyond
        )

    def _register_images(self, ctx: BuildContext, image_ids: list[int], inst: Instances) -> int:
        """Sizes into /images; flickr_url photo ids into /links (COCO <-> Flickr)."""
        task_dir = self.task_dir(ctx.raw_root)
        source = f"{task_dir.name}/{INSTANCES}"
        links = 0
        for image_id in image_ids:
            key = coco_key(image_id)
            width, height = inst.sizes[image_id]
            ctx.images.add(key, width, height)
            photo = flickr_id_from_url(inst.flickr_urls.get(image_id) or "")
            if photo is not None:
                ctx.links.add(LINK_COCO_FLICKR, key, flickr_key(photo), source)
                links += 1
        return links


def _ref_fields(
    ref: Any, index: int, path: Path, split_index: dict[str, int], inst: Instances
) -> RefFields:
    """(ref_id, ann_id, image_id, category_id, split index, sentences), checked against
    the split names and instances.json; errors name the ref and the field."""
    try:
        ref_id, ann_id, image_id, category_id, split, sents = (
            ref["ref_id"],
            ref["ann_id"],
            ref["image_id"],
            ref["category_id"],
            ref["split"],
            ref["sentences"],
        )
        ok = (
            type(ref_id) is int
            and type(ann_id) is int
            and type(image_id) is int
            and type(category_id) is int
            and type(split) is str
            and type(sents) is list
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        rid = ref.get("ref_id", f"#{index}") if isinstance(ref, dict) else f"#{index}"
        for key, kind in (
            ("ref_id", int),
            ("ann_id", int),
            ("image_id", int),
            ("category_id", int),
            ("split", str),
            ("sentences", list),
        ):
            require(ref, key, kind, path, rid)
    k = split_index.get(split)
    if k is None:
        raise RecordError(
            path,
            ref_id,
            "split",
            f"unknown split {split!r} (this release's splits: {', '.join(split_index)})",
        )
    if image_id not in inst.sizes:
        raise RecordError(path, ref_id, "image_id", f"image {image_id} is not in {INSTANCES}")
    row = inst.ann_row.get(ann_id)
    if row is None:
        raise RecordError(path, ref_id, "ann_id", f"annotation {ann_id} is not in {INSTANCES}")
    if int(inst.ann_images[row]) != image_id:
        raise RecordError(
            path,
            ref_id,
            "ann_id",
            f"annotation {ann_id} is on image {int(inst.ann_images[row])} in {INSTANCES}, "
            f"not on the ref's image {image_id}",
        )
    return ref_id, ann_id, image_id, category_id, k, sents


def _explain_sentence(sent: Any, ref_id: int, j: int, path: Path) -> None:
    """Slow path: name the bad field of a ref's sentence, and raise."""
    require_items(
        sent, (("sent_id", int), ("sent", str), ("raw", str)), path, ref_id, f"sentences[{j}]"
    )
    raise RecordError(path, ref_id, f"sentences[{j}]", "malformed")


class _AnnotationLabels:
    """Record names of instances.json annotations by row: "annotation <id>"."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids

    def __getitem__(self, row: int) -> str:
        return f"annotation {int(self._ids[row])}"


def _beyond_image(
    ann_images: np.ndarray, boxes: np.ndarray, sizes: dict[int, tuple[int, int]]
) -> int:
    """How many boxes (of annotations on a listed image) reach past the image's edge."""
    if not len(boxes) or not sizes:
        return 0
    known = np.fromiter(sizes, dtype=np.int64, count=len(sizes))
    order = np.argsort(known)
    known = known[order]
    dims = np.asarray(list(sizes.values()), dtype=np.float64).reshape(-1, 2)[order]
    pos = np.minimum(np.searchsorted(known, ann_images), len(known) - 1)
    listed = known[pos] == ann_images
    width, height = dims[pos, 0], dims[pos, 1]
    x, y, w, h = boxes.T
    beyond = (x < 0) | (y < 0) | (x + w > width) | (y + h > height)
    return int((beyond & listed).sum())


def _explain_annotation(ann: Any, index: int, path: Path) -> None:
    """Slow path: name the bad field of an instances.json annotation, and raise."""
    rid = f"annotation {ann.get('id', f'#{index}')}" if isinstance(ann, dict) else f"#{index}"
    for key in ("id", "image_id", "category_id"):
        require(ann, key, int, path, rid)
    for key, high in (("id", ID_MAX), ("image_id", ID_MAX), ("category_id", INT32_MAX)):
        Range(key, 0, high).check(path, [rid], {key: [ann[key]]})
    bbox = require(ann, "bbox", list, path, rid)
    if len(bbox) != 4 or not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in bbox):
        raise RecordError(path, rid, "bbox", f"expected 4 numbers [x, y, w, h], got {bbox!r:.80}")
    raise RecordError(path, rid, "bbox", "malformed")  # pragma: no cover - fast path agreed


def _regions(image_ids: np.ndarray, inst: Instances) -> Ragged:
    """Every annotation of each example's image, gathered without a Python loop per row."""
    first = np.empty(len(image_ids), dtype=np.int64)
    count = np.empty(len(image_ids), dtype=np.int64)
    for i, image_id in enumerate(image_ids.tolist()):
        first[i], count[i] = inst.image_rows[image_id]
    offsets = np.zeros(len(image_ids) + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    flat = np.arange(offsets[-1], dtype=np.int64) + np.repeat(first - offsets[:-1], count)
    return Ragged(
        offsets,
        {
            "ann_ids": inst.ann_ids[flat],
            "boxes": inst.boxes[flat].reshape(-1, 4),
            "category_ids": inst.category_ids[flat],
        },
    )


class RefCoco(ReferConverter):
    refs_file = REFS_UNC
    raw_files = (
        RawFile(REFS_UNC, True, "refs with sentences and splits (Python-2 pickle)"),
        RawFile(INSTANCES, True, "COCO instances of the referred images"),
    )


class RefCocoPlus(ReferConverter):
    refs_file = REFS_UNC
    raw_files = RefCoco.raw_files


class RefCocog(ReferConverter):
    refs_file = REFS_UMD
    raw_files = (
        RawFile(REFS_UMD, True, "refs with sentences and UMD splits (Python-2 pickle)"),
        RawFile(INSTANCES, True, "COCO instances of the referred images"),
    )
