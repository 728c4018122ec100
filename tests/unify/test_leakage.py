"""Cross-dataset leakage: identity groups, cleaning into mteval, the report, `unify leaks`.

Every build scenario is a writer-made raw tree of only the tasks it needs, in which ONE
link type (or none: the same key) is the only way to find each leak, so a wrong link
source, a wrong group or a wrong attribution changes a count. Expected numbers are
written out by hand from the trees in ``SCENARIOS``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tests.unify import leakage_trees as T
from tests.unify.helpers import build
from unify.build import BuildOptions, run_build
from unify.checksums import restamp
from unify.cli import main
from unify.errors import DataError, MalformedFileError
from unify.leakage import (
    LeakagePolicy,
    SplitImages,
    analyse,
    clean_tables,
    identity_groups,
    read_id_list,
)
from unify.reader import UnifiedFile
from unify.sample.vgqa_format import write_vgqa
from unify.table import Ragged, SplitTable, TaskTable
from unify.tasks import get

VG_COCO, VG_FLICKR, COCO_FLICKR, SAME = (
    "vg_coco_id",
    "vg_flickr_id",
    "coco_flickr_url",
    "same_key",
)

Pair = tuple[str, str, str, int, int, list[str]]


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def train_split(task: str) -> str:
    return get(task).train_splits[0]


def report_of(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return json.loads(f["leakage"].attrs["report"])


def pairs_of(report: dict[str, Any]) -> list[Pair]:
    return [
        (
            p["train_task"],
            p["train_split"],
            p["eval_task"],
            p["images"],
            p["examples"],
            p["link_types"],
        )
        for p in report["pairs"]
    ]


def sizes_of(uf: UnifiedFile, task: str) -> dict[str, int]:
    return {s: uf.split(task, s).num_examples for s in uf.splits(task)}


def ids_of(uf: UnifiedFile, task: str, split: str) -> list[Any]:
    return uf.split(task, split).column("id").tolist()


# ---------------------------------------------------------------------------------------
# The scenarios: a raw tree, the tasks built from it, and what cleaning must do.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """``sizes``: every split after cleaning (mteval included); ``mteval``: its ids."""

    write: Callable[[Path], None]
    tasks: tuple[str, ...]
    sizes: dict[str, dict[str, int]]
    mteval: dict[str, list[Any]]
    pairs: list[Pair]
    joined: dict[str, int]
    groups: int
    link_sources: set[str] = field(default_factory=set)


def same_key_tree(raw: Path) -> None:
    """A RefCOCO testA image (coco:10) carries VQA training questions 1 and 2. Its COCO
    record also names a Flickr photo that no task uses: the leak must still be named
    ``same_key`` only. NLVR2 is built alongside and must stay untouched."""
    T.vqa2(raw, train=[(1, 10), (2, 10), (3, 11), (4, 12)], val=[(101, 20)])
    T.refcoco(
        raw,
        [(500, 13, "train"), (501, 14, "val"), (502, 10, "testA"), (503, 15, "testB")],
        photos={10: 1010},
    )
    T.nlvr2(raw, ["train-1-0-0", "train-1-0-1", "train-2-0-0"], ["dev-1-0-0"], ["test1-1-0-0"])


def vg_coco_tree(raw: Path) -> None:
    """GQA (vg:1), VG-QA (vg:2) and Visual7W (vg:3) training images whose VG coco_id is a
    COCO-retrieval test image. vg:4's coco_id and vg:99 (no task uses it) lead nowhere."""
    T.vgqa(
        raw,
        train=[(1, 2), (2, 2), (3, 8)],
        val_image=9,
        images=[
            {"image_id": 1, "coco_id": 501},
            {"image_id": 2, "coco_id": 502},
            {"image_id": 3, "coco_id": 503},
            {"image_id": 4, "coco_id": 777},
            {"image_id": 99, "coco_id": 999},
        ],
    )
    T.gqa(
        raw,
        train=[("10", "1"), ("11", "1"), ("12", "4"), ("13", "5")],
        val=[("20", "6")],
        testdev=[("30", "7")],
    )
    T.visual7w(raw, [(41, 3, "train"), (42, 10, "train"), (43, 11, "val"), (44, 12, "test")])
    T.coco_retrieval(raw, train=[400], val=[450], test=[501, 502, 503, 504])


def coco_flickr_tree(raw: Path) -> None:
    """COCO training images whose flickr_url names a Flickr30k test photo, one per source
    of COCO image records: the optional captions file (coco:7), RefCOCO's instances.json
    (coco:30) and GuessWhat's game records (coco:40)."""
    T.coco_retrieval(raw, train=[7, 8], val=[9], test=[6], flickr_urls={7: 7007, 8: None})
    T.refcoco(
        raw,
        [
            (600, 30, "train"),
            (604, 34, "train"),
            (601, 31, "val"),
            (602, 32, "testA"),
            (603, 33, "testB"),
        ],
        photos={30: 3003},
    )
    T.guesswhat(raw, [(1, 40, 4004), (4, 43, None)], [(2, 41, None)], [(3, 42, None)])
    T.flickr30k(raw, train=[1001], val=[1002], test=[7007, 3003, 4004])


def vg_flickr_tree(raw: Path) -> None:
    """A GQA training image (vg:1) whose VG flickr_id is a Flickr30k test photo; vgqa is NOT
    built, its image_data.json is only the shared link source."""
    T.vg_image_data(raw, [{"image_id": 1, "flickr_id": 5005}, {"image_id": 2, "flickr_id": 6006}])
    T.gqa(raw, [("10", "1"), ("11", "2"), ("12", "3")], [("20", "4")], [("30", "n5")])
    T.flickr30k(raw, train=[1001], val=[1002], test=[5005])


def vg_bridge_tree(raw: Path) -> None:
    """No task has VG images, yet one VG record says coco:10 (VQA train) is Flickr photo
    5005 (Flickr30k test): the chain coco -> vg -> flickr is the only way to the leak."""
    T.vg_image_data(raw, [{"image_id": 77, "coco_id": 10, "flickr_id": 5005}])
    T.vqa2(raw, train=[(1, 10), (2, 11)], val=[(101, 20)])
    T.flickr30k(raw, train=[1001], val=[1002], test=[5005])


def flickr_same_key_tree(raw: Path) -> None:
    """SNLI-VE and Flickr30k split the same photos differently: an SNLI-VE training photo
    (8008) is a Flickr30k test photo, and a Flickr30k training photo (8200) an SNLI-VE test
    photo."""
    T.snli_ve(raw, train=[(0, 8008), (1, 8008), (2, 8009)], dev=[(3, 8100)], test=[(4, 8200)])
    T.flickr30k(raw, train=[8200, 8300], val=[8400], test=[8008])


def within_task_tree(raw: Path) -> None:
    """Inside one task: val2014 question 150 stays in trainval (3,000 larger val ids take
    minval) but is on a minval image; VG-QA train QA 1 is on the val QAs' image."""
    T.vqa2(raw, train=[(1, 21)], val=[(150, 900), (151, 22)], minval_padding=900)
    T.vgqa(raw, train=[(1, 9), (2, 3)], val_image=9, images=[])


def mixed_group_tree(raw: Path) -> None:
    """One group holds vg:2 -vg_coco_id- coco:7 -coco_flickr_url- flickr:7007 (a test
    photo). coco:7's leak goes through the COCO record only; vg:2's through both links."""
    T.vg_image_data(raw, [{"image_id": 2, "coco_id": 7}])
    T.gqa(raw, [("10", "2"), ("11", "3")], [("20", "4")], [("30", "n5")])
    T.coco_retrieval(raw, train=[7, 8], val=[9], test=[6], flickr_urls={7: 7007})
    T.flickr30k(raw, train=[1001], val=[1002], test=[7007])


SCENARIOS: dict[str, Scenario] = {
    "same_key": Scenario(
        same_key_tree,
        ("vqa2", "refcoco", "nlvr2"),
        sizes={
            "vqa2": {"trainval": 2, "minval": 1, "mteval": 2},
            "refcoco": {"train": 1, "val": 1, "testA": 1, "testB": 1},
            "nlvr2": {"train": 3, "dev": 1, "test1": 1},
        },
        mteval={"vqa2": [1, 2]},
        pairs=[("vqa2", "trainval", "refcoco", 1, 2, [SAME])],
        joined={COCO_FLICKR: 1},
        # coco 10-15, 20 and 8 NLVR2 images; flickr:1010 is no image of the file.
        groups=15,
        link_sources={"refcoco/instances.json"},
    ),
    "vg_coco_id": Scenario(
        vg_coco_tree,
        ("gqa", "vgqa", "coco_retrieval", "visual7w"),
        sizes={
            "gqa": {"trainval": 2, "minval": 1, "testdev": 1, "mteval": 2},
            "vgqa": {"train": 1, "val": 5000, "mteval": 2},
            "coco_retrieval": {"train": 2, "val": 2, "test": 8},
            "visual7w": {"train": 1, "val": 1, "test": 1, "mteval": 1},
        },
        mteval={"gqa": ["10", "11"], "vgqa": [1, 2], "visual7w": [41]},
        pairs=[
            ("gqa", "trainval", "coco_retrieval", 1, 2, [VG_COCO]),
            ("vgqa", "train", "coco_retrieval", 1, 2, [VG_COCO]),
            ("visual7w", "train", "coco_retrieval", 1, 1, [VG_COCO]),
        ],
        joined={VG_COCO: 5},
        # 6 COCO + 12 VG images; vg:1-3 joined their COCO test images.
        groups=15,
        link_sources={"vgqa/image_data.json"},
    ),
    "coco_flickr_url": Scenario(
        coco_flickr_tree,
        ("coco_retrieval", "flickr30k_retrieval", "refcoco", "guesswhat"),
        sizes={
            "coco_retrieval": {"train": 2, "val": 2, "test": 2, "mteval": 2},
            "flickr30k_retrieval": {"train": 2, "val": 2, "test": 6},
            "refcoco": {"train": 1, "val": 1, "testA": 1, "testB": 1, "mteval": 1},
            "guesswhat": {"train": 1, "valid": 1, "test": 1, "mteval": 1},
        },
        mteval={"coco_retrieval": T.sentids(7), "refcoco": [600], "guesswhat": [1]},
        pairs=[
            ("coco_retrieval", "train", "flickr30k_retrieval", 1, 2, [COCO_FLICKR]),
            ("refcoco", "train", "flickr30k_retrieval", 1, 1, [COCO_FLICKR]),
            ("guesswhat", "train", "flickr30k_retrieval", 1, 1, [COCO_FLICKR]),
        ],
        joined={COCO_FLICKR: 3},
        groups=18 - 3,
        link_sources={
            "coco_retrieval/captions_train2014.json",
            "refcoco/instances.json",
            "guesswhat/guesswhat.train.jsonl.gz",
        },
    ),
    "vg_flickr_id": Scenario(
        vg_flickr_tree,
        ("gqa", "flickr30k_retrieval"),
        sizes={
            "gqa": {"trainval": 2, "minval": 1, "testdev": 1, "mteval": 1},
            "flickr30k_retrieval": {"train": 2, "val": 2, "test": 2},
        },
        mteval={"gqa": ["10"]},
        pairs=[("gqa", "trainval", "flickr30k_retrieval", 1, 1, [VG_FLICKR])],
        joined={VG_FLICKR: 2},
        groups=8 - 1,  # vg:1-4, gqa:n5, flickr 1001, 1002, 5005
        link_sources={"vgqa/image_data.json"},
    ),
    "vg_bridge": Scenario(
        vg_bridge_tree,
        ("vqa2", "flickr30k_retrieval"),
        sizes={
            "vqa2": {"trainval": 1, "minval": 1, "mteval": 1},
            "flickr30k_retrieval": {"train": 2, "val": 2, "test": 2},
        },
        mteval={"vqa2": [1]},
        pairs=[("vqa2", "trainval", "flickr30k_retrieval", 1, 1, [VG_COCO, VG_FLICKR])],
        joined={VG_COCO: 1, VG_FLICKR: 1},
        groups=6 - 1,  # coco 10, 11, 20, flickr 1001, 1002, 5005 (vg:77 is no image)
        link_sources={"vgqa/image_data.json"},
    ),
    "flickr_same_key": Scenario(
        flickr_same_key_tree,
        ("flickr30k_retrieval", "snli_ve"),
        sizes={
            "flickr30k_retrieval": {"train": 2, "val": 2, "test": 2, "mteval": 2},
            "snli_ve": {"train": 1, "dev": 1, "test": 1, "mteval": 2},
        },
        mteval={
            "flickr30k_retrieval": T.sentids(8200),
            "snli_ve": [T.snli_pair_id(0, 8008), T.snli_pair_id(1, 8008)],
        },
        pairs=[
            ("flickr30k_retrieval", "train", "snli_ve", 1, 2, [SAME]),
            ("snli_ve", "train", "flickr30k_retrieval", 1, 2, [SAME]),
        ],
        joined={},
        groups=6,  # flickr 8008, 8009, 8100, 8200 (SNLI-VE), 8300, 8400 (Flickr30k)
    ),
    "within_task": Scenario(
        within_task_tree,
        ("vqa2", "vgqa"),
        sizes={
            "vqa2": {"trainval": 2, "minval": 3000, "mteval": 1},
            "vgqa": {"train": 1, "val": 5000, "mteval": 1},
        },
        mteval={"vqa2": [150], "vgqa": [1]},
        pairs=[
            ("vqa2", "trainval", "vqa2", 1, 1, [SAME]),
            ("vgqa", "train", "vgqa", 1, 1, [SAME]),
        ],
        joined={},
        groups=5,  # coco 21, 22, 900, vg 3, 9
    ),
    "mixed_group": Scenario(
        mixed_group_tree,
        ("gqa", "coco_retrieval", "flickr30k_retrieval"),
        sizes={
            "gqa": {"trainval": 1, "minval": 1, "testdev": 1, "mteval": 1},
            "coco_retrieval": {"train": 2, "val": 2, "test": 2, "mteval": 2},
            "flickr30k_retrieval": {"train": 2, "val": 2, "test": 2},
        },
        mteval={"gqa": ["10"], "coco_retrieval": T.sentids(7)},
        pairs=[
            ("gqa", "trainval", "flickr30k_retrieval", 1, 1, [COCO_FLICKR, VG_COCO]),
            ("coco_retrieval", "train", "flickr30k_retrieval", 1, 2, [COCO_FLICKR]),
        ],
        joined={COCO_FLICKR: 1, VG_COCO: 1},
        groups=11 - 2,  # vg 2, 3, 4, gqa:n5, coco 6-9, flickr 1001, 1002, 7007
        link_sources={"vgqa/image_data.json", "coco_retrieval/captions_train2014.json"},
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build a scenario once per (scenario, clean) for the whole module."""
    cache: dict[tuple[str, bool], Path] = {}

    def get(name: str, clean: bool = True) -> Path:
        if (name, clean) not in cache:
            root = tmp_path_factory.mktemp(f"{name}_{clean}")
            raw = root / "raw"
            SCENARIOS[name].write(raw)
            out = root / "out.h5"
            build(raw, out, *SCENARIOS[name].tasks, clean=clean)
            cache[(name, clean)] = out
        return cache[(name, clean)]

    return get


# ---------------------------------------------------------------------------------------
# Builds: exact splits, mteval, groups and report per scenario; --no-clean.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_cleaning_moves_exactly_the_leaking_examples(name: str, built: Callable) -> None:
    sc = SCENARIOS[name]
    out = built(name)
    with UnifiedFile(out) as uf:
        assert uf.build_options["clean"] is True
        assert {t: sizes_of(uf, t) for t in uf.tasks} == sc.sizes
        for task in uf.tasks:
            if "mteval" in uf.splits(task):
                assert uf.split(task, "mteval").role == "extra"
                assert ids_of(uf, task, "mteval") == sc.mteval[task]
            assert uf.split(task, train_split(task)).role == "train"
        assert {t for t in uf.tasks if "mteval" in uf.splits(t)} == set(sc.mteval)
        group = uf.h5["images"]["group"][:]
        assert group.dtype == np.int32 and len(group) == len(uf.image_keys)
        # A group is named by its smallest /images row.
        assert all(group[i] <= i and group[group[i]] == group[i] for i in range(len(group)))
        links = uf.links()
        assert set(links["source"]) == sc.link_sources
    report = report_of(out)
    assert report["cleaned"] is True
    assert pairs_of(report) == sc.pairs
    assert report["removed"] == {
        task: {train_split(task): len(ids)} for task, ids in sc.mteval.items()
    }
    assert report["leaking_training_examples"] == sum(len(v) for v in sc.mteval.values())
    assert report["keys_joined_by_link_type"] == sc.joined
    assert report["identity_groups"] == sc.groups == len(np.unique(group))
    emptied = [f"{t}/{train_split(t)}" for t, s in sc.sizes.items() if s[train_split(t)] == 0]
    assert report["emptied_training_splits"] == emptied
    # The same pairs as columns.
    with h5py.File(out, "r") as f:
        g = f["leakage"]
        columns = list(
            zip(
                g["train_task"].asstr()[:].tolist(),
                g["train_split"].asstr()[:].tolist(),
                g["eval_task"].asstr()[:].tolist(),
                g["images"][:].tolist(),
                g["examples"][:].tolist(),
                [s.split(",") if s else [] for s in g["link_types"].asstr()[:].tolist()],
                strict=True,
            )
        )
    assert columns == [tuple(p) for p in sc.pairs]
    # `unify leaks` agrees with the build, and finds nothing left.
    code, text, _ = run("leaks", out, "--json")
    assert code == 0, text
    check = json.loads(text)
    assert check["pairs"] == [] and check["leaking_training_examples"] == 0
    assert check["identity_groups"] == sc.groups
    assert check["keys_joined_by_link_type"] == sc.joined
    assert check["cleaned_at_build"] is True


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_clean_keeps_raw_splits_reports_the_same_leaks_and_leaks_exits_3(
    name: str, built: Callable
) -> None:
    sc = SCENARIOS[name]
    out = built(name, clean=False)
    with UnifiedFile(out) as uf:
        assert uf.build_options["clean"] is False
        for task in uf.tasks:
            raw_sizes = {s: n for s, n in sc.sizes[task].items() if s != "mteval"}
            raw_sizes[train_split(task)] += len(sc.mteval.get(task, []))
            assert sizes_of(uf, task) == raw_sizes
    report = report_of(out)
    assert report["cleaned"] is False and report["removed"] == {}
    assert report["emptied_training_splits"] == []
    assert pairs_of(report) == sc.pairs  # what cleaning would have removed
    code, text, _ = run("leaks", out, "--json")
    assert code == 3
    check = json.loads(text)
    assert pairs_of(check) == sc.pairs
    assert check["cleaned_at_build"] is False
    assert check["leaking_training_examples"] == sum(len(v) for v in sc.mteval.values())


def test_groups_join_exactly_the_linked_images(built: Callable) -> None:
    out = built("vg_coco_id")
    with UnifiedFile(out) as uf:
        group = dict(zip(uf.image_keys.tolist(), uf.h5["images"]["group"][:].tolist(), strict=True))
        for vg, coco in (("vg:1", "coco:501"), ("vg:2", "coco:502"), ("vg:3", "coco:503")):
            # "coco:" sorts before "vg:": the COCO row names the group.
            assert group[vg] == group[coco] == uf.image_index(coco)
        joined = {"vg:1", "vg:2", "vg:3", "coco:501", "coco:502", "coco:503"}
        others = [k for k in group if k not in joined]
        assert len(others) == 12
        assert all(group[k] == uf.image_index(k) for k in others)  # alone in their group
        links = uf.links()
        assert sorted(zip(links["key_a"], links["key_b"], strict=True)) == [
            ("vg:1", "coco:501"),
            ("vg:2", "coco:502"),
            ("vg:3", "coco:503"),
            ("vg:4", "coco:777"),
            ("vg:99", "coco:999"),
        ]
    out = built("vg_bridge")
    with UnifiedFile(out) as uf:
        g = uf.h5["images"]["group"][:]
        assert g[uf.image_index("flickr:5005")] == uf.image_index("coco:10")


@pytest.mark.parametrize(
    ("name", "drop_link"),
    [
        ("vg_coco_id", "coco_id"),
        ("vg_flickr_id", "flickr_id"),
        ("vg_bridge", "flickr_id"),
        ("coco_flickr_url", "coco files"),
    ],
)
def test_without_its_link_the_leak_is_not_found(name: str, drop_link: str, tmp_path: Path) -> None:
    """The control of each link scenario: remove the bridge and nothing leaks that way."""
    raw = tmp_path / "raw"
    SCENARIOS[name].write(raw)
    if drop_link == "coco files":
        (raw / "coco_retrieval" / "captions_train2014.json").unlink()
        # The other two sources lose the flickr_url of their leaking image.
        T.refcoco(
            raw,
            [
                (600, 30, "train"),
                (604, 34, "train"),
                (601, 31, "val"),
                (602, 32, "testA"),
                (603, 33, "testB"),
            ],
        )
        T.guesswhat(raw, [(1, 40, None), (4, 43, None)], [(2, 41, None)], [(3, 42, None)])
    else:
        path = raw / "vgqa" / "image_data.json"
        records = json.loads(path.read_text())
        for rec in records:
            rec[drop_link] = None
        path.write_text(json.dumps(records))
    out = tmp_path / "out.h5"
    build(raw, out, *SCENARIOS[name].tasks, clean=True)
    report = report_of(out)
    assert report["pairs"] == [] and report["removed"] == {}
    assert run("leaks", out)[0] == 0


def test_retrieval_candidates_follow_their_images(built: Callable) -> None:
    """ "candidates" are the split's images: a removed image leaves train's for mteval's."""
    with UnifiedFile(built("coco_flickr_url")) as uf:
        keys = uf.image_keys
        train = uf.split("coco_retrieval", "train")
        mteval = uf.split("coco_retrieval", "mteval")
        assert keys[train.column("candidates")].tolist() == ["coco:8"]
        assert keys[mteval.column("candidates")].tolist() == ["coco:7"]
        assert mteval.arrays == ["candidates"] and mteval.fields == train.fields
        assert [e["image"] for e in mteval] == ["coco:7", "coco:7"]
    with UnifiedFile(built("flickr_same_key")) as uf:
        keys = uf.image_keys
        assert keys[uf.split("flickr30k_retrieval", "train").column("candidates")].tolist() == [
            "flickr:8300"
        ]
        assert keys[uf.split("flickr30k_retrieval", "mteval").column("candidates")].tolist() == [
            "flickr:8200"
        ]


def test_mteval_examples_keep_every_field(built: Callable) -> None:
    out = built("same_key")
    with UnifiedFile(out) as uf:
        moved = list(uf.split("vqa2", "mteval"))
        assert [e["image"] for e in moved] == ["coco:10", "coco:10"]
        assert [e["question"] for e in moved] == ["What is in picture 10?"] * 2
        assert moved[0]["answers"] == ["cat"] * 10
        assert set(moved[0]) == set(uf.split("vqa2", "trainval").example(0))
    with UnifiedFile(built("same_key", clean=False)) as raw_uf:
        before = {e["id"]: e for e in raw_uf.split("vqa2", "trainval")}
    for e in moved:
        assert e["question"] == before[e["id"]]["question"]


def test_nlvr2_is_untouched_when_other_tasks_leak(built: Callable) -> None:
    with UnifiedFile(built("same_key")) as uf:
        assert uf.splits("nlvr2") == ["train", "dev", "test1"]
        assert ids_of(uf, "nlvr2", "train") == ["train-1-0-0", "train-1-0-1", "train-2-0-0"]
    assert all(p[0] != "nlvr2" for p in pairs_of(report_of(built("same_key"))))


def test_leaks_recomputes_from_the_file_not_from_the_build(built: Callable, tmp_path: Path) -> None:
    """A clean file whose NLVR2 dev pair is edited to reuse a training pair's image: the
    file's own report still says clean, `unify leaks` finds the within-NLVR2 leak.

    The edit must restamp the column's checksum: an edit that does not is damage."""
    path = tmp_path / "edited.h5"
    shutil.copyfile(built("same_key"), path)
    with h5py.File(path, "r+") as f:
        keys = f["images"]["key"].asstr()[:].tolist()
        image = f["tasks"]["nlvr2"]["dev"]["image"]
        image[0] = [keys.index("nlvr2:dev-1-0-img0"), keys.index("nlvr2:train-1-0-img1")]
    code, _, err = run("leaks", path)
    assert code == 1 and "/tasks/nlvr2/dev/image: content differs from its checksum" in err
    with h5py.File(path, "r+") as f:
        restamp(f["tasks"]["nlvr2"]["dev"]["image"])
    assert all(p["train_task"] != "nlvr2" for p in report_of(path)["pairs"])
    code, text, _ = run("leaks", path, "--json")
    assert code == 3
    assert pairs_of(json.loads(text)) == [("nlvr2", "train", "nlvr2", 1, 2, [SAME])]
    code, text, _ = run("leaks", path)
    assert code == 3
    assert f"{'nlvr2/train':<28}{'nlvr2':<26}{1:>8}{2:>10}  same_key" in text.splitlines()
    assert "2 training examples touch evaluation images" in text


def test_leaks_table_on_a_no_clean_build(built: Callable) -> None:
    out = built("vg_coco_id", clean=False)
    code, text, _ = run("leaks", out)
    assert code == 3
    lines = text.splitlines()
    # Evaluation images: coco 450, 501-504, vg 6, 7 (gqa), 9 (vgqa), 11, 12 (visual7w).
    assert lines[0] == f"{out}: 15 identity groups; evaluation images 10; links joined vg_coco_id 5"
    assert f"{'gqa/trainval':<28}{'coco_retrieval':<26}{1:>8}{2:>10}  vg_coco_id" in lines
    assert f"{'visual7w/train':<28}{'coco_retrieval':<26}{1:>8}{1:>10}  vg_coco_id" in lines
    assert lines[-1] == "5 training examples touch evaluation images"
    code, text, _ = run("leaks", built("vg_coco_id"))
    assert code == 0
    assert text.splitlines()[-1] == "no training example touches an evaluation image"


# ---------------------------------------------------------------------------------------
# Emptied training splits, the policy, the CLI build options.
# ---------------------------------------------------------------------------------------


def emptied_tree(raw: Path) -> None:
    """Every VQA training question is on a RefCOCO testA image."""
    T.vqa2(raw, train=[(1, 10), (2, 10)], val=[(101, 20)])
    T.refcoco(raw, [(500, 13, "train"), (502, 10, "testA")])


def test_a_training_split_emptied_by_cleaning_is_kept_and_reported(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    emptied_tree(raw)
    out = tmp_path / "out.h5"
    result = build(raw, out, "vqa2", "refcoco", clean=True)
    assert result.report["leakage"]["emptied_training_splits"] == ["vqa2/trainval"]
    with UnifiedFile(out) as uf:
        view = uf.split("vqa2", "trainval")
        assert view.role == "train" and view.num_examples == 0 and list(view) == []
        assert ids_of(uf, "vqa2", "mteval") == [1, 2]
    assert report_of(out)["emptied_training_splits"] == ["vqa2/trainval"]
    # The command line says so on stderr, even with --quiet.
    code, _, err = run("build", "vqa2", "refcoco", "--raw", raw, "--out", tmp_path / "c.h5", "-q")
    assert code == 0, err
    assert (
        "warning: leakage cleaning removed every example of vqa2/trainval "
        "(see `unify leaks` and the file's /leakage report)"
    ) in err
    # A training split that was empty before cleaning is not "emptied by cleaning".
    raw2 = tmp_path / "raw2"
    write_vgqa(
        raw2 / "vgqa",
        [{"qa_id": 1, "image_id": 1, "question": "q?", "answer": "a"}],
        [{"image_id": 1}],
    )
    result = build(raw2, tmp_path / "v.h5", "vgqa", clean=True)
    assert result.report["vgqa"]["counts"] == {"train": 0, "val": 1}
    assert result.report["leakage"]["emptied_training_splits"] == []
    code, _, err = run("build", "vgqa", "--raw", raw2, "--out", tmp_path / "v2.h5", "-q")
    assert code == 0 and "warning" not in err


@pytest.mark.parametrize(
    ("policy", "trainval", "pairs"),
    [
        (LeakagePolicy(), 2, [("vqa2", "trainval", "refcoco", 1, 2, [SAME])]),
        (LeakagePolicy(keep_train=frozenset({"vqa2"})), 4, []),
        (LeakagePolicy(ignore_eval=frozenset({"refcoco"})), 4, []),
        (
            LeakagePolicy(keep_train=frozenset({"refcoco"}), ignore_eval=frozenset({"vqa2"})),
            2,
            [("vqa2", "trainval", "refcoco", 1, 2, [SAME])],
        ),
    ],
)
def test_policy_is_applied_and_recorded(
    policy: LeakagePolicy, trainval: int, pairs: list[Pair], tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    same_key_tree(raw)
    out = tmp_path / "out.h5"
    run_build(raw, out, BuildOptions(tasks=("vqa2", "refcoco"), policy=policy))
    with UnifiedFile(out) as uf:
        assert uf.split("vqa2", "trainval").num_examples == trainval
        assert ("mteval" in uf.splits("vqa2")) == (trainval == 2)
        assert uf.build_options["policy"] == policy.as_record()
    report = report_of(out)
    assert report["policy"] == policy.as_record()
    assert report["policy"]["keep_train"] == sorted(policy.keep_train)
    assert pairs_of(report) == pairs
    # `unify leaks` ignores the build's policy: a kept leak is still a leak.
    assert run("leaks", out)[0] == (0 if trainval == 2 else 3)


def test_cli_build_policy_options(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    same_key_tree(raw)
    out = tmp_path / "k.h5"
    code, _, err = run(
        "build", "vqa2", "refcoco", "--raw", raw, "--out", out, "-q", "--keep-train", "vqa2"
    )
    assert code == 0, err
    with UnifiedFile(out) as uf:
        assert uf.build_options["policy"]["keep_train"] == ["vqa2"]
        assert uf.split("vqa2", "trainval").num_examples == 4
    assert run("leaks", out)[0] == 3
    out = tmp_path / "i.h5"
    args = ["build", "vqa2", "refcoco", "--raw", raw, "--out", out, "-q"]
    code, _, err = run(*args, "--ignore-eval", "refcoco", "--ignore-eval", "vqa2")
    assert code == 0, err
    with UnifiedFile(out) as uf:
        assert uf.build_options["policy"]["ignore_eval"] == ["refcoco", "vqa2"]
        assert uf.split("vqa2", "trainval").num_examples == 4
    out = tmp_path / "n.h5"
    code, _, err = run("build", "vqa2", "refcoco", "--raw", raw, "--out", out, "--no-clean", "-q")
    assert code == 0, err
    with UnifiedFile(out) as uf:
        assert uf.build_options["clean"] is False
        assert uf.split("vqa2", "trainval").num_examples == 4
    assert run("leaks", out)[0] == 3
    code, _, err = run(*args[:-3], "--out", tmp_path / "x.h5", "--keep-train", "nosuch")
    assert code == 2 and "nosuch" in err
    assert not (tmp_path / "x.h5").exists()


# ---------------------------------------------------------------------------------------
# unify leaks --against
# ---------------------------------------------------------------------------------------


def test_against_npy_and_text_id_lists(built: Callable, tmp_path: Path) -> None:
    out = built("same_key")
    npy = tmp_path / "coco_test_ids.npy"
    np.save(npy, np.array([11, 999], dtype=np.int64))  # 999: no image of the file
    code, text, _ = run("leaks", out, "--against", npy, "--universe", "coco", "--json")
    assert code == 3
    assert pairs_of(json.loads(text)) == [
        ("vqa2", "trainval", "against:coco_test_ids.npy", 1, 1, [SAME])
    ]
    txt = tmp_path / "ids.txt"
    txt.write_text("12\n\n  13 \n")
    code, text, _ = run("leaks", out, "--against", txt, "--universe", "coco", "--json")
    assert code == 3
    assert pairs_of(json.loads(text)) == [
        ("vqa2", "trainval", "against:ids.txt", 1, 1, [SAME]),
        ("refcoco", "train", "against:ids.txt", 1, 1, [SAME]),
    ]
    code, text, _ = run("leaks", out, "--against", npy, "--against", txt, "--universe", "coco")
    assert code == 3 and text.splitlines()[-1] == "3 training examples touch evaluation images"
    clean = tmp_path / "clean.txt"
    clean.write_text("999\n20\n")  # 20 is vqa2's own minval image: already cleaned
    assert run("leaks", out, "--against", clean, "--universe", "coco")[0] == 0


def test_against_ids_are_joined_through_links(built: Callable, tmp_path: Path) -> None:
    """A Flickr id that only a VG record names (6006) still reaches GQA's vg:2."""
    out = built("vg_flickr_id")
    ids = tmp_path / "flickr_test_ids.txt"
    ids.write_text("6006\n")
    code, text, _ = run("leaks", out, "--against", ids, "--universe", "flickr", "--json")
    assert code == 3
    assert pairs_of(json.loads(text)) == [
        ("gqa", "trainval", "against:flickr_test_ids.txt", 1, 1, [VG_FLICKR])
    ]
    np.save(tmp_path / "genome_test_ids.npy", np.array([3], dtype=np.int32))
    code, text, _ = run(
        "leaks", out, "--against", tmp_path / "genome_test_ids.npy", "--universe", "vg", "--json"
    )
    assert code == 3
    assert pairs_of(json.loads(text)) == [
        ("gqa", "trainval", "against:genome_test_ids.npy", 1, 1, [SAME])
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ids.txt", b"12\nabc\n", "line 2: 'abc' is not a bare integer image id"),
        ("ids.txt", b"1.5\n", "line 1: '1.5' is not a bare integer image id"),
        ("ids.txt", b"-4\n", "line 1: '-4' is not a bare integer image id"),
        ("ids.txt", "\u00b2\n".encode(), "is not a bare integer image id"),
        ("ids.txt", b"\n\n", "no image ids in the file"),
        ("ids.txt", b"\x93NUMPY\x01\x00\xff\xfe", "not a text file of image ids"),
        ("ids.npy", b"not an array at all", "not a plain numeric .npy array"),
        ("ids.npy", np.array([1.5]), "expected integer ids, got dtype float64"),
        ("ids.npy", np.array([3, -1]), "negative image id -1"),
        ("ids.npy", np.array(["12", "x"]), "'x' is not a bare integer image id"),
        ("ids.npy", np.array([], dtype=np.int64), "no image ids in the file"),
    ],
)
def test_bad_id_lists_are_one_clear_error(
    name: str, content: bytes | np.ndarray, message: str, built: Callable, tmp_path: Path
) -> None:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_bytes(content)
    with pytest.raises(MalformedFileError, match=re.escape(f"{path}: malformed file: ")) as err:
        read_id_list(path)
    assert message in str(err.value)
    code, out, err_text = run("leaks", built("same_key"), "--against", path, "--universe", "coco")
    assert code == 1 and out == ""
    assert err_text.startswith(f"error: {path}: malformed file") and message in err_text
    assert "Traceback" not in err_text and len(err_text.strip().splitlines()) == 1


def test_id_list_usage_and_missing_file(built: Callable, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    code, _, err = run("leaks", built("same_key"), "--against", ids)
    assert code == 2 and "--against needs --universe coco|vg|flickr" in err
    code, _, err = run("leaks", built("same_key"), "--against", ids, "--universe", "nlvr2")
    assert code == 2
    missing = tmp_path / "nope.npy"
    code, _, err = run("leaks", built("same_key"), "--against", missing, "--universe", "coco")
    assert code == 1 and f"error: id list {missing} does not exist" in err
    with pytest.raises(DataError, match="does not exist"):
        read_id_list(missing)


def test_read_id_list_accepts_the_usual_encodings(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([[3, 1], [2, 10]], dtype=np.uint32))
    assert read_id_list(tmp_path / "a.npy") == ["3", "1", "2", "10"]
    np.save(tmp_path / "b.npy", np.array([7.0, 8.0]))
    assert read_id_list(tmp_path / "b.npy") == ["7", "8"]
    np.save(tmp_path / "c.npy", np.array(["0012", "5"]))
    assert read_id_list(tmp_path / "c.npy") == ["12", "5"]
    with (tmp_path / "D.NPY").open("wb") as f:  # np.save would append ".npy"
        np.save(f, np.array([4]))
    assert read_id_list(tmp_path / "D.NPY") == ["4"]
    (tmp_path / "e.txt").write_text("\ufeff 0042\r\n7\n")  # BOM, CRLF, leading zeros
    assert read_id_list(tmp_path / "e.txt") == ["42", "7"]
    np.savez(tmp_path / "f.npz", ids=np.array([1]))
    (tmp_path / "f.npz").rename(tmp_path / "f.npy")
    with pytest.raises(MalformedFileError, match=r"an \.npz archive, not one \.npy array"):
        read_id_list(tmp_path / "f.npy")


# ---------------------------------------------------------------------------------------
# Units: identity_groups, path attribution, analyse, clean_tables.
# ---------------------------------------------------------------------------------------


def test_identity_groups_chain_across_link_types() -> None:
    keys = ["coco:1", "coco:2", "flickr:9", "nlvr2:x-img0", "vg:5"]
    links = [
        (VG_COCO, "vg:5", "coco:1"),
        (VG_FLICKR, "vg:5", "flickr:9"),
        (COCO_FLICKR, "coco:1", "flickr:9"),  # closes a cycle: joins nothing
        (COCO_FLICKR, "coco:2", "flickr:9"),
        ("vg_coco_id", "vg:6", "coco:7"),  # endpoints that are no images: new nodes
    ]
    g = identity_groups(keys, links)
    assert g.keys == [*keys, "vg:6", "coco:7"]
    assert g.group.tolist() == [0, 0, 0, 3, 0, 5, 5]
    assert g.joined_by_type == {COCO_FLICKR: 1, VG_COCO: 2, VG_FLICKR: 1}
    assert g.link_types == {0: {COCO_FLICKR, VG_COCO, VG_FLICKR}, 5: {VG_COCO}}
    assert identity_groups(keys, [("t", "coco:1", "coco:1")]).joined_by_type == {"t": 0}


def test_group_id_is_the_smallest_index_whatever_the_link_order() -> None:
    keys = ["a", "b", "c", "d", "e"]
    links = [("t", "e", "d"), ("t", "d", "c"), ("u", "b", "e")]
    for order in (links, links[::-1], [links[2], links[0], links[1]]):
        g = identity_groups(keys, order)
        assert g.group.tolist() == [0, 1, 1, 1, 1]
        assert sum(g.joined_by_type.values()) == 3


@pytest.mark.parametrize("seed", range(8))
def test_identity_groups_match_a_plain_graph_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    keys = [f"k:{i:02d}" for i in range(n)]
    links = [
        (f"t{rng.integers(3)}", keys[a], keys[b])
        for a, b in rng.integers(0, n, size=(int(rng.integers(5, 45)), 2))
    ]
    g = identity_groups(keys, links)
    adjacency: dict[int, set[int]] = {i: set() for i in range(n)}
    for _, a, b in links:
        adjacency[int(a[2:])].add(int(b[2:]))
        adjacency[int(b[2:])].add(int(a[2:]))
    expected = [-1] * n
    for start in range(n):
        if expected[start] >= 0:
            continue
        stack, component = [start], {start}
        while stack:
            for v in adjacency[stack.pop()] - component:
                component.add(v)
                stack.append(v)
        for v in component:
            expected[v] = min(component)
    assert g.group.tolist() == expected
    assert sum(g.joined_by_type.values()) == n - len(set(expected))
    assert set(g.joined_by_type) == {t for t, _, _ in links}


def test_path_types_name_only_the_links_on_the_shortest_paths() -> None:
    keys = ["a", "b", "c", "d", "e", "f"]
    g = identity_groups(
        keys,
        [("t1", "a", "b"), ("t2", "b", "d"), ("t3", "a", "c"), ("t4", "c", "d"), ("t5", "d", "e")],
    )
    assert g.path_types(0, {3}) == {"t1", "t2", "t3", "t4"}  # two shortest paths
    assert g.path_types(0, {4}) == {"t1", "t2", "t3", "t4", "t5"}
    assert g.path_types(1, {3, 4}) == {"t2"}  # the nearest target only
    assert g.path_types(3, {3}) == {SAME}
    assert g.path_types(5, {3}) == set()  # not in the group
    direct = identity_groups(keys, [("t1", "a", "b"), ("t2", "b", "d"), ("t9", "a", "d")])
    assert direct.path_types(0, {3}) == {"t9"}  # a longer path plays no part


def _split(task: str, split: str, role: str, images: list) -> SplitImages:
    return SplitImages(task, split, role, np.asarray(images, dtype=np.int64))


def test_analyse_pairs_images_and_examples() -> None:
    keys = ["coco:1", "coco:2", "coco:3", "flickr:4", "n:a", "n:b", "n:c", "n:d"]
    groups = identity_groups(keys, [(COCO_FLICKR, "coco:3", "flickr:4")])
    splits = [
        _split("a", "train", "train", [0, 0, 1, 2, 2, 2]),
        _split("b", "test", "eval", [0, 3]),
        _split("c", "val", "eval", [2]),
        _split("n", "train", "train", [[4, 5], [6, 7], [5, 5]]),
        _split("n", "dev", "eval", [[5, 6]]),  # each training pair touches it
    ]
    result = analyse(splits, groups)
    assert result.leaking[("a", "train")].tolist() == [True, True, False, True, True, True]
    assert result.leaking[("n", "train")].tolist() == [True, True, True]
    assert [
        (p["train_task"], p["eval_task"], p["images"], p["examples"], p["link_types"])
        for p in result.pairs
    ] == [
        ("a", "b", 2, 5, [COCO_FLICKR, SAME]),
        ("a", "c", 1, 3, [SAME]),
        ("n", "n", 2, 3, [SAME]),  # only the leaking image of each pair counts
    ]
    assert result.eval_images == 5 and result.eval_groups == 4
    assert result.total_leaking == 8
    kept = analyse(splits, groups, LeakagePolicy(keep_train=frozenset({"a"})))
    assert ("a", "train") not in kept.leaking and kept.total_leaking == 3
    ignored = analyse(splits, groups, LeakagePolicy(ignore_eval=frozenset({"b", "n"})))
    assert ignored.leaking[("a", "train")].tolist() == [False] * 3 + [True] * 3
    assert ignored.leaking[("n", "train")].tolist() == [False] * 3


def test_analyse_takes_any_number_of_evaluation_sets() -> None:
    """More evaluation sets than bits in an int64 (tasks plus many --against lists)."""
    keys = [f"coco:{i}" for i in range(80)]
    groups = identity_groups(keys, [])
    splits = [_split(f"e{i:02d}", "ids", "eval", [i]) for i in range(70)]
    splits.append(_split("t", "train", "train", [69, 75, 0]))
    result = analyse(splits, groups)
    assert result.leaking[("t", "train")].tolist() == [True, False, True]
    assert [p["eval_task"] for p in result.pairs] == ["e00", "e69"]


def _table(name: str, *splits: SplitTable) -> TaskTable:
    return TaskTable(name, {}, list(splits))


def test_clean_tables_moves_pairs_and_concatenates_every_column_kind() -> None:
    """Image pairs leave when either image leaks; removed rows of several training splits
    form one mteval with plain, string and ragged columns intact."""

    def cols(ids: list[int], images: list, words: list[list[str]]) -> dict[str, Any]:
        return {
            "id": np.asarray(ids, dtype=np.int64),
            "image": images,
            "text": [f"t{i}" for i in ids],
            "words": Ragged.from_lists(values=words),
        }

    pair_task = _table(
        "pairs",
        SplitTable(
            "train",
            "train",
            cols(
                [1, 2, 3], [("n:a", "n:b"), ("n:c", "n:d"), ("n:e", "n:f")], [["x"], ["y", "z"], []]
            ),
        ),
        SplitTable("dev", "eval", cols([9], [("n:g", "n:d")], [["w"]])),
    )
    multi = _table(
        "multi",
        SplitTable("train", "train", cols([10, 11], ["coco:1", "coco:2"], [["p", "q"], ["r"]])),
        SplitTable("extra_train", "train", cols([20, 21], ["coco:3", "coco:1"], [[], ["s"]])),
        SplitTable("test", "eval", cols([30], ["coco:1"], [["u"]])),
    )
    keys = sorted(["n:a", "n:b", "n:c", "n:d", "n:e", "n:f", "n:g", "coco:1", "coco:2", "coco:3"])
    result = clean_tables([pair_task, multi], keys, [], LeakagePolicy(), apply=True)
    train = pair_task.splits[0]
    assert train.columns["id"].tolist() == [1, 3]
    mteval = pair_task.splits[-1]
    assert (mteval.name, mteval.role) == ("mteval", "extra")
    assert mteval.columns["image"] == [("n:c", "n:d")]
    assert mteval.columns["words"].values["values"] == ["y", "z"]
    assert [s.name for s in multi.splits] == ["train", "extra_train", "test", "mteval"]
    moved = multi.splits[-1].columns
    assert moved["id"].tolist() == [10, 21]
    assert moved["image"] == ["coco:1", "coco:1"] and moved["text"] == ["t10", "t21"]
    assert moved["words"].offsets.tolist() == [0, 2, 3]
    assert moved["words"].values["values"] == ["p", "q", "s"]
    multi.splits[-1].check_lengths()
    assert result.report["removed"] == {
        "pairs": {"train": 1},
        "multi": {"train": 1, "extra_train": 1},
    }
    assert result.report["emptied_training_splits"] == []
    assert result.report["identity_groups"] == len(keys)


def test_clean_tables_without_apply_changes_nothing() -> None:
    table = _table(
        "t",
        SplitTable("train", "train", {"id": np.array([1]), "image": ["coco:1"]}),
        SplitTable("val", "eval", {"id": np.array([2]), "image": ["coco:1"]}),
    )
    result = clean_tables([table], ["coco:1"], [], LeakagePolicy(), apply=False)
    assert [s.name for s in table.splits] == ["train", "val"]
    assert result.report["cleaned"] is False and result.report["removed"] == {}
    assert result.report["leaking_training_examples"] == 1
    assert result.report["emptied_training_splits"] == []
