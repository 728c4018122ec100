"""Writer of Visual7W's ``dataset_v7w_pointing.json`` (streamed, atomic).

Layout: ``{"images": [{"image_id", "filename", "split", "qa_pairs": [{"qa_id", "image_id",
"question", "type", "answer", "multiple_choices"}]}], "boxes": [{"box_id", "x", "y",
"width", "height", "name"}]}``; ``answer`` and ``multiple_choices`` are box ids. Images and
boxes may be generators: each record is serialised as it comes, so a full-size file never
has to exist as one Python object.

Visual7W's sample generator (``write_sample``, named by its TaskSpec) is here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypedDict

import orjson

from unify.sample import language as lang
from unify.sample.jsonfile import atomic_binary
from unify.sample.scenes import Scene
from unify.sample.world import World, count
from unify.tasks import TaskSpec

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


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class Visual7wSample:
    """Visual7W's numbers in the sample world. Its val and test images are the world's
    (``World.v7w_val``, ``World.v7w_test``: VG-only photos that VG-QA's val covers too)."""

    per_image: float  # pointing questions per image


SAMPLE_SCALES = {
    "tiny": Visual7wSample(per_image=3),
    "small": Visual7wSample(per_image=4),
    "full": Visual7wSample(per_image=7),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """Pointing questions on the eval photos (val, then test) and on the VG-only and COCO
    training photos; each image's candidate boxes are its objects (plus background)."""
    s = w.sized(SAMPLE_SCALES, spec.name)
    split_of = {v: "val" for v in w.v7w_val} | {v: "test" for v in w.v7w_test}
    order = w.v7w_val + w.v7w_test + w.vg_train + list(w.vg_coco)
    qa_ids = [0]

    def image_boxes(vid: int, scene: Scene) -> list[V7wBox]:
        """The image's boxes: its objects, then background regions up to 4 candidates.
        Ids are derived from the image id, so the two streamed passes agree."""
        boxes: list[V7wBox] = [
            {
                "box_id": vid * 10 + j,
                "x": o.box[0],
                "y": o.box[1],
                "width": o.box[2],
                "height": o.box[3],
                "name": o.category,
            }
            for j, o in enumerate(scene.objects)
        ]
        while len(boxes) < 4:
            boxes.append(
                {
                    "box_id": vid * 10 + len(boxes),
                    "x": 0.0,
                    "y": 0.0,
                    "width": scene.width / 2,
                    "height": float(scene.height),
                    "name": "background",
                }
            )
        return boxes

    def images() -> Iterator[V7wImage]:
        for vid in order:
            rng = w.rng("v7w", vid)
            scene = w.scene(w.vg_uid(vid))
            ids = [b["box_id"] for b in image_boxes(vid, scene)]
            qas: list[V7wQa] = []
            for _ in range(count(rng, s.per_image)):
                target = rng.randrange(len(scene.objects))
                others = [b for b in ids if b != ids[target]]
                qa_ids[0] += 1
                qas.append(
                    {
                        "qa_id": qa_ids[0],
                        "question": lang.pointing_question(scene, target),
                        "answer": ids[target],
                        "multiple_choices": rng.sample(others, 3),
                    }
                )
            yield {"image_id": vid, "split": split_of.get(vid, "train"), "qa_pairs": qas}

    def boxes() -> Iterator[V7wBox]:
        for vid in order:
            yield from image_boxes(vid, w.scene(w.vg_uid(vid)))

    # Two streamed passes (images, then boxes) over the same deterministic scenes.
    return [write_visual7w(task_dir, images(), boxes())]
