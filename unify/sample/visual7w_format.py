"""Writer of Visual7W's ``dataset_v7w_pointing.json`` (streamed, atomic).

Layout: ``{"images": [{"image_id", "filename", "split", "qa_pairs": [{"qa_id", "image_id",
"question", "type", "answer", "multiple_choices"}]}], "boxes": [{"box_id", "x", "y",
"width", "height", "name"}]}``; ``answer`` and ``multiple_choices`` are box ids. Images and
boxes may be generators: each record is serialised as it comes, so a full-size file never
has to exist as one Python object.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, TypedDict

import orjson

from unify.sample.jsonfile import atomic_binary

POINTING = "dataset_v7w_pointing.json"


class V7wQa(TypedDict, total=False):
    qa_id: int
    question: str
    type: str  # default "which" (every pointing question is a "which" question)
    answer: int  # box id
    multiple_choices: list[int]  # 3 box ids


class V7wImage(TypedDict, total=False):
    image_id: int
    split: str
    filename: str  # default v7w_<image_id>.jpg
    qa_pairs: list[V7wQa]


class V7wBox(TypedDict, total=False):
    box_id: int
    x: float
    y: float
    width: float
    height: float
    name: str


def image_record(img: V7wImage) -> dict[str, Any]:
    image_id = img["image_id"]
    return {
        "image_id": image_id,
        "filename": img.get("filename", f"v7w_{image_id}.jpg"),
        "split": img["split"],
        "qa_pairs": [
            {
                "qa_id": qa["qa_id"],
                "image_id": image_id,
                "question": qa["question"],
                "type": qa.get("type", "which"),
                "answer": qa["answer"],
                "multiple_choices": list(qa["multiple_choices"]),
            }
            for qa in img.get("qa_pairs", [])
        ],
    }


def box_record(box: V7wBox) -> dict[str, Any]:
    return {
        "box_id": box["box_id"],
        "x": box["x"],
        "y": box["y"],
        "width": box["width"],
        "height": box["height"],
        "name": box.get("name", "object"),
    }


def _write_array(out: IO[bytes], records: Iterable[dict[str, Any]]) -> None:
    out.write(b"[")
    for i, record in enumerate(records):
        if i:
            out.write(b",")
        out.write(orjson.dumps(record))
    out.write(b"]")


def write_visual7w(task_dir: Path, images: Iterable[V7wImage], boxes: Iterable[V7wBox]) -> Path:
    """Write ``dataset_v7w_pointing.json`` under ``task_dir`` (temp file + rename)."""
    path = task_dir / POINTING
    with atomic_binary(path) as f:
        f.write(b'{"images":')
        _write_array(f, (image_record(img) for img in images))
        f.write(b',"boxes":')
        _write_array(f, (box_record(box) for box in boxes))
        f.write(b"}")
    return path
