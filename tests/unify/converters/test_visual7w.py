"""visual7w: writer-made pointing files (no real sample exists), sorted candidates, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalserver.metrics.groundtruth import load_groundtruth
from tests.unify.helpers import build, examples
from unify.errors import MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.vgqa_format import write_vgqa
from unify.sample.visual7w_format import V7wBox, V7wImage, write_visual7w

BOXES: list[V7wBox] = [
    {"box_id": 7, "x": 10, "y": 20, "width": 30, "height": 40, "name": "cup"},
    {"box_id": 3, "x": 0, "y": 0, "width": 5.5, "height": 6.5, "name": "dog"},
    {"box_id": 12, "x": 100, "y": 1, "width": 2, "height": 3, "name": "cat"},
    {"box_id": 5, "x": 7, "y": 8, "width": 9, "height": 10, "name": "hat"},
    {"box_id": 40, "x": 1, "y": 2, "width": 3, "height": 4, "name": "man"},
    {"box_id": 41, "x": 50, "y": 60, "width": 70, "height": 80, "name": "car"},
]


def images() -> list[V7wImage]:
    return [
        {
            "image_id": 2386986,
            "split": "train",
            "qa_pairs": [
                # the answer is the largest id: it must not stay first
                {
                    "qa_id": 90,
                    "question": "Which cat?",
                    "answer": 12,
                    "multiple_choices": [3, 7, 5],
                },
                {
                    "qa_id": 91,
                    "question": "Which dog?",
                    "answer": 3,
                    "multiple_choices": [12, 7, 5],
                },
            ],
        },
        {
            "image_id": 17,
            "split": "val",
            "qa_pairs": [
                {
                    "qa_id": 95,
                    "question": "Which hat?",
                    "type": "which",
                    "answer": 5,
                    "multiple_choices": [40, 3, 41],
                }
            ],
        },
        {
            "image_id": 18,
            "split": "test",
            "qa_pairs": [
                {
                    "qa_id": 97,
                    "question": "Which car?",
                    "answer": 41,
                    "multiple_choices": [40, 7, 3],
                },
                {
                    "qa_id": 98,
                    "question": "Which man?",
                    "answer": 40,
                    "multiple_choices": [41, 5, 12],
                },
            ],
        },
    ]


def _flat(imgs: list[V7wImage]) -> dict[str, list[tuple[V7wImage, dict]]]:
    out: dict[str, list[tuple[V7wImage, dict]]] = {"train": [], "val": [], "test": []}
    for img in imgs:
        for qa in img["qa_pairs"]:
            out[img["split"]].append((img, qa))
    return out


def test_every_field_round_trips(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    imgs = images()
    path = write_visual7w(raw / "visual7w", (img for img in imgs), (b for b in BOXES))
    doc = json.loads(path.read_text())
    assert list(doc) == ["images", "boxes"] and doc["images"][0]["filename"] == "v7w_2386986.jpg"
    assert doc["images"][0]["qa_pairs"][0]["image_id"] == 2386986
    out = tmp_path / "out.h5"
    build(raw, out, "visual7w")
    boxes = {b["box_id"]: [b["x"], b["y"], b["width"], b["height"]] for b in BOXES}
    with UnifiedFile(out) as uf:
        assert uf.splits("visual7w") == ["train", "val", "test"]
        assert [uf.split("visual7w", s).role for s in ("train", "val", "test")] == [
            "train",
            "eval",
            "eval",
        ]
        attrs = uf.task_attrs("visual7w")
        assert (attrs["metric"], attrs["id_field"], attrs["example_unit"]) == (
            "pointing",
            "qa_id",
            "qa_pair",
        )
        train = uf.split("visual7w", "train")
        assert train.column("candidate_box_ids").dtype == np.int64
        assert train.column("candidate_boxes").dtype == np.float32
        assert train.column("candidate_boxes").shape == (2, 4, 4)
        assert train.column("label").dtype == np.int8
    for split, want in _flat(imgs).items():
        got = examples(out, "visual7w", split)
        assert [e["id"] for e in got] == [qa["qa_id"] for _, qa in want]
        for e, (img, qa) in zip(got, want, strict=True):
            candidates = sorted([qa["answer"], *qa["multiple_choices"]])
            assert e["image"] == f"vg:{img['image_id']}"
            assert e["question"] == qa["question"]
            assert e["type"] == "which"
            assert e["candidate_box_ids"] == candidates
            assert e["candidate_boxes"] == [boxes[b] for b in candidates]
            assert candidates[e["label"]] == qa["answer"]
    # The answer's position follows the sorted ids, not the release's answer-first order.
    assert [e["label"] for e in examples(out, "visual7w", "train")] == [3, 0]
    assert [e["label"] for e in examples(out, "visual7w", "test")] == [3, 2]
    gt = load_groundtruth(out, "visual7w")  # the scorer's view: test split, gold box ids
    assert gt.gold_box_ids.tolist() == [41, 40]


def test_vg_sizes_come_from_vgqa_image_data(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_visual7w(raw / "visual7w", images(), BOXES)
    out = tmp_path / "out.h5"
    build(raw, out, "visual7w")
    with UnifiedFile(out) as uf:
        assert list(uf.image_keys) == ["vg:17", "vg:18", "vg:2386986"]
        assert uf.h5["images"]["width"][:].tolist() == [-1, -1, -1]  # the file states none
    write_vgqa(raw / "vgqa", [], [{"image_id": 17, "width": 320, "height": 240}])
    build(raw, out, "visual7w")
    with UnifiedFile(out) as uf:
        assert uf.h5["images"]["width"][:].tolist() == [320, -1, -1]
        assert uf.h5["images"]["height"][:].tolist() == [240, -1, -1]


def test_smoke_mode_takes_the_first_qa_pairs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_visual7w(raw / "visual7w", images(), BOXES)
    out = tmp_path / "out.h5"
    build(raw, out, "visual7w", max_examples=3)
    with UnifiedFile(out) as uf:
        counts = {s: uf.split("visual7w", s).num_examples for s in uf.splits("visual7w")}
    assert counts == {"train": 2, "val": 1, "test": 0}


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "visual7w").mkdir(parents=True)
    with pytest.raises(MissingRawFilesError) as info:
        build(raw, tmp_path / "out.h5", "visual7w")
    assert "dataset_v7w_pointing.json" in str(info.value)
    assert "http://ai.stanford.edu/~yukez/visual7w/" in str(info.value)
    (raw / "visual7w" / "dataset_v7w_pointing.json").write_text('{"images": [], "boxes": [')
    with pytest.raises(MalformedFileError, match=r"dataset_v7w_pointing\.json: malformed file"):
        build(raw, tmp_path / "out.h5", "visual7w")


def _bad(tmp_path: Path, imgs: list, match: str, boxes: list | None = None) -> None:
    raw = tmp_path / "raw"
    path = raw / "visual7w" / "dataset_v7w_pointing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": imgs, "boxes": BOXES if boxes is None else boxes}))
    with pytest.raises(RecordError, match=match):
        build(raw, tmp_path / "out.h5", "visual7w")


@pytest.fixture
def raw_images(tmp_path: Path) -> list[dict]:
    path = write_visual7w(tmp_path / "scratch", images(), [])
    return json.loads(path.read_text())["images"]


def test_unknown_box_ids_name_qa_and_field(tmp_path: Path, raw_images: list[dict]) -> None:
    raw_images[2]["qa_pairs"][1]["multiple_choices"][1] = 999
    _bad(
        tmp_path,
        raw_images,
        r"dataset_v7w_pointing\.json: record 98: field 'multiple_choices\[1\]': box id 999 "
        r"is not in the top-level 'boxes' list",
    )
    raw_images[2]["qa_pairs"][1]["multiple_choices"][1] = 5
    raw_images[0]["qa_pairs"][1]["answer"] = 4
    _bad(tmp_path, raw_images, r"record 91: field 'answer': box id 4 is not in")


def test_bad_qa_pairs_and_splits(tmp_path: Path, raw_images: list[dict]) -> None:
    imgs = json.loads(json.dumps(raw_images))
    imgs[1]["split"] = "testdev"
    _bad(tmp_path, imgs, r"record image 17: field 'split': unknown split 'testdev'")

    imgs = json.loads(json.dumps(raw_images))
    imgs[0]["qa_pairs"][0]["question"] = 5
    _bad(tmp_path, imgs, r"record 90: field 'question': expected str, got int")

    imgs = json.loads(json.dumps(raw_images))
    imgs[0]["qa_pairs"][1]["multiple_choices"] = [12, 7]
    _bad(tmp_path, imgs, r"record 91: field 'multiple_choices': expected 3 box ids, got 2")

    imgs = json.loads(json.dumps(raw_images))
    imgs[0]["qa_pairs"][1]["multiple_choices"] = [12, 7, 3]  # 3 is also the answer
    _bad(tmp_path, imgs, r"record 91: field 'multiple_choices': box id 3 appears twice")

    imgs = json.loads(json.dumps(raw_images))
    imgs[2]["qa_pairs"][0]["image_id"] = 19
    _bad(tmp_path, imgs, r"record 97: field 'image_id': 19 differs from its image entry 18")

    imgs = json.loads(json.dumps(raw_images))
    del imgs[2]["qa_pairs"][0]["qa_id"]
    _bad(tmp_path, imgs, r"record image 18 qa_pairs: field 'qa_id': missing")


def test_bad_boxes(tmp_path: Path, raw_images: list[dict]) -> None:
    boxes = [dict(b) for b in BOXES]
    boxes[2]["width"] = "2"
    _bad(tmp_path, raw_images, r"record box 12: field 'width': expected int/float", boxes)
    boxes = [dict(b) for b in BOXES] + [dict(BOXES[0])]
    _bad(tmp_path, raw_images, r"record box 7: field 'box_id': duplicate box id", boxes)
