"""Image keys of the four universes and the links between keys that denote one photo.

A key is ``<universe>:<id>``: ``coco:391895``, ``vg:2354786``, ``flickr:1000092795``,
``nlvr2:dev-850-0-img0``, ``gqa:n578564``. Keys, not integers, because the same integer
means different photos in different universes. Links come only from raw files (Visual
Genome's coco_id/flickr_id, COCO records' flickr_url), so a leakage check can always be
recomputed from a unified file alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

LINK_VG_COCO = "vg_coco_id"
LINK_VG_FLICKR = "vg_flickr_id"
LINK_COCO_FLICKR = "coco_flickr_url"

_FLICKR_ID = re.compile(r"^(\d+)_")


def coco_key(image_id: int) -> str:
    return f"coco:{int(image_id)}"


def vg_key(image_id: int) -> str:
    return f"vg:{int(image_id)}"


def flickr_key(photo_id: int | str) -> str:
    return f"flickr:{photo_id}"


def gqa_key(image_id: str) -> str:
    """GQA ids that are digits are Visual Genome ids; the others live in their own universe."""
    return f"vg:{int(image_id)}" if image_id.isdigit() else f"gqa:{image_id}"


def flickr_id_from_url(url: str) -> str | None:
    """The Flickr photo id starts the file name of a static Flickr URL (``<id>_<secret>``)."""
    if not url:
        return None
    match = _FLICKR_ID.match(url.split("?", 1)[0].rsplit("/", 1)[-1])
    return match.group(1) if match else None



def _nlvr2_key(image: str) -> str:
    return f"nlvr2:{image}"


#: Universe -> the image key of an id written as text (a feature TSV, an id list). The
#: universes themselves are declared in ``unify.tasks.UNIVERSES``; a test holds both equal.
KEY_OF_ID: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "coco": lambda i: coco_key(int(i)),
        "vg": lambda i: vg_key(int(i)),
        "flickr": lambda i: flickr_key(int(i)),
        "nlvr2": _nlvr2_key,
        "gqa": gqa_key,
    }
)
#: Universes whose ids are integers (the ones an id list such as ``leaks --against`` names).
INTEGER_ID_UNIVERSES: tuple[str, ...] = ("coco", "vg", "flickr")

@dataclass
class ImageRegistry:
    """Image keys seen during a build, with sizes where a raw file states them."""

    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, key: str, width: int | None = None, height: int | None = None) -> None:
        """Register a key; a known size is never overwritten by an unknown one."""
        old = self.sizes.get(key)
        if width is None or height is None:
            if old is None:
                self.sizes[key] = (-1, -1)
            return
        if old is None or old == (-1, -1):
            self.sizes[key] = (int(width), int(height))

    def add_many(self, keys: list[str]) -> None:
        sizes = self.sizes
        for key in keys:
            if key not in sizes:
                sizes[key] = (-1, -1)

    def update_size(self, key: str, width: int | None, height: int | None) -> None:
        """Fill a size for a key already registered (does not add new keys)."""
        known = width is not None and height is not None
        if known and self.sizes.get(key) == (-1, -1):
            self.sizes[key] = (int(width), int(height))

    def sorted_keys(self) -> list[str]:
        return sorted(self.sizes)


class Link(NamedTuple):
    """A plain tuple: millions of them are hashed and sorted at full scale, and tuple
    comparison runs in C where a dataclass's generated ``__lt__`` runs in Python."""

    type: str
    key_a: str
    key_b: str
    source: str


@dataclass
class LinkSet:
    """Unique links, stored sorted by (type, key_a, key_b)."""

    #: plain (type, key_a, key_b, source) tuples: cheap to build by the hundred thousand
    links: set[tuple[str, str, str, str]] = field(default_factory=set)

    def add(self, link_type: str, key_a: str, key_b: str, source: str) -> None:
        self.links.add((link_type, key_a, key_b, source))

    def sorted(self) -> list[Link]:
        return [Link._make(t) for t in sorted(self.links)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for link_type, *_ in self.links:
            out[link_type] = out.get(link_type, 0) + 1
        return dict(sorted(out.items()))
