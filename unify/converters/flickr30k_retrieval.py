"""Flickr30k caption retrieval on Karpathy's split (``dataset_flickr30k.json``).

Same file layout as COCO's Karpathy file without ``filepath``/``cocoid``: an image is named
only by its ``filename`` (``"1000092795.jpg"``), whose stem is the Flickr photo id, so the
key is ``flickr:<stem>``, the same key SNLI-VE and VG's flickr_id links use. Splits are
Karpathy's train/val/test (29,000 / 1,014 / 1,000 images); no folds.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unify.converters.base import RawFile, require
from unify.converters.karpathy import CAPTION_RULES, KarpathyConverter
from unify.errors import RecordError
from unify.images import flickr_key

DATASET_FILE = "dataset_flickr30k.json"
#: ``<Flickr photo id>.<extension>``; the release uses ``.jpg`` throughout.
PHOTO_FILE = re.compile(r"(\d+)\.\w+", re.ASCII)


class Flickr30kRetrieval(KarpathyConverter):
    karpathy_file = DATASET_FILE
    dataset_name = "flickr30k"
    image_field = "filename"
    field_rules = MappingProxyType(
        {"captions": ("`filename`: <Flickr photo id (ASCII digits)>.jpg", *CAPTION_RULES)}
    )
    split_of = MappingProxyType({"train": "train", "val": "val", "test": "test"})
    raw_files = (
        RawFile(DATASET_FILE, True, "Karpathy split of Flickr30k captions (caption_datasets.zip)"),
    )

    def image_key(self, image: dict[str, Any]) -> str:
        match = PHOTO_FILE.fullmatch(image["filename"])
        if match is None:
            raise ValueError("filename")
        return flickr_key(match.group(1))

    def explain_image_key(self, image: dict[str, Any], path: Path, record: str) -> None:
        filename = require(image, "filename", str, path, record)
        if PHOTO_FILE.fullmatch(filename) is None:
            raise RecordError(
                path, record, "filename", f"{filename!r} is not <Flickr photo id>.jpg"
            )
