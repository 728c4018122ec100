"""A procedurally generated world written in the official raw formats.

Scenes of objects with a category, a colour and a position; questions are answered from
the scene, so a model that reads the question and the objects can learn them. Visual Genome
images overlap COCO images (image_data.json coco_id) as in the real releases. This is the
embedded default of the README's main job: no download, the same converters as real data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from unify.sample.gqa_format import GqaQuestion, write_gqa
from unify.sample.vgqa_format import VgImageRecord, VgQa, write_vgqa
from unify.sample.vqa2_format import VqaQuestion, write_vqa2

CATEGORIES = ("dog", "cat", "car", "bus", "person", "chair", "cup", "horse", "boat", "kite")
COLOURS = ("red", "blue", "green", "white", "black", "yellow", "brown", "gray")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")

#: Images and questions per scale; tiny satisfies the fixed hold-outs (3,000 minval
#: questions, 5,000 vgqa val QA pairs) and still leaves non-empty training splits.
SCALES = {
    "tiny": {"coco_train": 300, "coco_val": 400, "coco_test": 50, "vg": 700, "q_per_image": 10},
    "small": {
        "coco_train": 3000,
        "coco_val": 1000,
        "coco_test": 200,
        "vg": 3000,
        "q_per_image": 12,
    },
}


@dataclass(frozen=True)
class Obj:
    category: str
    colour: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    objects: tuple[Obj, ...]


def make_scene(rng: random.Random) -> Scene:
    width, height = rng.choice(((640, 480), (500, 375), (800, 600), (480, 640)))
    objects = []
    for _ in range(rng.randint(1, 6)):
        w, h = rng.uniform(20, width / 2), rng.uniform(20, height / 2)
        objects.append(
            Obj(
                rng.choice(CATEGORIES),
                rng.choice(COLOURS),
                (
                    round(rng.uniform(0, width - w), 2),
                    round(rng.uniform(0, height - h), 2),
                    round(w, 2),
                    round(h, 2),
                ),
            )
        )
    return Scene(width, height, tuple(objects))


def ask(scene: Scene, rng: random.Random) -> tuple[str, str, str, str]:
    """(question, canonical answer, answer_type, question_type) grounded in the scene."""
    kind = rng.choice(("count", "colour", "exists"))
    present = sorted({o.category for o in scene.objects})
    if kind == "count":
        cat = rng.choice(CATEGORIES)
        n = sum(o.category == cat for o in scene.objects)
        return f"How many {cat}s are there?", str(n), "number", "how many"
    if kind == "colour":
        obj = rng.choice(scene.objects)
        return f"What color is the {obj.category}?", obj.colour, "other", "what color is the"
    cat = rng.choice(CATEGORIES)
    return (
        f"Is there a {cat} in the picture?",
        "yes" if cat in present else "no",
        "yes/no",
        "is there a",
    )


def annotator_answers(answer: str, rng: random.Random, kind: str) -> list[str]:
    """Ten human answers with realistic disagreement and surface variants."""
    out = []
    for _ in range(10):
        r = rng.random()
        if r < 0.75:
            out.append(answer)
        elif r < 0.88:
            if kind == "number" and answer.isdigit() and int(answer) <= 5:
                out.append(NUMBER_WORDS[int(answer)])
            else:
                out.append(rng.choice((answer.capitalize(), answer + ".", f"the {answer}")))
        elif kind == "yes/no":
            out.append("no" if answer == "yes" else "yes")
        elif kind == "number":
            out.append(str(max(0, int(answer) + rng.choice((-1, 1)))))
        else:
            out.append(rng.choice(COLOURS))
    return out


def generate(out: Path, scale: str = "tiny", seed: int = 0) -> list[Path]:
    """Write the vqa2, gqa and vgqa raw folders under ``out``; returns the files written."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    p = SCALES[scale]
    rng = random.Random(seed)
    written: list[Path] = []

    coco_ids = rng.sample(range(1, 600_000), p["coco_train"] + p["coco_val"] + p["coco_test"])
    scenes = {cid: make_scene(rng) for cid in coco_ids}
    subsets = {
        "train2014": coco_ids[: p["coco_train"]],
        "val2014": coco_ids[p["coco_train"] : p["coco_train"] + p["coco_val"]],
        "test2015": coco_ids[p["coco_train"] + p["coco_val"] :],
    }
    for subset, ids in subsets.items():
        records: list[VqaQuestion] = []
        for cid in ids:
            for k in range(p["q_per_image"]):
                q, a, atype, qtype = ask(scenes[cid], rng)
                rec: VqaQuestion = {"question_id": cid * 1000 + k, "image_id": cid, "question": q}
                if subset != "test2015":
                    rec.update(
                        question_type=qtype,
                        answer_type=atype,
                        multiple_choice_answer=a,
                        answers=annotator_answers(a, rng, atype),
                    )
                records.append(rec)
        written += write_vqa2(out / "vqa2", subset, records)
        if subset == "test2015":
            dev = [r for r in records if r["image_id"] % 2 == 0]
            written += write_vqa2(out / "vqa2", "test-dev2015", dev)

    # Visual Genome: a quarter of its images are COCO train2014 images (image_data.json
    # coco_id), so cleaning has real work without emptying any training split.
    vg_ids = rng.sample(range(1, 2_400_000), p["vg"])
    coco_pool = subsets["train2014"]
    vg_images: list[VgImageRecord] = []
    vg_scenes: dict[int, Scene] = {}
    for i, vid in enumerate(vg_ids):
        coco_id = coco_pool[i % len(coco_pool)] if i % 4 == 0 else None
        scene = scenes[coco_id] if coco_id is not None else make_scene(rng)
        vg_scenes[vid] = scene
        vg_images.append(
            {
                "image_id": vid,
                "width": scene.width,
                "height": scene.height,
                "coco_id": coco_id,
                "flickr_id": None,
            }
        )
    qas: list[VgQa] = []
    qa_id = 100_000
    # Largest qa_ids (the pinned vgqa val) on the first VG images, which GQA evaluates on too.
    for vid in reversed(vg_ids):
        for _ in range(p["q_per_image"]):
            q, a, _, _ = ask(vg_scenes[vid], rng)
            qa_id += rng.randint(1, 3)
            qas.append(
                {
                    "qa_id": qa_id,
                    "image_id": vid,
                    "question": q,
                    "answer": rng.choice((a.capitalize() + ".", a)),
                }
            )
    written += write_vgqa(out / "vgqa", qas, vg_images)

    # GQA: VG images by digit id, plus a few images outside VG ("n" ids).
    def gqa_questions(images: list[str], prefix: int) -> list[GqaQuestion]:
        recs: list[GqaQuestion] = []
        for j, image in enumerate(images):
            scene = vg_scenes.get(int(image)) if image.isdigit() else make_scene(rng)
            assert scene is not None
            for k in range(p["q_per_image"]):
                q, a, atype, _ = ask(scene, rng)
                qid = str(prefix * 10 ** rng.randint(5, 7) + j * 100 + k)
                structural = "verify" if atype == "yes/no" else "query"
                recs.append(
                    {
                        "id": qid,
                        "imageId": image,
                        "question": q,
                        "answer": a,
                        "fullAnswer": f"{a}.",
                        "structural": structural,
                        "semantic": "attr" if atype == "other" else "obj",
                        "detailed": f"{structural}{atype}",
                        "group_global": None if structural == "verify" else a,
                        "group_local": f"{k:02d}-{image}",
                        "entailed": [],
                    }
                )
        return recs

    n_val, n_dev = max(350, len(vg_ids) // 5), max(50, len(vg_ids) // 20)
    vg_str = [str(v) for v in vg_ids]
    val_imgs, dev_imgs = vg_str[:n_val], vg_str[n_val : n_val + n_dev]
    train_imgs = vg_str[n_val + n_dev :] + [f"n{rng.randint(1, 999999)}" for _ in range(20)]
    written.append(
        write_gqa(out / "gqa", "train_balanced_questions.json", gqa_questions(train_imgs, 1))
    )
    written.append(
        write_gqa(out / "gqa", "val_balanced_questions.json", gqa_questions(val_imgs, 2))
    )
    written.append(
        write_gqa(out / "gqa", "testdev_balanced_questions.json", gqa_questions(dev_imgs, 3))
    )
    return written
