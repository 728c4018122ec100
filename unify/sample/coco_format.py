"""Writer of COCO annotation files: ``captions_*.json``, ``instances_*.json`` and the refer
toolkit's ``instances.json`` (same layout).

A COCO file is ``info``, ``licenses``, ``images`` (id, width, height, file_name, coco_url,
flickr_url, ...), ``annotations`` (captions, or boxes with category_id, area, iscrowd,
segmentation) and, for instances, ``categories``. The two releases differ in layout only:
the 2014 files (the ones 12-in-1's datasets point at) put ``images`` before ``licenses``,
are compact and escape slashes (``http:\\/\\/mscoco.org``); the 2017 files put ``licenses``
first and write ``": "``. ``CocoStyle`` captures that, so a written file looks like the
release it imitates. Images and annotations are streamed from any iterable: instances
files are hundreds of MB at full scale.

Build records with ``coco_image``, ``caption_annotation``, ``instance_annotation`` and
``category`` (release key order), then call ``write_coco`` (or the two named helpers).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from unify.sample.jsonfile import atomic_file

INFO_2014 = {
    "description": "This is stable 1.0 version of the 2014 MS COCO dataset.",
    "url": "http://mscoco.org",
    "version": "1.0",
    "year": 2014,
    "contributor": "Microsoft COCO group",
    "date_created": "2015-01-27 09:11:52.357475",
}
INFO_2017 = {
    "description": "COCO 2017 Dataset",
    "url": "http://cocodataset.org",
    "version": "1.0",
    "year": 2017,
    "contributor": "COCO Consortium",
    "date_created": "2017/09/01",
}
LICENSES = [
    {"url": f"http://creativecommons.org/licenses/{kind}/2.0/", "id": i, "name": name}
    for i, (kind, name) in enumerate(
        (
            ("by-nc-sa", "Attribution-NonCommercial-ShareAlike License"),
            ("by-nc", "Attribution-NonCommercial License"),
            ("by-nc-nd", "Attribution-NonCommercial-NoDerivs License"),
            ("by", "Attribution License"),
            ("by-sa", "Attribution-ShareAlike License"),
            ("by-nd", "Attribution-NoDerivs License"),
        ),
        start=1,
    )
] + [
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]


@dataclass(frozen=True)
class CocoStyle:
    """How one COCO release serialises its files."""

    name: str
    #: Top-level keys in file order (``categories`` is skipped when not given).
    keys: tuple[str, ...]
    separators: tuple[str, str]
    escape_slashes: bool
    ensure_ascii: bool
    info: Mapping[str, Any] = field(default_factory=dict)


COCO_2014 = CocoStyle(
    "2014",
    ("info", "images", "licenses", "annotations", "categories"),
    (",", ":"),
    escape_slashes=True,
    ensure_ascii=False,
    info=INFO_2014,
)
COCO_2017 = CocoStyle(
    "2017",
    ("info", "licenses", "images", "annotations", "categories"),
    (",", ": "),
    escape_slashes=False,
    ensure_ascii=True,
    info=INFO_2017,
)


def flickr_static_url(photo_id: int, farm: int | None = None, server: int | None = None) -> str:
    """A static Flickr URL as COCO's ``flickr_url`` (``<photo id>_<secret>_z.jpg``); farm,
    server and secret are derived from the photo id so the same id gives the same URL."""
    farm = 1 + photo_id % 9 if farm is None else farm
    server = 1000 + photo_id % 8000 if server is None else server
    secret = f"{(photo_id * 2654435761) % (1 << 40):010x}"
    return f"http://farm{farm}.staticflickr.com/{server}/{photo_id}_{secret}_z.jpg"


def coco_image(
    image_id: int,
    width: int,
    height: int,
    subset: str = "train2014",
    *,
    flickr_url: str | None = None,
    license: int = 1,
    date_captured: str = "2013-11-14 11:18:45",
    style: CocoStyle = COCO_2014,
) -> dict[str, Any]:
    """An ``images`` record in release key order; file name and coco_url per ``style``."""
    if style.name == "2014":
        file_name = f"COCO_{subset}_{image_id:012d}.jpg"
        coco_url = f"http://mscoco.org/images/{image_id}"
    else:
        file_name = f"{image_id:012d}.jpg"
        coco_url = f"http://images.cocodataset.org/{subset}/{file_name}"
    return {
        "license": license,
        "file_name": file_name,
        "coco_url": coco_url,
        "height": height,
        "width": width,
        "date_captured": date_captured,
        "flickr_url": flickr_url if flickr_url is not None else flickr_static_url(image_id),
        "id": image_id,
    }


def caption_annotation(ann_id: int, image_id: int, caption: str) -> dict[str, Any]:
    return {"image_id": image_id, "id": ann_id, "caption": caption}


def instance_annotation(
    ann_id: int,
    image_id: int,
    category_id: int,
    bbox: Sequence[float],
    *,
    segmentation: Any = None,
    area: float | None = None,
    iscrowd: int = 0,
) -> dict[str, Any]:
    """An object annotation; without ``segmentation`` the box's own polygon is used, and
    ``area`` defaults to the box area."""
    x, y, w, h = (float(v) for v in bbox)
    if segmentation is None:
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {
        "segmentation": segmentation,
        "area": w * h if area is None else area,
        "iscrowd": iscrowd,
        "image_id": image_id,
        "bbox": [x, y, w, h],
        "category_id": category_id,
        "id": ann_id,
    }


def category(category_id: int, name: str, supercategory: str) -> dict[str, Any]:
    return {"supercategory": supercategory, "id": category_id, "name": name}


def write_coco(
    path: Path,
    images: Iterable[Mapping[str, Any]],
    annotations: Iterable[Mapping[str, Any]] = (),
    categories: Iterable[Mapping[str, Any]] | None = None,
    *,
    style: CocoStyle = COCO_2014,
    info: Mapping[str, Any] | None = None,
    licenses: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write one COCO annotation file atomically, streaming ``images`` and ``annotations``.

    ``categories=None`` leaves the key out (caption files have none).
    """
    parts: dict[str, Any] = {
        "info": style.info if info is None else info,
        "licenses": LICENSES if licenses is None else licenses,
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    item_sep, key_sep = style.separators
    dump = _dumper(style)
    with atomic_text(path) as f:
        f.write("{")
        first = True
        for key in style.keys:
            value = parts[key]
            if value is None:
                continue
            f.write(("" if first else item_sep) + json.dumps(key) + key_sep)
            first = False
            if isinstance(value, Mapping):
                f.write(dump(value))
                continue
            f.write("[")
            for i, item in enumerate(value):
                if i:
                    f.write(item_sep)
                f.write(dump(item))
            f.write("]")
        f.write("}")
    return path


def write_coco_captions(
    task_dir: Path,
    subset: str,
    images: Iterable[Mapping[str, Any]],
    captions: Iterable[Mapping[str, Any]],
    style: CocoStyle = COCO_2014,
) -> Path:
    """``captions_<subset>.json`` (no categories)."""
    return write_coco(task_dir / f"captions_{subset}.json", images, captions, style=style)


def write_coco_instances(
    path: Path,
    images: Iterable[Mapping[str, Any]],
    annotations: Iterable[Mapping[str, Any]],
    categories: Iterable[Mapping[str, Any]],
    style: CocoStyle = COCO_2014,
) -> Path:
    """An instances file at ``path`` (``instances_<subset>.json``, refer's ``instances.json``)."""
    return write_coco(path, images, annotations, categories, style=style)


def _dumper(style: CocoStyle) -> Any:
    """One record to text in the style's layout (orjson for the compact UTF-8 layout)."""
    if style.separators == (",", ":") and not style.ensure_ascii:

        def dump(obj: Any) -> str:
            return orjson.dumps(obj).decode()

    else:

        def dump(obj: Any) -> str:
            return json.dumps(obj, separators=style.separators, ensure_ascii=style.ensure_ascii)

    if not style.escape_slashes:
        return dump
    # "/" can only occur inside JSON strings, where "\/" is a valid escape of it.
    return lambda obj: dump(obj).replace("/", "\\/")


def atomic_text(path: Path) -> contextlib.AbstractContextManager[IO[str]]:
    """A UTF-8 text file renamed into place on success (see ``atomic_file``)."""
    return atomic_file(path, "w")
