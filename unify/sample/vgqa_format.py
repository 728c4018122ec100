"""Writer of Visual Genome's question_answers.json and image_data.json, streamed, and
VG-QA's sample generator (``write_sample``, named by its TaskSpec)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from unify.sample import language as lang
from unify.sample.jsonfile import atomic_binary, write_json_array
from unify.sample.world import World, count
from unify.tasks import TaskSpec


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


def _entry(image_id: int, qas: Iterable[VgQa]) -> dict[str, Any]:
    return {
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
            for qa in qas
        ],
    }


def _image(img: VgImageRecord) -> dict[str, Any]:
    return {
        "width": img.get("width", 800),
        "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{img['image_id']}.jpg",
        "height": img.get("height", 600),
        "image_id": img["image_id"],
        "coco_id": img.get("coco_id"),
        "flickr_id": img.get("flickr_id"),
    }


def write_vgqa_stream(
    task_dir: Path, entries: Iterable[tuple[int, list[VgQa]]], images: Iterable[VgImageRecord]
) -> list[Path]:
    """Stream per-image QA entries and image records (full-scale sample)."""
    paths = [task_dir / "question_answers.json", task_dir / "image_data.json"]
    with atomic_binary(paths[0]) as f:
        write_json_array(f, (_entry(i, qas) for i, qas in entries))
    with atomic_binary(paths[1]) as f:
        write_json_array(f, (_image(img) for img in images))
    return paths


def write_vgqa(task_dir: Path, qas: Sequence[VgQa], images: Sequence[VgImageRecord]) -> list[Path]:
    """QA pairs grouped per image, in the order the images are given (small inputs)."""
    by_image: dict[int, list[VgQa]] = {img["image_id"]: [] for img in images}
    for qa in qas:
        by_image.setdefault(qa["image_id"], []).append(qa)
    return write_vgqa_stream(task_dir, by_image.items(), images)


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class VgqaSample:
    """VG-QA's numbers in the sample world (its images are all of the world's VG images)."""

    per_image: float  # QA pairs per image


SAMPLE_SCALES = {
    "tiny": VgqaSample(per_image=10),
    "small": VgqaSample(per_image=8),
    "full": VgqaSample(per_image=13.4),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """VG-QA; the largest qa_ids (the pinned val) go to the VG eval pool."""
    s = w.sized(SAMPLE_SCALES, spec.name)
    order = list(reversed(w.vg_all))  # eval pool last -> largest qa ids
    base = 100_000

    def entries() -> Iterator[tuple[int, list[VgQa]]]:
        qa_id = base
        for vid in order:
            rng = w.rng("vgqa", vid)
            scene = w.scene(w.vg_uid(vid))
            qas: list[VgQa] = []
            for _ in range(count(rng, s.per_image)):
                qa_id += 1
                q, a = lang.vg_qa(scene, rng)
                qas.append({"qa_id": qa_id, "image_id": vid, "question": q, "answer": a})
            yield vid, qas

    def images() -> Iterator[VgImageRecord]:
        for vid in order:
            scene = w.scene(w.vg_uid(vid))
            yield {
                "image_id": vid,
                "width": scene.width,
                "height": scene.height,
                "coco_id": w.vg_coco.get(vid),
                "flickr_id": w.vg_flickr.get(vid),
            }

    return write_vgqa_stream(task_dir, entries(), images())
