"""COCO caption retrieval on Karpathy's split (``dataset_coco.json``).

Splits as pinned in the canonical table: ``train`` = Karpathy ``train`` + ``restval``,
``val`` and ``test`` (the 5k test images). Image keys come from ``cocoid``, never from file
names (2017 files are named differently). The 1k protocol needs each test image's fold:
fold k = test images k*1000 .. k*1000+999 in file order, stored per caption (``fold``) and
per candidate image (``candidate_folds``) so a scorer can rebuild both protocols.

The optional COCO ``captions_*2014.json`` / ``instances_*2014.json`` files contribute only
their ``images`` records: ``flickr_url`` becomes a ``coco_flickr_url`` link (the bridge to
Flickr30k and SNLI-VE photos) and width/height the image sizes. Instances files are
hundreds of MB, so they are streamed, and read whole also in smoke mode (like VG's
image_data.json) so leakage checks see every bridge.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import rules
from unify.converters.base import BuildContext, RawFile, require
from unify.converters.karpathy import CAPTION_RULES, KarpathyConverter, KarpathySplit
from unify.errors import DataError, RecordError
from unify.images import LINK_COCO_FLICKR, coco_key, flickr_id_from_url, flickr_key
from unify.rules import MAX_PIXELS, Range, Unique
from unify.table import SplitTable
from unify.tasks import Split

DATASET_FILE = "dataset_coco.json"
FOLD_SIZE = 1000
COCO_SUBSETS = ("train2014", "val2014")
#: Per subset, the first present of these supplies the image records (same records).
COCO_KINDS = ("captions", "instances")
COCO_HOMEPAGE = "https://cocodataset.org/#download"
ID_MAX = rules.INT64.max
#: The image records of the optional COCO captions/instances files (checked inline).
COCO_IMAGE_RULES = (
    Unique("id", "image id"),
    Range("id", 0, ID_MAX),
    Range("width", 1, MAX_PIXELS),
    Range("height", 1, MAX_PIXELS),
)


class CocoRetrieval(KarpathyConverter):
    karpathy_file = DATASET_FILE
    dataset_name = "coco"
    image_field = "cocoid"
    field_rules = MappingProxyType(
        {
            "captions": (Range("cocoid", 0, ID_MAX), *CAPTION_RULES),
            "COCO image records": COCO_IMAGE_RULES,
        }
    )
    split_of = MappingProxyType(
        {"train": "train", "restval": "train", "val": "val", "test": "test"}
    )
    raw_files = (
        RawFile(DATASET_FILE, True, "Karpathy split of COCO captions (caption_datasets.zip)"),
        *(
            RawFile(
                f"{kind}_{subset}.json",
                False,
                f"COCO {kind} {subset} ({COCO_HOMEPAGE}): image records for flickr_url links",
            )
            for subset in COCO_SUBSETS
            for kind in COCO_KINDS
        ),
    )

    def image_key(self, image: dict[str, Any]) -> str:
        cocoid = image["cocoid"]
        if type(cocoid) is not int or not 0 <= cocoid <= ID_MAX:
            raise TypeError("cocoid")
        return coco_key(cocoid)

    def explain_image_key(self, image: dict[str, Any], path: Path, record: str) -> None:
        cocoid = require(image, "cocoid", int, path, record)
        Range("cocoid", 0, ID_MAX).check(path, [record], {"cocoid": [cocoid]})

    def split_table(self, decl: Split, part: KarpathySplit) -> SplitTable:
        table = super().split_table(decl, part)
        if decl.name == "test":
            folds = folds_1k(len(part.candidates))
            fold_of = dict(zip(part.candidates, folds.tolist(), strict=True))
            table.columns["fold"] = np.fromiter(
                (fold_of[k] for k in part.images), dtype=np.int8, count=len(part.images)
            )
            table.arrays["candidate_folds"] = folds
        return table

    def finish(self, ctx: BuildContext, report: dict[str, Any]) -> None:
        """Links and sizes from whichever COCO image files are present."""
        read: list[str] = []
        links = sized = 0
        for subset in COCO_SUBSETS:
            name = next(
                (
                    f"{kind}_{subset}.json"
                    for kind in COCO_KINDS
                    if self.has_file(ctx, f"{kind}_{subset}.json")
                ),
                None,
            )
            if name is None:
                continue
            n_links, n_sized = self._read_coco_images(ctx, name)
            read.append(name)
            links += n_links
            sized += n_sized
        report["coco_image_files"] = read
        report["coco_flickr_links"] = links
        report["coco_sizes_filled"] = sized

    def _read_coco_images(self, ctx: BuildContext, name: str) -> tuple[int, int]:
        path = self.file(ctx.raw_root, name)
        source = f"{self.task_dir(ctx.raw_root).name}/{name}"
        sizes = ctx.images.sizes
        count = links = sized = 0
        seen: set[int] = set()
        records = self.iter_json_array(ctx, name, "images.item")
        for index, rec in enumerate(ctx.progress(records, desc=f"{self.name} {name} images")):
            try:
                image_id, url = rec["id"], rec.get("flickr_url")
                width, height = rec.get("width"), rec.get("height")
                ok = (
                    type(image_id) is int
                    and 0 <= image_id <= ID_MAX
                    and image_id not in seen
                    and (url is None or type(url) is str)
                    and (width is None or (type(width) is int and 0 < width <= MAX_PIXELS))
                    and (height is None or (type(height) is int and 0 < height <= MAX_PIXELS))
                )
            except (KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                _explain_coco_image(rec, index, path, seen)
            seen.add(image_id)
            count += 1
            key = coco_key(image_id)
            photo = flickr_id_from_url(url) if url else None
            if photo is not None:
                ctx.links.add(LINK_COCO_FLICKR, key, flickr_key(photo), source)
                links += 1
            if sizes.get(key) == (-1, -1) and width is not None and height is not None:
                ctx.images.update_size(key, width, height)
                sized += 1
        if count == 0:
            raise DataError(f'{path}: no image records under "images" (is it a COCO file?)')
        return links, sized


def folds_1k(num_images: int) -> np.ndarray:
    """The 1k fold of each test image by its position in the file (0-4 for the 5k split)."""
    folds = np.arange(num_images, dtype=np.int64) // FOLD_SIZE
    if num_images and folds[-1] > np.iinfo(np.int8).max:
        raise DataError(f"{num_images} test images: too many for int8 folds")
    return folds.astype(np.int8)


def _explain_coco_image(rec: Any, index: int, path: Path, seen: set[int]) -> None:
    """Slow path for a COCO image record: name the bad field and raise."""
    rid = rec.get("id") if isinstance(rec, dict) else None
    record = f"image {rid}" if type(rid) is int else f"image record #{index}"
    image_id = require(rec, "id", int, path, record)
    for key, kind in (("flickr_url", str), ("width", int), ("height", int)):
        if rec.get(key) is not None:
            require(rec, key, kind, path, record)
    values: dict[str, list[Any]] = {"id": [image_id]}
    for k in ("width", "height"):
        if rec.get(k) is not None:
            values[k] = [rec[k]]
    rules.check(path, [record], values, [r for r in COCO_IMAGE_RULES if isinstance(r, Range)])
    if image_id in seen:
        raise RecordError(path, record, "id", f"duplicate image id {image_id}")
    raise RecordError(path, record, "id", "malformed image record")
