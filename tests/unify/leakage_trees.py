"""Tiny raw trees for the leakage tests, written by the release-format writers.

Each helper writes one task's release files from a few (example id, image id) pairs, so a
test states its whole world in a handful of lines and can compute every expected count by
hand. Image links appear only where a test asks for them: COCO image records get an empty
``flickr_url`` unless a photo id is given, VG records get coco_id/flickr_id only when given.
That is what lets a scenario make one link type the ONLY way to find its leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unify.sample.coco_format import coco_image, flickr_static_url, write_coco_captions
from unify.sample.gqa_format import GqaQuestion, write_gqa
from unify.sample.guesswhat_format import GuessWhatGame, write_guesswhat
from unify.sample.karpathy_format import (
    KarpathyImage,
    write_karpathy_coco,
    write_karpathy_flickr30k,
)
from unify.sample.nlvr2_format import write_nlvr2
from unify.sample.refer_format import write_refer
from unify.sample.snli_ve_format import write_snli_ve
from unify.sample.vgqa_format import VgImageRecord, VgQa, write_vgqa
from unify.sample.visual7w_format import write_visual7w
from unify.sample.vqa2_format import VqaQuestion, write_vqa2

#: (example id, image id) pairs of one split.
Items = Sequence[tuple[int, int]]

#: vgqa's hold-out: the 5,000 QA pairs with the largest qa_id are val.
VGQA_VAL = 5000
#: vqa2's hold-out: the 3,000 val2014 questions with the largest question_id are minval.
VQA_MINVAL = 3000
#: Captions per image in the Karpathy files; caption (sentid) ids are image id * 10 + j.
CAPTIONS = 2


def url(photo: int | None) -> str:
    """A COCO record's flickr_url: a static Flickr URL naming ``photo``, or "" (no link)."""
    return "" if photo is None else flickr_static_url(photo)


def sentids(*images: int) -> list[int]:
    """The caption ids the Karpathy helpers give ``images``, in order."""
    return [image * 10 + j for image in images for j in range(CAPTIONS)]


def _question(qid: int, image: int) -> VqaQuestion:
    return {
        "question_id": qid,
        "image_id": image,
        "question": f"What is in picture {image}?",
        "question_type": "what",
        "answer_type": "other",
        "multiple_choice_answer": "cat",
        "answers": ["cat"] * 10,
    }


def vqa2(raw: Path, train: Items, val: Items, minval_padding: int | None = None) -> None:
    """VQA v2 train2014/val2014. ``minval_padding``: add 3,000 val questions with larger ids
    on that COCO image, so that ``val`` stays in trainval (the real split's situation)."""
    pad = (
        []
        if minval_padding is None
        else [(10_000_000 + k, minval_padding) for k in range(VQA_MINVAL)]
    )
    write_vqa2(raw / "vqa2", "train2014", [_question(q, i) for q, i in train])
    write_vqa2(raw / "vqa2", "val2014", [_question(q, i) for q, i in [*val, *pad]])


def _gqa_question(qid: str, image: str) -> GqaQuestion:
    return {
        "id": qid,
        "imageId": image,
        "question": f"Is there a cat in {image}?",
        "answer": "yes",
        "fullAnswer": "Yes.",
        "structural": "verify",
        "semantic": "obj",
        "detailed": "exist",
        "group_global": None,
        "group_local": "01-cat",
        "entailed": [],
    }


def gqa(
    raw: Path,
    train: Sequence[tuple[str, str]],
    val: Sequence[tuple[str, str]],
    testdev: Sequence[tuple[str, str]],
) -> None:
    """GQA balanced files; ids and image ids are strings as in the release (digit image ids
    are VG ids). Fewer than 3,000 val questions: all of ``val`` is minval."""
    d = raw / "gqa"
    for name, items in (("train", train), ("val", val), ("testdev", testdev)):
        write_gqa(d, f"{name}_balanced_questions.json", [_gqa_question(q, i) for q, i in items])


def vg_image_data(raw: Path, images: Sequence[VgImageRecord]) -> None:
    """Only VG's image_data.json (and an empty question_answers.json) under ``vgqa/``: the
    shared link source of a build that has no vgqa task."""
    write_vgqa(raw / "vgqa", [], images)


def vgqa(raw: Path, train: Items, val_image: int, images: Sequence[VgImageRecord]) -> None:
    """VG-QA: ``train`` QA pairs plus 5,000 val QA pairs (larger qa_ids) on ``val_image``."""
    qas: list[VgQa] = [
        {"qa_id": q, "image_id": i, "question": "What color?", "answer": "Red."} for q, i in train
    ]
    qas += [
        {"qa_id": 10_000_000 + k, "image_id": val_image, "question": "Where?", "answer": "here"}
        for k in range(VGQA_VAL)
    ]
    write_vgqa(raw / "vgqa", qas, images)


def _karpathy(images: Sequence[int], split: str, coco: bool) -> list[KarpathyImage]:
    out: list[KarpathyImage] = []
    for image in images:
        record: KarpathyImage = {
            "split": split,
            "sentences": [{"raw": f"A photo number {image}.", "sentid": s} for s in sentids(image)],
        }
        if coco:
            record["cocoid"] = image
        else:
            record["filename"] = f"{image}.jpg"
        out.append(record)
    return out


def coco_retrieval(
    raw: Path,
    train: Sequence[int],
    val: Sequence[int],
    test: Sequence[int],
    flickr_urls: dict[int, int | None] | None = None,
) -> None:
    """Karpathy's dataset_coco.json; with ``flickr_urls`` (COCO id -> Flickr photo id or
    None) also the optional captions_train2014.json whose image records carry them."""
    d = raw / "coco_retrieval"
    images = _karpathy(train, "train", True) + _karpathy(val, "val", True)
    write_karpathy_coco(d, images + _karpathy(test, "test", True))
    if flickr_urls is not None:
        records = [
            coco_image(image, 640, 480, "train2014", flickr_url=url(photo))
            for image, photo in flickr_urls.items()
        ]
        write_coco_captions(d, "train2014", records, [])


def flickr30k(raw: Path, train: Sequence[int], val: Sequence[int], test: Sequence[int]) -> None:
    """Karpathy's dataset_flickr30k.json; image ids are Flickr photo ids."""
    images = [
        *_karpathy(train, "train", False),
        *_karpathy(val, "val", False),
        *_karpathy(test, "test", False),
    ]
    write_karpathy_flickr30k(raw / "flickr30k_retrieval", images)


def refcoco(
    raw: Path, sentences: Sequence[tuple[int, int, str]], photos: dict[int, int] | None = None
) -> None:
    """refs(unc).p with one ref per (sent_id, COCO image id, split) and its instances.json;
    ``photos`` gives some images a flickr_url (COCO id -> Flickr photo id)."""
    photos = photos or {}
    refs = [
        {
            "ref_id": sent,
            "ann_id": 1000 + sent,
            "image_id": image,
            "category_id": 1,
            "split": split,
            "sentences": [{"sent_id": sent, "sent": f"person {sent}"}],
        }
        for sent, image, split in sentences
    ]
    images = sorted({image for _, image, _ in sentences})
    write_refer(
        raw / "refcoco",
        "refs(unc).p",
        refs,
        [{"id": i, "width": 640, "height": 480, "flickr_url": url(photos.get(i))} for i in images],
        [
            {"id": 1000 + sent, "image_id": image, "category_id": 1, "bbox": [1, 2, 3, 4]}
            for sent, image, _ in sentences
        ],
    )


def visual7w(raw: Path, qas: Sequence[tuple[int, int, str]]) -> None:
    """dataset_v7w_pointing.json with one image record per (qa_id, VG image id, split)."""
    boxes = [
        {"box_id": b, "x": b, "y": b, "width": 10, "height": 10, "name": "box"}
        for b in (1, 2, 3, 4)
    ]
    images = [
        {
            "image_id": image,
            "split": split,
            "qa_pairs": [
                {"qa_id": qa, "question": "Which box?", "answer": 1, "multiple_choices": [2, 3, 4]}
            ],
        }
        for qa, image, split in qas
    ]
    write_visual7w(raw / "visual7w", images, boxes)


def _game(game: int, image: int, photo: int | None) -> GuessWhatGame:
    return {
        "id": game,
        "status": "success",
        "object_id": game * 10,
        "image": {"id": image, "width": 640, "height": 480, "flickr_url": url(photo)},
        "qas": [{"id": game * 100, "question": "Is it a cat?", "answer": "Yes"}],
        "objects": [{"id": game * 10, "category": "cat", "category_id": 17, "bbox": [1, 2, 3, 4]}],
    }


def guesswhat(
    raw: Path,
    train: Sequence[tuple[int, int, int | None]],
    valid: Sequence[tuple[int, int, int | None]],
    test: Sequence[tuple[int, int, int | None]],
) -> None:
    """One game per (game id, COCO image id, Flickr photo id of its flickr_url or None)."""
    for split, games in (("train", train), ("valid", valid), ("test", test)):
        write_guesswhat(raw / "guesswhat", split, [_game(*g) for g in games])


def nlvr2(raw: Path, train: Sequence[str], dev: Sequence[str], test1: Sequence[str]) -> None:
    """NLVR2 JSON Lines from identifiers (split-set-pair-sentence)."""
    for split, identifiers in (("train", train), ("dev", dev), ("test1", test1)):
        write_nlvr2(
            raw / "nlvr2",
            split,
            [{"identifier": i, "sentence": f"s {i}", "label": True} for i in identifiers],
        )


def snli_pair_id(n: int, photo: int) -> str:
    """The pairID the SNLI-VE helper gives pair ``n`` on ``photo``."""
    return f"{photo}.jpg#{n}r1e"


def snli_ve(
    raw: Path,
    train: Sequence[tuple[int, int]],
    dev: Sequence[tuple[int, int]],
    test: Sequence[tuple[int, int]],
) -> None:
    """SNLI-VE JSON Lines, one pair per (pair number, Flickr photo id)."""
    for split, pairs in (("train", train), ("dev", dev), ("test", test)):
        write_snli_ve(
            raw / "snli_ve",
            split,
            [
                {
                    "flickr_id": str(photo),
                    "pair_id": snli_pair_id(n, photo),
                    "caption_id": f"{photo}.jpg#{n}",
                    "gold_label": "entailment",
                    "premise": f"Photo {photo}.",
                    "hypothesis": "Something.",
                }
                for n, photo in pairs
            ],
        )
