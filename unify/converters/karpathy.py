"""Karpathy split files (``dataset_coco.json``, ``dataset_flickr30k.json``): the shared reader.

Both caption-retrieval tasks are released as one JSON file by Karpathy & Fei-Fei (2015):
``{"images": [{"split": ..., "sentences": [{"tokens", "raw", "imgid", "sentid"}], ...}],
"dataset": ...}``. They differ only in how an image is named (COCO ``cocoid`` vs. the
Flickr file name) and in their split values, so the reading, validation and the split
layout live here once and each task module declares just those differences.

One example is one caption (``sentid``). Each split also keeps its images in release
order as the split array ``candidates``: retrieval ranks every image of the split, so the
candidate set (including an image's position, which defines COCO's 1k folds) must not
depend on which captions survive a later step.

Smoke mode (``--max-examples N``) keeps the first N *image records* of the file (the
file's top-level records), so every kept image has all its captions.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from unify import rules
from unify.converters.base import BuildContext, Converter, require
from unify.errors import DataError, RecordError
from unify.rules import Range, Same, Unique
from unify.table import SplitTable, TaskTable
from unify.tasks import Split

HOMEPAGE = "https://cs.stanford.edu/people/karpathy/deepimagesent/"
#: Split array of every retrieval split: the split's image keys in release order.
CANDIDATES = "candidates"

#: Rules of every caption of a Karpathy file (all splits together).
CAPTION_RULES = (
    Unique("sentid", "caption id"),
    Range("sentid", 0, rules.INT64.max),
    Same("imgid", "image imgid", "a caption's imgid is its image record's"),
)


@dataclass
class KarpathySplit:
    """Captions of one split in release order, and the split's images (the candidates)."""

    ids: list[int] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)


class KarpathyConverter(Converter):
    """A caption-retrieval task read from one Karpathy split file.

    Subclasses declare ``karpathy_file``, ``dataset_name`` (the file's ``dataset`` value),
    ``split_of`` (release split value -> our split) and ``image_field``, and implement
    ``image_key``; ``split_table`` and ``finish`` are hooks for task-specific columns and
    extra files.
    """

    version = "1.0.0"
    homepage = HOMEPAGE
    field_rules = MappingProxyType({"captions": CAPTION_RULES})

    karpathy_file: ClassVar[str]
    dataset_name: ClassVar[str]
    split_of: ClassVar[Mapping[str, str]]
    #: The image record's field the image key comes from (named in error messages).
    image_field: ClassVar[str]

    @abstractmethod
    def image_key(self, image: dict[str, Any]) -> str:
        """The image key of a record; raise KeyError/TypeError/ValueError if it is bad."""

    @abstractmethod
    def explain_image_key(self, image: dict[str, Any], path: Path, record: str) -> None:
        """Slow path of ``image_key``: raise a RecordError naming the bad field."""

    def convert(self, ctx: BuildContext) -> TaskTable:
        parts, release_counts = self.read_karpathy(ctx)
        splits = [self.split_table(decl, parts[decl.name]) for decl in self.splits]
        for part in parts.values():
            ctx.images.add_many(part.candidates)
        report: dict[str, Any] = {
            "counts": {s.name: s.num_examples for s in splits},
            "images": {name: len(part.candidates) for name, part in parts.items()},
            "release_splits": dict(release_counts),
        }
        self.finish(ctx, report)
        return TaskTable(self.name, self.task_attrs(), splits, report)

    def split_table(self, decl: Split, part: KarpathySplit) -> SplitTable:
        """The columns every retrieval split has (schema.md), plus ``candidates``."""
        return SplitTable(
            decl.name,
            decl.role,
            {
                "id": np.asarray(part.ids, dtype=np.int64),
                "image": part.images,
                "caption": part.captions,
                "tokens": part.tokens,
            },
            arrays={CANDIDATES: part.candidates},
            image_arrays=frozenset({CANDIDATES}),
        )

    def finish(self, ctx: BuildContext, report: dict[str, Any]) -> None:
        """Read the task's optional files once the splits are known (default: none)."""

    def read_karpathy(self, ctx: BuildContext) -> tuple[dict[str, KarpathySplit], Counter[str]]:
        """Every split's captions and images, validated record by record."""
        name = self.karpathy_file
        path = self.file(ctx.raw_root, name)
        doc = self.load_json(ctx, name)
        images = require(doc, "images", list, path, "<top level>")
        dataset = doc.get("dataset")
        # Only a guard against swapped files: the value's spelling is not pinned anywhere.
        if isinstance(dataset, str) and dataset.lower() != self.dataset_name:
            raise DataError(
                f"{path}: the file says it holds dataset {dataset!r}, not "
                f"{self.dataset_name!r}; is it the other task's Karpathy file?"
            )
        parts = {decl.name: KarpathySplit() for decl in self.splits}
        split_of = self.split_of
        release_counts: Counter[str] = Counter()
        seen: dict[str, int] = {}
        records = ctx.limit(ctx.progress(images, desc=f"{self.name} {name}", total=len(images)))
        for index, img in enumerate(records):
            try:
                release_split = img["split"]
                part = parts[split_of[release_split]]
                key = self.image_key(img)
                sentences = img["sentences"]
                imgid = img.get("imgid")
                ok = type(sentences) is list
            except (KeyError, TypeError, ValueError, AttributeError):
                ok = False
            if not ok:
                self._explain_image(img, index, path)
            if key in seen:
                raise RecordError(
                    path,
                    self.image_label(img, index),
                    self.image_field,
                    f"image {key} is listed twice (first as image record #{seen[key]})",
                )
            seen[key] = index
            release_counts[release_split] += 1
            part.candidates.append(key)
            for j, sent in enumerate(sentences):
                try:
                    sid, raw, toks = sent["sentid"], sent["raw"], sent["tokens"]
                    ok = (
                        type(sid) is int
                        and type(raw) is str
                        and type(toks) is list
                        and sent.get("imgid", imgid) == imgid
                    )
                    joined = " ".join(toks) if ok else ""
                except (KeyError, TypeError, AttributeError):
                    ok = False
                if not ok:
                    _explain_sentence(sent, j, self.image_label(img, index), path, imgid)
                part.ids.append(sid)
                part.images.append(key)
                part.captions.append(raw)
                part.tokens.append(joined)
        rules.require_records(path, len(seen), "image records")
        self._check_captions(path, parts)
        return parts, release_counts

    @staticmethod
    def _check_captions(path: Path, parts: Mapping[str, KarpathySplit]) -> None:
        """The caption rules over the whole file (an id is unique across splits)."""
        ids = [i for part in parts.values() for i in part.ids]
        columns = {"sentid": rules.int_array(ids, np.int64, path, "sentid", ids)}
        rules.check(path, ids, columns, CAPTION_RULES)

    def image_label(self, img: Any, index: int) -> str:
        """How error messages name an image record: its identity field, else its position."""
        if isinstance(img, dict):
            for key in (self.image_field, "imgid"):
                value = img.get(key)
                if isinstance(value, (int, str)) and not isinstance(value, bool):
                    return f"image {value}"
        return f"image record #{index}"

    def _explain_image(self, img: Any, index: int, path: Path) -> None:
        """Slow path: find the bad field of an image record and raise."""
        label = self.image_label(img, index)
        split = require(img, "split", str, path, label)
        if split not in self.split_of:
            raise RecordError(
                path,
                label,
                "split",
                f"unknown split {split!r}; expected one of {', '.join(self.split_of)}",
            )
        self.explain_image_key(img, path, label)
        require(img, "sentences", list, path, label)
        raise RecordError(path, label, "sentences", "malformed image record")


def _explain_sentence(sent: Any, j: int, image_label: str, path: Path, imgid: Any) -> None:
    """Slow path: find the bad field of a sentence and raise."""
    sid = sent.get("sentid") if isinstance(sent, dict) else None
    record = f"sentence {sid}" if type(sid) is int else f"{image_label} sentences[{j}]"
    require(sent, "sentid", int, path, record)
    require(sent, "raw", str, path, record)
    tokens = require(sent, "tokens", list, path, record)
    for k, token in enumerate(tokens):
        if type(token) is not str:
            raise RecordError(
                path, record, f"tokens[{k}]", f"expected str, got {type(token).__name__}"
            )
    if sent.get("imgid", imgid) != imgid:
        raise RecordError(
            path,
            record,
            "imgid",
            f"{sent['imgid']!r:.40} differs from its image record's imgid {imgid!r:.40}",
        )
    raise RecordError(path, record, "sentences", "malformed sentence")
