"""Writer of the GuessWhat?! release files: ``guesswhat.<split>.jsonl.gz``, one game a line.

Games are written in the release's key order with ``json.dumps`` default separators and
gzip-compressed deterministically (mtime 0), streamed through a temporary file, so a
real-size train file (about 110k games) is written without holding it in memory.

GuessWhat?!'s sample generator (``write_sample``, named by its TaskSpec) is here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from unify.sample import language as lang
from unify.sample.jsonfile import write_jsonl_atomic
from unify.sample.scenes import CATEGORY_ID
from unify.sample.world import World, count
from unify.tasks import TaskSpec


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


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class GuessWhatSample:
    """GuessWhat?!'s numbers in the sample world. Its valid and test images are the world's
    (``World.guesswhat_eval``: val2014 images VQA v2 trains on); its train images are drawn
    here from COCO train2014."""

    train_images: int
    games_per_image: float


SAMPLE_SCALES = {
    "tiny": GuessWhatSample(train_images=150, games_per_image=2),
    "small": GuessWhatSample(train_images=2500, games_per_image=3),
    "full": GuessWhatSample(train_images=46000, games_per_image=2.33),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """Games (success 80%, failure 15%, incomplete 5%) of truthful yes/no dialogues about a
    hidden target object."""
    s = w.sized(SAMPLE_SCALES, spec.name)
    rng0 = w.rng("guesswhat-pools")
    train = rng0.sample(w.coco_train, s.train_images)
    half = len(w.guesswhat_eval) // 2
    train_set = set(w.coco_train)
    files = []
    game_id = [0]
    for split, images in (
        ("train", train),
        ("valid", w.guesswhat_eval[:half]),
        ("test", w.guesswhat_eval[half:]),
    ):

        def games(images: list[int] = images) -> Iterator[GuessWhatGame]:
            for cid in images:
                rng = w.rng("guesswhat", cid)
                scene = w.scene(w.coco_uid(cid))
                subset = "train2014" if cid in train_set else "val2014"
                for _ in range(count(rng, s.games_per_image)):
                    target = rng.randrange(len(scene.objects))
                    game_id[0] += 1
                    r = rng.random()
                    status = "success" if r < 0.8 else "failure" if r < 0.95 else "incomplete"
                    qas: list[GuessWhatQa] = [
                        {"id": game_id[0] * 10 + k, "question": q, "answer": a}
                        for k, (q, a) in enumerate(lang.dialogue(scene, target, rng))
                    ]
                    yield {
                        "id": game_id[0],
                        "status": status,
                        "object_id": cid * 100 + target,
                        "image": {
                            "id": cid,
                            "width": scene.width,
                            "height": scene.height,
                            "file_name": f"COCO_{subset}_{cid:012d}.jpg",
                            "flickr_url": w.flickr_url(cid),
                        },
                        "qas": qas,
                        "objects": [
                            {
                                "id": cid * 100 + j,
                                "category": o.category,
                                "category_id": CATEGORY_ID[o.category],
                                "bbox": list(o.box),
                            }
                            for j, o in enumerate(scene.objects)
                        ],
                    }

        files.append(write_guesswhat(task_dir, split, games()))
    return files
