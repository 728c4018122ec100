"""Writer of the GuessWhat?! release files: ``guesswhat.<split>.jsonl.gz``, one game a line.

Games are written in the release's key order with ``json.dumps`` default separators and
gzip-compressed deterministically (mtime 0), streamed through a temporary file, so a
real-size train file (about 110k games) is written without holding it in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

from unify.sample.jsonfile import write_jsonl_atomic


class GuessWhatQa(TypedDict):
    id: int
    question: str
    answer: str


class GuessWhatObject(TypedDict, total=False):
    """``area`` defaults to w*h and ``segment`` to the box outline when absent."""

    id: int
    category: str
    category_id: int
    bbox: list[float]
    area: float
    segment: list[list[float]]


class GuessWhatImage(TypedDict, total=False):
    """A COCO image record; ``file_name`` defaults to the train2014 name of ``id``."""

    id: int
    width: int
    height: int
    file_name: str
    coco_url: str
    flickr_url: str | None


class GuessWhatGame(TypedDict, total=False):
    id: int
    status: str
    object_id: int
    questioner_id: int
    timestamp: str
    image: GuessWhatImage
    qas: list[GuessWhatQa]
    objects: list[GuessWhatObject]


def _object(obj: GuessWhatObject) -> dict[str, Any]:
    x, y, w, h = obj["bbox"]
    return {
        "category": obj["category"],
        "area": obj.get("area", w * h),
        "bbox": list(obj["bbox"]),
        "category_id": obj["category_id"],
        "segment": obj.get("segment", [[x, y, x + w, y, x + w, y + h, x, y + h]]),
        "id": obj["id"],
    }


def _image(img: GuessWhatImage) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "file_name": img.get("file_name", f"COCO_train2014_{img['id']:012d}.jpg"),
        "coco_url": img.get("coco_url", f"http://mscoco.org/images/{img['id']}"),
        "height": img["height"],
        "width": img["width"],
    }
    if "flickr_url" in img:
        rec["flickr_url"] = img["flickr_url"]
    rec["id"] = img["id"]
    return rec


def guesswhat_record(game: GuessWhatGame) -> dict[str, Any]:
    """One game in the release's line layout and key order."""
    return {
        "status": game["status"],
        "qas": [
            {"answer": q["answer"], "question": q["question"], "id": q["id"]} for q in game["qas"]
        ],
        "questioner_id": game.get("questioner_id", 0),
        "timestamp": game.get("timestamp", "2016-07-08 15:07:38"),
        "image": _image(game["image"]),
        "object_id": game["object_id"],
        "objects": [_object(o) for o in game["objects"]],
        "id": game["id"],
    }


def write_guesswhat(task_dir: Path, split: str, games: Iterable[GuessWhatGame]) -> Path:
    """Write ``<task_dir>/guesswhat.<split>.jsonl.gz`` (split: train, valid, test)."""
    path = task_dir / f"guesswhat.{split}.jsonl.gz"
    write_jsonl_atomic(path, (guesswhat_record(g) for g in games))
    return path
    return path
