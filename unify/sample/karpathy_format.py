"""Writer of Karpathy's split files: ``dataset_coco.json`` and ``dataset_flickr30k.json``.

The release was written by Python's ``json.dump`` with default separators (", " and ": ")
and ASCII escapes; the key order per image is COCO's ``filepath, sentids, filename, imgid,
split, sentences, cocoid`` and Flickr30k's ``sentids, imgid, sentences, split, filename``,
then ``"dataset"`` after ``"images"``. ``imgid`` is the image's position in the file. The
full COCO file is ~150 MB, so images are streamed from any iterable, one record at a time.

The two retrieval tasks' sample generators (``write_coco_sample``, ``write_flickr30k_sample``,
named by their TaskSpecs) are here too. They have no numbers of their own: their images,
splits and captions are the world's (Karpathy's splits decide their overlaps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypedDict

from unify.sample.coco_format import (
    atomic_text,
    caption_annotation,
    coco_image,
    write_coco_captions,
)
from unify.sample.scenes import Scene
from unify.sample.world import World
from unify.tasks import TaskSpec

_WORD = re.compile(r"[a-z0-9]+")


class KarpathySentence(TypedDict, total=False):
    """``raw`` is required; ``tokens`` default to ``tokenize(raw)``, ``sentid`` to a counter."""

    raw: str
    tokens: list[str]
    sentid: int


class KarpathyImage(TypedDict, total=False):
    """``split`` and ``sentences`` always; COCO: ``cocoid`` (``filepath``/``filename``
    derived from it when omitted); Flickr30k: ``filename`` (``<photo id>.jpg``)."""

    split: str
    sentences: list[KarpathySentence]
    cocoid: int
    filepath: str
    filename: str


def tokenize(raw: str) -> list[str]:
    """Lower-cased alphanumeric words, as the release's ``tokens`` look (punctuation gone)."""
    return _WORD.findall(raw.lower())


def coco_filepath(split: str) -> str:
    """Karpathy's train images are COCO train2014; restval, val and test come from val2014."""
    return "train2014" if split == "train" else "val2014"


def write_karpathy_coco(task_dir: Path, images: Iterable[KarpathyImage]) -> Path:
    """Write ``<task_dir>/dataset_coco.json``."""
    return _write(task_dir / "dataset_coco.json", "coco", _coco_records(images))


def write_karpathy_flickr30k(task_dir: Path, images: Iterable[KarpathyImage]) -> Path:
    """Write ``<task_dir>/dataset_flickr30k.json``."""
    return _write(task_dir / "dataset_flickr30k.json", "flickr30k", _flickr_records(images))


def _sentences(
    sentences: Iterable[KarpathySentence], imgid: int, counter: list[int]
) -> list[dict[str, Any]]:
    out = []
    for s in sentences:
        sentid = s.get("sentid")
        if sentid is None:
            sentid = counter[0]
        counter[0] = max(counter[0], sentid) + 1
        tokens = s.get("tokens")
        out.append(
            {
                "tokens": tokenize(s["raw"]) if tokens is None else tokens,
                "raw": s["raw"],
                "imgid": imgid,
                "sentid": sentid,
            }
        )
    return out


def _coco_records(images: Iterable[KarpathyImage]) -> Iterator[dict[str, Any]]:
    counter = [0]
    for imgid, img in enumerate(images):
        sentences = _sentences(img["sentences"], imgid, counter)
        filepath = img.get("filepath") or coco_filepath(img["split"])
        yield {
            "filepath": filepath,
            "sentids": [s["sentid"] for s in sentences],
            "filename": img.get("filename") or f"COCO_{filepath}_{img['cocoid']:012d}.jpg",
            "imgid": imgid,
            "split": img["split"],
            "sentences": sentences,
            "cocoid": img["cocoid"],
        }


def _flickr_records(images: Iterable[KarpathyImage]) -> Iterator[dict[str, Any]]:
    counter = [0]
    for imgid, img in enumerate(images):
        sentences = _sentences(img["sentences"], imgid, counter)
        yield {
            "sentids": [s["sentid"] for s in sentences],
            "imgid": imgid,
            "sentences": sentences,
            "split": img["split"],
            "filename": img["filename"],
        }


def _write(path: Path, dataset: str, records: Iterable[dict[str, Any]]) -> Path:
    """Stream ``{"images": [...], "dataset": ...}`` to a temp file, then rename."""
    with atomic_text(path) as f:
        f.write('{"images": [')
        for i, record in enumerate(records):
            if i:
                f.write(", ")
            f.write(json.dumps(record))
        f.write(f'], "dataset": {json.dumps(dataset)}}}')
    return path


# ---------------------------------------------------------------------------- the sample
def write_coco_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """COCO retrieval: ``dataset_coco.json`` over Karpathy's images, and COCO's own 2014
    captions files, whose image records carry the flickr_url links (optional files)."""

    def images() -> Iterator[KarpathyImage]:
        for cid in w.coco_train + [c for c in w.coco_val if c in w.karpathy]:
            yield {
                "cocoid": cid,
                "split": w.karpathy[cid],
                "sentences": [{"raw": t} for t in w.captions(w.coco_uid(cid))],
            }

    files = [write_karpathy_coco(task_dir, images())]
    for subset, ids in (("train2014", w.coco_train), ("val2014", w.coco_val)):
        recs = (
            coco_image(c, *_size(w.scene(w.coco_uid(c))), subset, flickr_url=w.flickr_url(c))
            for c in ids
        )
        caps = (
            caption_annotation(c * 10 + k, c, t)
            for c in ids
            for k, t in enumerate(w.captions(w.coco_uid(c)))
        )
        files.append(write_coco_captions(task_dir, subset, recs, caps))
    return files


def _size(scene: Scene) -> tuple[int, int]:
    return scene.width, scene.height


def write_flickr30k_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """Flickr30k retrieval: ``dataset_flickr30k.json`` over every Flickr30k photo."""

    def images() -> Iterator[KarpathyImage]:
        for p in w.flickr:
            yield {
                "filename": f"{p}.jpg",
                "split": w.flickr_split[p],
                "sentences": [{"raw": t} for t in w.captions(f"flickr{p}")],
            }

    return [write_karpathy_flickr30k(task_dir, images())]
