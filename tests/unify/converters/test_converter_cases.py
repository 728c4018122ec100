"""Every task through the generic converter harness (tests/unify/converter_case.py).

Each case writes a tiny raw folder with the task's release-format writer (through the
helpers of tests/unify/leakage_trees.py) and states its split sizes; the harness checks
counts, roles, ids, determinism, the round trip and the declared files.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tests.unify import leakage_trees as trees
from tests.unify.converter_case import ConverterCase
from unify.sample.refer_format import write_refer
from unify.tasks import task_names

VG_IMAGES = [{"image_id": i, "width": 800, "height": 600} for i in (1, 2, 3)]


class TestVqa2(ConverterCase):
    TASK = "vqa2"
    # Fewer than 3,000 val2014 questions: all of them are minval, trainval is train2014.
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"trainval": 2, "minval": 3}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
        return {"trainval": [1, 2], "minval": [3, 4, 5]}


class TestGqa(ConverterCase):
    TASK = "gqa"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"trainval": 2, "minval": 1, "testdev": 2}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.gqa(raw, [("01", "1"), ("2", "2")], [("3", "3")], [("4", "4"), ("5", "n5")])
        return {"trainval": ["01", "2"], "minval": ["3"], "testdev": ["4", "5"]}


class TestVgqa(ConverterCase):
    TASK = "vgqa"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "val": trees.VGQA_VAL}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.vgqa(raw, [(1, 1), (2, 2)], 3, VG_IMAGES)
        return {"train": [1, 2], "val": [10_000_000 + k for k in range(trees.VGQA_VAL)]}


class TestCocoRetrieval(ConverterCase):
    TASK = "coco_retrieval"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 4, "val": 2, "test": 2}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.coco_retrieval(raw, [1, 2], [3], [4], flickr_urls={1: 77, 2: None})
        return {"train": trees.sentids(1, 2), "val": trees.sentids(3), "test": trees.sentids(4)}


class TestFlickr30kRetrieval(ConverterCase):
    TASK = "flickr30k_retrieval"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 4, "val": 2, "test": 2}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.flickr30k(raw, [11, 12], [13], [14])
        return {
            "train": trees.sentids(11, 12),
            "val": trees.sentids(13),
            "test": trees.sentids(14),
        }


REFS = [(1, 100, "train"), (2, 100, "train"), (3, 101, "val"), (4, 102, "testA")]
REFS += [(5, 103, "testB")]


class TestRefcoco(ConverterCase):
    TASK = "refcoco"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "val": 1, "testA": 1, "testB": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.refcoco(raw, REFS)
        return {"train": [1, 2], "val": [3], "testA": [4], "testB": [5]}


class TestRefcocoPlus(TestRefcoco):
    TASK = "refcoco_plus"

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        written = super().write_raw(raw)
        shutil.move(raw / "refcoco", raw / "refcoco_plus")
        return written


class TestRefcocog(ConverterCase):
    TASK = "refcocog"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "val": 1, "test": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        sentences = [(1, 100, "train"), (2, 101, "train"), (3, 102, "val"), (4, 103, "test")]
        refs = [
            {
                "ref_id": sent,
                "ann_id": 1000 + sent,
                "image_id": image,
                "category_id": 1,
                "split": split,
                "sentences": [{"sent_id": sent, "sent": f"the cup {sent}"}],
            }
            for sent, image, split in sentences
        ]
        write_refer(
            raw / "refcocog",
            "refs(umd).p",
            refs,
            [{"id": i, "width": 640, "height": 480} for _, i, _ in sentences],
            [
                {"id": 1000 + s, "image_id": i, "category_id": 1, "bbox": [1, 2, 30, 40]}
                for s, i, _ in sentences
            ],
        )
        return {"train": [1, 2], "val": [3], "test": [4]}


class TestVisual7w(ConverterCase):
    TASK = "visual7w"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "val": 1, "test": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.visual7w(raw, [(1, 10, "train"), (2, 11, "train"), (3, 12, "val"), (4, 13, "test")])
        return {"train": [1, 2], "val": [3], "test": [4]}


class TestGuesswhat(ConverterCase):
    TASK = "guesswhat"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "valid": 1, "test": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.guesswhat(raw, [(1, 100, None), (2, 101, 55)], [(3, 102, None)], [(4, 103, None)])
        return {"train": [1, 2], "valid": [3], "test": [4]}


class TestNlvr2(ConverterCase):
    TASK = "nlvr2"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "dev": 1, "test1": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        train = ["train-1-0-0", "train-1-0-1"]
        trees.nlvr2(raw, train, ["dev-2-0-0"], ["test1-3-0-0"])
        return {"train": train, "dev": ["dev-2-0-0"], "test1": ["test1-3-0-0"]}


class TestSnliVe(ConverterCase):
    TASK = "snli_ve"
    SPLIT_SIZES: ClassVar[Mapping[str, int]] = {"train": 2, "dev": 1, "test": 1}

    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        trees.snli_ve(raw, [(1, 100), (2, 100)], [(3, 101)], [(4, 102)])
        return {
            "train": [trees.snli_pair_id(1, 100), trees.snli_pair_id(2, 100)],
            "dev": [trees.snli_pair_id(3, 101)],
            "test": [trees.snli_pair_id(4, 102)],
        }


def test_every_task_has_a_case() -> None:
    """A new TaskSpec without a harness case fails here."""
    cases = {cls.TASK for cls in _subclasses(ConverterCase)}
    assert cases == set(task_names())


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found
