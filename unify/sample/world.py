"""The generated world: one set of photos, twelve datasets in their official raw formats.

``generate(out, scale, seed)`` writes ``out/<task>/<release files>`` for all 12 tasks and
``out/features/<universe>.tsv`` (bottom-up-attention format), through the same format
writers the tests round-trip, so ``unify build --all`` and ``unify features import`` read
it with no special case anywhere.

The photos overlap the way the real releases do (datasets.md, "Image identity"):
- RefCOCO-family images are COCO train2014 images, many also used by VQA v2 train; their
  evaluation splits therefore leak into VQA v2 and COCO-retrieval training;
- Karpathy's val/test images are val2014 images that VQA v2 trains on (trainval);
- Visual Genome images are partly COCO images (image_data.json coco_id) and partly Flickr
  photos (flickr_id); GQA and Visual7W use VG ids;
- some COCO images' flickr_url names a Flickr30k photo, and SNLI-VE splits the Flickr30k
  photos its own way (Entities-style), so it and Flickr30k retrieval share photos across
  train and eval.
The pools are laid out so that cleaning has real work at every scale and still leaves every
training split non-empty.

Everything is streamed: the scene of a photo is a pure function of (seed, photo uid), and
the writers take generators, so the full scale never holds a dataset in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unify.sample import language as lang
from unify.sample.coco_format import (
    caption_annotation,
    category,
    coco_image,
    flickr_static_url,
    write_coco_captions,
)
from unify.sample.features_format import RegionRow, write_tsv
from unify.sample.gqa_format import (
    GqaChoice,
    GqaOperation,
    GqaQuestion,
    write_gqa,
    write_gqa_choices,
)
from unify.sample.guesswhat_format import GuessWhatGame, write_guesswhat
from unify.sample.karpathy_format import (
    KarpathyImage,
    write_karpathy_coco,
    write_karpathy_flickr30k,
)
from unify.sample.nlvr2_format import Nlvr2Example, write_nlvr2
from unify.sample.refer_format import Ref, write_refer
from unify.sample.scenes import (
    CATEGORIES,
    CATEGORY_ID,
    CATEGORY_NAMES,
    COLOURS,
    FeatureProjector,
    Scene,
    make_scene,
)
from unify.sample.snli_ve_format import SnliVePair, write_snli_ve
from unify.sample.vgqa_format import VgImageRecord, VgQa, write_vgqa_stream
from unify.sample.visual7w_format import V7wBox, V7wImage, write_visual7w
from unify.sample.vqa2_format import VqaQuestion, write_vqa2

SCALES = ("tiny", "small", "full")


@dataclass(frozen=True)
class ScaleSpec:
    """Pool sizes (images) and examples per image of one scale."""

    coco_train: int
    coco_val: int
    coco_test: int
    vqa_per_image: float
    vqa_test_per_image: float
    restval: int
    karpathy_val: int
    karpathy_test: int
    flickr_train: int
    flickr_val: int
    flickr_test: int
    entities_eval: int  # SNLI-VE dev and test photos each
    snli_per_image: float
    coco_flickr_links: int
    refcoco_images: int
    refcocog_images: int
    refs_per_image: float
    vg_eval: int  # VG-only photos evaluated on (GQA val/testdev, VG-QA val, Visual7W val/test)
    vg_train: int  # VG-only photos trained on
    vg_coco: int  # VG images that are COCO train2014 images
    vg_flickr: int  # VG images that are Flickr30k photos
    vgqa_per_image: float
    gqa_val_images: int
    gqa_testdev_images: int
    gqa_per_image: float
    gqa_nonvg_images: int
    v7w_eval_images: int  # val and test each
    v7w_per_image: float
    guesswhat_train_images: int
    guesswhat_eval_images: int  # valid and test each
    games_per_image: float
    nlvr2_train: int
    nlvr2_eval: int  # dev and test1 each


SPECS: dict[str, ScaleSpec] = {
    # The smallest world in which every split of every task is non-empty after cleaning
    # (the fixed hold-outs need >= 3,000 minval questions and >= 5,000 VG-QA val pairs).
    "tiny": ScaleSpec(
        coco_train=500,
        coco_val=520,
        coco_test=40,
        vqa_per_image=10,
        vqa_test_per_image=5,
        restval=100,
        karpathy_val=30,
        karpathy_test=30,
        flickr_train=200,
        flickr_val=40,
        flickr_test=40,
        entities_eval=40,
        snli_per_image=3,
        coco_flickr_links=30,
        refcoco_images=120,
        refcocog_images=120,
        refs_per_image=2,
        vg_eval=520,
        vg_train=150,
        vg_coco=150,
        vg_flickr=20,
        vgqa_per_image=10,
        gqa_val_images=400,
        gqa_testdev_images=40,
        gqa_per_image=10,
        gqa_nonvg_images=20,
        v7w_eval_images=30,
        v7w_per_image=3,
        guesswhat_train_images=150,
        guesswhat_eval_images=30,
        games_per_image=2,
        nlvr2_train=300,
        nlvr2_eval=60,
    ),
    # Tens of thousands per dataset: the baseline trains on it on a CPU in minutes.
    "small": ScaleSpec(
        coco_train=4000,
        coco_val=2000,
        coco_test=300,
        vqa_per_image=8,
        vqa_test_per_image=5,
        restval=600,
        karpathy_val=200,
        karpathy_test=200,
        flickr_train=3000,
        flickr_val=200,
        flickr_test=200,
        entities_eval=200,
        snli_per_image=6,
        coco_flickr_links=200,
        refcoco_images=1500,
        refcocog_images=1500,
        refs_per_image=3,
        vg_eval=1500,
        vg_train=2000,
        vg_coco=2000,
        vg_flickr=200,
        vgqa_per_image=8,
        gqa_val_images=800,
        gqa_testdev_images=200,
        gqa_per_image=8,
        gqa_nonvg_images=200,
        v7w_eval_images=300,
        v7w_per_image=4,
        guesswhat_train_images=2500,
        guesswhat_eval_images=300,
        games_per_image=3,
        nlvr2_train=10000,
        nlvr2_eval=1000,
    ),
    # The real sizes of datasets.md (approximately: examples per image are averages).
    "full": ScaleSpec(
        coco_train=82783,
        coco_val=40504,
        coco_test=81434,
        vqa_per_image=5.36,
        vqa_test_per_image=5.5,
        restval=30504,
        karpathy_val=5000,
        karpathy_test=5000,
        flickr_train=29000,
        flickr_val=1014,
        flickr_test=1000,
        entities_eval=1000,
        snli_per_image=17.8,
        coco_flickr_links=2000,
        refcoco_images=19994,
        refcocog_images=25799,
        refs_per_image=2.5,
        vg_eval=12000,
        vg_train=30000,
        vg_coco=51000,
        vg_flickr=15077,
        vgqa_per_image=13.4,
        gqa_val_images=10000,
        gqa_testdev_images=398,
        gqa_per_image=11.7,
        gqa_nonvg_images=5000,
        v7w_eval_images=5000,
        v7w_per_image=7,
        guesswhat_train_images=46000,
        guesswhat_eval_images=10000,
        games_per_image=2.33,
        nlvr2_train=86373,
        nlvr2_eval=6982,
    ),
}

REFER_SPLITS = {"unc": ("val", "testA", "testB"), "umd": ("val", "test")}


def _count(rng: random.Random, mean: float) -> int:
    """An integer count with the given mean (floor, plus one with the fractional chance)."""
    base = int(mean)
    return base + (rng.random() < mean - base)


class World:
    """The photo pools and their scenes; every dataset is drawn from these."""

    def __init__(self, scale: str, seed: int, feature_dim: int) -> None:
        if scale not in SPECS:
            raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
        self.spec = s = SPECS[scale]
        self.seed = seed
        self.projector = FeatureProjector(seed, feature_dim)
        rng = random.Random(seed)
        coco = rng.sample(range(1, 600_000), s.coco_train + s.coco_val + s.coco_test)
        self.coco_train = sorted(coco[: s.coco_train])
        self.coco_val = sorted(coco[s.coco_train : s.coco_train + s.coco_val])
        self.coco_test = sorted(coco[s.coco_train + s.coco_val :])
        n_flickr = s.flickr_train + s.flickr_val + s.flickr_test
        self.flickr = rng.sample(range(1_000_000_000, 9_999_999_999), n_flickr)
        self.flickr_split = {p: "train" for p in self.flickr[: s.flickr_train]}
        self.flickr_split |= {p: "val" for p in self.flickr[s.flickr_train : -s.flickr_test]}
        self.flickr_split |= {p: "test" for p in self.flickr[-s.flickr_test :]}
        # SNLI-VE's Entities-style split: another partition of the same photos.
        shuffled = sorted(self.flickr, key=lambda p: random.Random(f"{seed}/e{p}").random())
        self.entities_split = {p: "train" for p in shuffled}
        for p in shuffled[: s.entities_eval]:
            self.entities_split[p] = "dev"
        for p in shuffled[s.entities_eval : 2 * s.entities_eval]:
            self.entities_split[p] = "test"
        # COCO train images that are Flickr30k photos (their flickr_url says so).
        self.coco_as_flickr = dict(
            zip(
                rng.sample(self.coco_train, s.coco_flickr_links),
                rng.sample(self.flickr, s.coco_flickr_links),
                strict=True,
            )
        )
        # Visual Genome: VG-only eval and train pools, COCO train images, Flickr30k photos.
        n_vg = s.vg_eval + s.vg_train + s.vg_coco + s.vg_flickr
        vg_ids = rng.sample(range(1, 2_500_000), n_vg)
        self.vg_eval = vg_ids[: s.vg_eval]
        self.vg_train = vg_ids[s.vg_eval : s.vg_eval + s.vg_train]
        vg_coco_ids = vg_ids[s.vg_eval + s.vg_train : s.vg_eval + s.vg_train + s.vg_coco]
        vg_flickr_ids = vg_ids[s.vg_eval + s.vg_train + s.vg_coco :]
        self.vg_coco = dict(zip(vg_coco_ids, rng.sample(self.coco_train, s.vg_coco), strict=True))
        self.vg_flickr = dict(zip(vg_flickr_ids, rng.sample(self.flickr, s.vg_flickr), strict=True))
        self.vg_all = self.vg_eval + self.vg_train + vg_coco_ids + vg_flickr_ids
        # Karpathy's val, test and restval come from val2014 (which VQA v2 trains on, but
        # for its minval); GuessWhat's valid and test too.
        pool = self.coco_val[:]
        rng.shuffle(pool)
        self.karpathy = {c: "train" for c in self.coco_train}
        for name, n in (("val", s.karpathy_val), ("test", s.karpathy_test), ("restval", s.restval)):
            for c in pool[:n]:
                self.karpathy[c] = name
            pool = pool[n:]
        self.guesswhat_eval = rng.sample(self.coco_val, 2 * s.guesswhat_eval_images)
        self.refcoco_images = rng.sample(self.coco_train, s.refcoco_images)
        self.refcocog_images = rng.sample(self.coco_train, s.refcocog_images)

    # -- identity -------------------------------------------------------------------------
    def coco_uid(self, coco_id: int) -> str:
        photo = self.coco_as_flickr.get(coco_id)
        return f"flickr{photo}" if photo is not None else f"coco{coco_id}"

    def vg_uid(self, vg_id: int) -> str:
        if vg_id in self.vg_coco:
            return self.coco_uid(self.vg_coco[vg_id])
        if vg_id in self.vg_flickr:
            return f"flickr{self.vg_flickr[vg_id]}"
        return f"vg{vg_id}"

    def scene(self, uid: str, min_objects: int = 2) -> Scene:
        return make_scene(self.seed, uid, min_objects=min_objects)

    def rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(map(str, (self.seed, *parts))))

    def flickr_url(self, coco_id: int) -> str:
        photo = self.coco_as_flickr.get(coco_id)
        return flickr_static_url(photo if photo is not None else coco_id)


# ---------------------------------------------------------------------------- datasets
def _vqa2(w: World, out: Path) -> list[Path]:
    s = w.spec

    def records(images: list[int], per_image: float, answered: bool) -> Iterator[VqaQuestion]:
        for cid in images:
            rng = w.rng("vqa2", cid)
            scene = w.scene(w.coco_uid(cid))
            for k in range(_count(rng, per_image)):
                q, a, atype, qtype = lang.vqa_question(scene, rng)
                rec: VqaQuestion = {"question_id": cid * 1000 + k, "image_id": cid, "question": q}
                if answered:
                    rec.update(
                        question_type=qtype,
                        answer_type=atype,
                        multiple_choice_answer=a,
                        answers=lang.annotator_answers(a, rng, atype),
                    )
                yield rec

    d = out / "vqa2"
    files = write_vqa2(d, "train2014", records(w.coco_train, s.vqa_per_image, True), True)
    files += write_vqa2(d, "val2014", records(w.coco_val, s.vqa_per_image, True), True)
    files += write_vqa2(d, "test2015", records(w.coco_test, s.vqa_test_per_image, False), False)
    dev = [c for c in w.coco_test if c % 4 == 0] or w.coco_test[:1]
    files += write_vqa2(d, "test-dev2015", records(dev, s.vqa_test_per_image, False), False)
    return files


def _vg(w: World, out: Path) -> list[Path]:
    """VG-QA; the largest qa_ids (the pinned val) go to the VG eval pool."""
    s = w.spec
    order = list(reversed(w.vg_all))  # eval pool last -> largest qa ids
    base = 100_000

    def entries() -> Iterator[tuple[int, list[VgQa]]]:
        qa_id = base
        for vid in order:
            rng = w.rng("vgqa", vid)
            scene = w.scene(w.vg_uid(vid))
            qas: list[VgQa] = []
            for _ in range(_count(rng, s.vgqa_per_image)):
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

    return write_vgqa_stream(out / "vgqa", entries(), images())


def _gqa(w: World, out: Path) -> list[Path]:
    s = w.spec
    rng0 = w.rng("gqa-pools")
    nonvg = [f"n{v}" for v in rng0.sample(range(1, 9_999_999), s.gqa_nonvg_images)]
    val = [str(v) for v in w.vg_eval[: s.gqa_val_images]]
    dev = [str(v) for v in w.vg_eval[s.gqa_val_images : s.gqa_val_images + s.gqa_testdev_images]]
    train = [str(v) for v in w.vg_train + list(w.vg_coco) + list(w.vg_flickr)] + nonvg

    def records(images: list[str], prefix: int) -> Iterator[GqaQuestion]:
        for j, image in enumerate(images):
            rng = w.rng("gqa", image)
            uid = w.vg_uid(int(image)) if image.isdigit() else f"gqa{image}"
            scene = w.scene(uid)
            for k in range(_count(rng, s.gqa_per_image)):
                q = lang.gqa_question(scene, rng)
                # Digit strings of different lengths, unique across the three files.
                qid = f"{j * 100 + k}{prefix}"
                yield {
                    "id": qid,
                    "imageId": image,
                    "question": q["question"],
                    "answer": q["answer"],
                    "fullAnswer": q["fullAnswer"],
                    "structural": q["structural"],
                    "semantic": q["semantic"],
                    "detailed": q["detailed"],
                    "group_global": q["group_global"],
                    "group_local": f"{k:02d}-{image}",
                    "entailed": [],
                    "semantic_program": _gqa_program(q),
                }

    def choices(images: list[str], prefix: int) -> Iterator[tuple[str, GqaChoice]]:
        # The same (seeded) questions again: the choices file covers every question.
        for q in records(images, prefix):
            yield q["id"], _gqa_choice(q["detailed"], q["answer"])

    d = out / "gqa"
    return [
        write_gqa(d, "train_balanced_questions.json", records(train, 1)),
        write_gqa(d, "val_balanced_questions.json", records(val, 2)),
        write_gqa(d, "testdev_balanced_questions.json", records(dev, 3)),
        write_gqa_choices(d, "val_choices.json", choices(val, 2)),
        write_gqa_choices(d, "testdev_choices.json", choices(dev, 3)),
    ]


def _gqa_op(operation: str, argument: str, *dependencies: int) -> GqaOperation:
    return {"operation": operation, "argument": argument, "dependencies": list(dependencies)}


def _gqa_program(q: dict[str, Any]) -> list[GqaOperation]:
    """The semantic program of a generated question, by its detailed type (1-3 steps as
    the official script counts them: the exist / query-name step does not count)."""
    text = q["question"]
    if q["detailed"] == "queryAttr":  # What color is the <thing>?
        thing = text.removeprefix("What color is the ").removesuffix("?")
        return [_gqa_op("select", thing), _gqa_op("query", "color", 0)]
    if q["detailed"] == "existC":  # Is there a <thing> in the image?
        thing = text.removeprefix("Is there a ").removesuffix(" in the image?")
        return [_gqa_op("select", thing), _gqa_op("exist", "?", 0)]
    # What is the <colour> object on the <side>?
    colour, _, side = text.removeprefix("What is the ").removesuffix("?").partition(" object on ")
    side = side.removeprefix("the ")
    return [
        _gqa_op("select", "object"),
        _gqa_op("filter color", colour, 0),
        _gqa_op("filter hposition", side, 1),
        _gqa_op("query", "name", 2),
    ]


def _gqa_choice(detailed: str, answer: str) -> GqaChoice:
    """Valid answers: every answer of the question's kind; plausible: the gold answer and
    its neighbours in that list (a fixed rule, so the file needs no random draws)."""
    kinds = {"queryAttr": COLOURS, "existC": ("no", "yes")}
    valid = sorted(kinds.get(detailed, CATEGORY_NAMES))
    at = valid.index(answer) if answer in valid else 0
    return {"valid": valid, "plausible": valid[max(0, at - 1) : at + 2]}


def _sentences(w: World, uid: str, task: str, n: int = 5) -> list[str]:
    rng = w.rng(task, uid)
    scene = w.scene(uid)
    return [lang.caption(scene, rng) for _ in range(n)]


def _coco_retrieval(w: World, out: Path) -> list[Path]:
    d = out / "coco_retrieval"

    def images() -> Iterator[KarpathyImage]:
        for cid in w.coco_train + [c for c in w.coco_val if c in w.karpathy]:
            yield {
                "cocoid": cid,
                "split": w.karpathy[cid],
                "sentences": [{"raw": t} for t in _sentences(w, w.coco_uid(cid), "cap")],
            }

    files = [write_karpathy_coco(d, images())]
    # COCO's own image records, for their flickr_url links (optional files of the task).
    for subset, ids in (("train2014", w.coco_train), ("val2014", w.coco_val)):
        recs = (
            coco_image(c, *_size(w.scene(w.coco_uid(c))), subset, flickr_url=w.flickr_url(c))
            for c in ids
        )
        caps = (
            caption_annotation(c * 10 + k, c, t)
            for c in ids
            for k, t in enumerate(_sentences(w, w.coco_uid(c), "cap"))
        )
        files.append(write_coco_captions(d, subset, recs, caps))
    return files


def _size(scene: Scene) -> tuple[int, int]:
    return scene.width, scene.height


def _flickr30k(w: World, out: Path) -> list[Path]:
    def images() -> Iterator[KarpathyImage]:
        for p in w.flickr:
            yield {
                "filename": f"{p}.jpg",
                "split": w.flickr_split[p],
                "sentences": [{"raw": t} for t in _sentences(w, f"flickr{p}", "cap")],
            }

    return [write_karpathy_flickr30k(out / "flickr30k_retrieval", images())]


def _refer(
    w: World, out: Path, task: str, images: list[int], refs_file: str, flavour: str
) -> list[Path]:
    s = w.spec
    # RefCOCO and RefCOCO+ share the UNC partition of their images (as in the releases).
    rng0 = w.rng("umd" if flavour == "umd" else "unc", "splits")
    eval_splits = REFER_SPLITS["umd" if flavour == "umd" else "unc"]
    split_of = {}
    for cid in images:
        r = rng0.random()
        split_of[cid] = eval_splits[int(r / 0.4 * len(eval_splits))] if r < 0.4 else "train"
    ids = {"sent": 0, "ref": 0}

    def refs() -> Iterator[Ref]:
        for cid in images:
            rng = w.rng(task, cid)
            scene = w.scene(w.coco_uid(cid))
            for _ in range(_count(rng, s.refs_per_image)):
                target = rng.randrange(len(scene.objects))
                sentences = []
                for _ in range(rng.randint(1, 3)):
                    sentences.append(
                        {"sent_id": ids["sent"], "sent": lang.refexp(scene, target, rng, flavour)}
                    )
                    ids["sent"] += 1
                ids["ref"] += 1
                yield {
                    "ref_id": ids["ref"],
                    "ann_id": cid * 100 + target,
                    "image_id": cid,
                    "category_id": CATEGORY_ID[scene.objects[target].category],
                    "split": split_of[cid],
                    "sentences": sentences,
                }

    def coco_images() -> Iterator[dict[str, Any]]:
        for cid in images:
            scene = w.scene(w.coco_uid(cid))
            yield {
                "id": cid,
                "width": scene.width,
                "height": scene.height,
                "flickr_url": w.flickr_url(cid),
            }

    def annotations() -> Iterator[dict[str, Any]]:
        for cid in images:
            for j, obj in enumerate(w.scene(w.coco_uid(cid)).objects):
                yield {
                    "id": cid * 100 + j,
                    "image_id": cid,
                    "category_id": CATEGORY_ID[obj.category],
                    "bbox": list(obj.box),
                }

    cats = [category(cid, name, sup) for cid, name, sup in CATEGORIES]
    return write_refer(out / task, refs_file, refs(), coco_images(), annotations(), categories=cats)


def _visual7w(w: World, out: Path) -> list[Path]:
    s = w.spec
    n = s.v7w_eval_images
    offset = s.gqa_val_images + s.gqa_testdev_images
    evals = (
        w.vg_eval[offset : offset + 2 * n]
        if len(w.vg_eval) >= offset + 2 * n
        else w.vg_eval[-2 * n :]
    )
    split_of = {v: "val" for v in evals[:n]} | {v: "test" for v in evals[n:]}
    train = w.vg_train + list(w.vg_coco)
    order = evals + train
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
            qas = []
            for _ in range(_count(rng, s.v7w_per_image)):
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
    return [write_visual7w(out / "visual7w", images(), boxes())]


def _guesswhat(w: World, out: Path) -> list[Path]:
    s = w.spec
    rng0 = w.rng("guesswhat-pools")
    train = rng0.sample(w.coco_train, s.guesswhat_train_images)
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
                for _ in range(_count(rng, s.games_per_image)):
                    target = rng.randrange(len(scene.objects))
                    game_id[0] += 1
                    r = rng.random()
                    status = "success" if r < 0.8 else "failure" if r < 0.95 else "incomplete"
                    qas = [
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

        files.append(write_guesswhat(out / "guesswhat", split, games()))
    return files


def nlvr2_stems(w: World) -> dict[str, list[str]]:
    s = w.spec
    return {
        split: [f"{split}-{i // 4}-{i % 4}" for i in range(n)]
        for split, n in (("train", s.nlvr2_train), ("dev", s.nlvr2_eval), ("test1", s.nlvr2_eval))
    }


def _nlvr2(w: World, out: Path) -> list[Path]:
    files = []
    for split, stems in nlvr2_stems(w).items():

        def examples(stems: list[str] = stems) -> Iterator[Nlvr2Example]:
            for stem in stems:
                rng = w.rng("nlvr2", stem)
                left, right = (w.scene(f"nlvr2{stem}-img{k}") for k in (0, 1))
                sentence, label = lang.nlvr2_statement(left, right, rng)
                yield {"identifier": f"{stem}-0", "sentence": sentence, "label": label}

        files.append(write_nlvr2(out / "nlvr2", split, examples()))
    return files


def _snli_ve(w: World, out: Path) -> list[Path]:
    s = w.spec
    files = []
    for split in ("train", "dev", "test"):
        photos = [p for p in w.flickr if w.entities_split[p] == split]

        def pairs(photos: list[int] = photos) -> Iterator[SnliVePair]:
            for p in photos:
                rng = w.rng("snli", p)
                scene = w.scene(f"flickr{p}")
                captions = _sentences(w, f"flickr{p}", "cap")
                for k in range(_count(rng, s.snli_per_image)):
                    cap = rng.randrange(len(captions))
                    hyp, label = lang.hypothesis(scene, rng)
                    # Never "-": the release's generator drops SNLI pairs without a gold
                    # label, so the real files have none (the converter still handles them).
                    yield {
                        "flickr_id": str(p),
                        "pair_id": f"{p}.jpg#{cap}r{k}{label[0]}",
                        "caption_id": f"{p}.jpg#{cap}",
                        "gold_label": label,
                        "annotator_labels": [label],
                        "premise": captions[cap],
                        "hypothesis": hyp,
                    }

        files.append(write_snli_ve(out / "snli_ve", split, pairs()))
    return files


def _features(w: World, out: Path) -> list[Path]:
    """One bottom-up TSV per universe, for every image the datasets use."""
    d = out / "features"

    def rows(items: list[tuple[str, str]]) -> Iterator[RegionRow]:
        for image_id, uid in items:
            scene = w.scene(uid)
            boxes, feats = w.projector.regions(scene, uid, w.seed)
            yield RegionRow(image_id, scene.width, scene.height, boxes, feats)

    coco = [(str(c), w.coco_uid(c)) for c in w.coco_train + w.coco_val + w.coco_test]
    vg = [(str(v), w.vg_uid(v)) for v in w.vg_all]
    flickr = [(str(p), f"flickr{p}") for p in w.flickr]
    nlvr2 = [
        (f"{stem}-img{k}", f"nlvr2{stem}-img{k}")
        for stems in nlvr2_stems(w).values()
        for stem in stems
        for k in (0, 1)
    ]
    return [
        write_tsv(d / f"{name}.tsv", rows(items))
        for name, items in (("coco", coco), ("vg", vg), ("flickr", flickr), ("nlvr2", nlvr2))
    ]


def generate(
    out: Path, scale: str = "tiny", seed: int = 0, feature_dim: int = 32, features: bool = True
) -> list[Path]:
    """Write all 12 raw folders (and the region-feature TSVs) under ``out``."""
    w = World(scale, seed, feature_dim)
    files = _vqa2(w, out) + _gqa(w, out) + _vg(w, out)
    files += _coco_retrieval(w, out) + _flickr30k(w, out)
    files += _refer(w, out, "refcoco", w.refcoco_images, "refs(unc).p", "unc")
    files += _refer(w, out, "refcoco_plus", w.refcoco_images, "refs(unc).p", "plus")
    files += _refer(w, out, "refcocog", w.refcocog_images, "refs(umd).p", "umd")
    files += _visual7w(w, out) + _guesswhat(w, out) + _nlvr2(w, out) + _snli_ve(w, out)
    if features:
        files += _features(w, out)
    return files
