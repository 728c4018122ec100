"""Writer of Visual Genome's question_answers.json and image_data.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from unify.sample.jsonfile import dump_json


class VgQa(TypedDict):
    qa_id: int
    image_id: int
    question: str
    answer: str


class VgImageRecord(TypedDict, total=False):
    image_id: int
    width: int
    height: int
    coco_id: int | None
    flickr_id: int | None


def write_vgqa(task_dir: Path, qas: Sequence[VgQa], images: Sequence[VgImageRecord]) -> list[Path]:
    """QA pairs are grouped per image in the order the images are given."""
    by_image: dict[int, list[VgQa]] = {img["image_id"]: [] for img in images}
    for qa in qas:
        by_image.setdefault(qa["image_id"], []).append(qa)
    entries = [
        {
            "id": image_id,
            "qas": [
                {
                    "a_objects": [],
                    "question": qa["question"],
                    "image_id": image_id,
                    "qa_id": qa["qa_id"],
                    "answer": qa["answer"],
                    "q_objects": [],
                }
                for qa in group
            ],
        }
        for image_id, group in by_image.items()
    ]
    image_data = [
        {
            "width": img.get("width", 800),
            "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{img['image_id']}.jpg",
            "height": img.get("height", 600),
            "image_id": img["image_id"],
            "coco_id": img.get("coco_id"),
            "flickr_id": img.get("flickr_id"),
        }
        for img in images
    ]
    return [
        dump_json(task_dir / "question_answers.json", entries),
        dump_json(task_dir / "image_data.json", image_data),
    ]
