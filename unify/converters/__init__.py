"""The converters, in build order (vqa2 before vgqa: vgqa reuses vqa2's vocabulary).

An explicit tuple, not import-time self-registration: reading this file tells you every
dataset the build knows.
"""

from __future__ import annotations

from unify.converters.base import BuildContext, Converter, RawFile, SplitDecl
from unify.converters.coco_retrieval import CocoRetrieval
from unify.converters.flickr30k_retrieval import Flickr30kRetrieval
from unify.converters.gqa import Gqa
from unify.converters.guesswhat import GuessWhat
from unify.converters.nlvr2 import Nlvr2
from unify.converters.refer import RefCoco, RefCocog, RefCocoPlus
from unify.converters.snli_ve import SnliVe
from unify.converters.vgqa import Vgqa
from unify.converters.visual7w import Visual7w
from unify.converters.vqa2 import Vqa2

CONVERTERS: tuple[type[Converter], ...] = (
    Vqa2,
    Gqa,
    Vgqa,
    CocoRetrieval,
    Flickr30kRetrieval,
    RefCoco,
    RefCocoPlus,
    RefCocog,
    Visual7w,
    GuessWhat,
    Nlvr2,
    SnliVe,
)

#: Every task of the canonical table, in canonical order (docs/raw-layout.md).
CANONICAL_TASKS: tuple[str, ...] = (
    "vqa2", "gqa", "vgqa", "coco_retrieval", "flickr30k_retrieval", "refcoco",
    "refcoco_plus", "refcocog", "visual7w", "guesswhat", "nlvr2", "snli_ve",
)  # fmt: skip


def registry() -> dict[str, Converter]:
    """Fresh converter instances by task name (no shared mutable state between builds)."""
    return {cls.name: cls() for cls in CONVERTERS}


__all__ = [
    "CANONICAL_TASKS",
    "CONVERTERS",
    "BuildContext",
    "Converter",
    "RawFile",
    "SplitDecl",
    "registry",
]
