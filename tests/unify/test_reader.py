"""The reader and the torch Dataset (lazy per-worker opening, multi-worker loading)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.unify import reader_fixtures
from tests.unify.reader_fixtures import assert_same, region_rows
from unify.columns import DirectRows, PackedStrings
from unify.errors import DataError, SchemaError
from unify.features import import_features
from unify.reader import UnifiedFile
from unify.sample.features_format import write_tsv
from unify.tasks import task_names, tasks_in_group

featured_h5 = reader_fixtures.featured_h5  # the shared session fixture


def test_iteration_equals_random_access(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        for task, split in (("vqa2", "minval"), ("gqa", "trainval"), ("vgqa", "val")):
            view = uf.split(task, split)
            it = list(view)
            assert len(it) == view.num_examples
            for i in (0, 1, len(it) // 2, len(it) - 1):
                ex = view.example(i)
                assert set(ex) == set(it[i])
                for key, value in ex.items():
                    if key == "targets":
                        assert value["labels"].tolist() == it[i][key]["labels"].tolist()
                    else:
                        assert value == it[i][key], (task, split, i, key)


def test_unknown_task_or_split_lists_what_exists(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        with pytest.raises(KeyError, match="tasks: vqa2, gqa, vgqa"):
            uf.split("nope", "train")
        with pytest.raises(KeyError, match="splits: trainval, minval, test, test-dev"):
            uf.split("vqa2", "val")


def test_other_schema_major_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = "2.0"
    with pytest.raises(SchemaError, match=r"schema version 2\.0"):
        UnifiedFile(path)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(SchemaError, match="cannot open as HDF5"):
        UnifiedFile(tmp_path / "junk.h5")


def _example_id(example: dict) -> int:
    return example["id"]


def test_dataset_opens_lazily_and_loads_with_workers(tiny_h5: Path) -> None:
    torch = pytest.importorskip("torch", reason="the torch Dataset needs the [baseline] extra")
    from torch.utils.data import DataLoader

    from unify.dataset import UnifiedDataset

    ds = UnifiedDataset(tiny_h5, "vqa2", "minval", transform=_example_id)
    assert ds._file is None  # nothing opened in __init__
    assert len(ds) == 3000
    assert ds._file is None  # len() uses a short-lived handle only
    assert ds[5] == pickle.loads(pickle.dumps(ds))[5]  # picklable for spawn-based workers
    ds._file = ds._view = None  # as a fresh parent: workers must open their own handles
    loader = DataLoader(ds, batch_size=256, num_workers=2, shuffle=False)
    ids = torch.cat(list(loader)).tolist()
    with UnifiedFile(tiny_h5) as uf:
        assert ids == uf.split("vqa2", "minval").column("id").tolist()
    assert ds._file is None  # the workers opened their own handles, not the parent
    assert isinstance(ds[0], int)


def _rows(n: int) -> list[int]:
    return sorted({0, 1, n // 3, n // 2, n - 2, n - 1} & set(range(n)))


# ------------------------------------------------------------------- every task's split
@pytest.mark.parametrize("task", task_names())
def test_every_access_path_gives_the_same_examples(featured_h5: Path, task: str) -> None:
    """Random access from memory, from HDF5 (cache=False) and block iteration agree, with
    features and targets, and every example names its task."""
    with UnifiedFile(featured_h5) as uf:
        for split in uf.splits(task):
            fast = uf.split(task, split, "auto", targets=True)
            slow = uf.split(task, split, "auto", targets=True, cache=False)
            rows = _rows(len(fast))
            iterated = list(fast.iter_blocks([(0, len(fast))]))
            assert len(iterated) == len(fast)
            for i in rows:
                ex = fast.example(i)
                assert ex["task"] == task
                assert_same(ex, slow.example(i), f"{task}/{split}/{i}")
                assert_same(ex, iterated[i], f"{task}/{split}/{i} iterated")
            assert fast.memory_bytes > 0 and slow.memory_bytes == 0


def test_blocks_and_plain_iteration_agree_across_block_edges(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        view = uf.split("guesswhat", "train")
        whole = list(view)
        cut = list(view.iter_blocks([(0, 7), (7, 100), (100, len(view))]))
        for a, b in zip(whole, cut, strict=True):
            assert_same(a, b)


# --------------------------------------------------------------------- region features
def test_refer_example_keeps_its_regions_and_gets_features(featured_h5: Path) -> None:
    """The bug: features used to overwrite the refer candidates (x, y, w, h)."""
    with UnifiedFile(featured_h5) as uf:
        for task in (s.name for s in tasks_in_group("refer") if "regions" in s.inputs):
            view = uf.split(task, "train", "auto")
            regions = view.ragged("regions")
            for i in _rows(len(view)):
                ex = view.example(i)
                own = regions.row(i)
                assert set(ex["regions"]) == {"ann_ids", "boxes", "category_ids"}
                np.testing.assert_array_equal(ex["regions"]["boxes"], own["boxes"])
                np.testing.assert_array_equal(ex["regions"]["ann_ids"], own["ann_ids"])
                want = uf.region_features("bottomup_coco", ex["image_index"])
                assert want is not None
                np.testing.assert_array_equal(ex["features"]["boxes"], want["boxes"])
                np.testing.assert_array_equal(ex["features"]["features"], want["features"])


def test_auto_picks_the_set_of_each_image_universe(featured_h5: Path) -> None:
    """GQA questions sit on vg: and gqa: images; NLVR2 examples have two images."""
    with UnifiedFile(featured_h5) as uf:
        view = uf.split("gqa", "trainval", "auto")
        seen = set()
        for ex in view:
            universe = ex["image"].split(":", 1)[0]
            seen.add(universe)
            want = uf.region_features(f"bottomup_{universe}", ex["image_index"])
            assert want is not None
            np.testing.assert_array_equal(ex["features"]["features"], want["features"])
        assert seen == {"vg", "gqa"}
        pair = uf.split("nlvr2", "dev", "auto").example(3)
        assert len(pair["features"]) == 2
        for index, feats in zip(pair["image_index"], pair["features"], strict=True):
            want = uf.region_features("bottomup_nlvr2", index)
            np.testing.assert_array_equal(feats["boxes"], want["boxes"])
        # A list of names is the same choice, made explicitly.
        named = uf.split("gqa", "trainval", ["bottomup_gqa", "bottomup_vg"])
        assert_same(named.example(5), view.example(5))


def test_a_universe_without_a_set_fails_with_the_import_command(
    featured_h5: Path, tiny_h5: Path
) -> None:
    with UnifiedFile(featured_h5) as uf:
        with pytest.raises(DataError) as err:
            uf.split("gqa", "trainval", ["bottomup_vg", "bottomup_coco"])
        message = str(err.value)
        assert "\n" not in message
        assert "universe 'gqa'" in message and "gqa/trainval" in message
        assert "bottomup_vg (vg), bottomup_coco (coco)" in message
        assert f"unify features import {featured_h5} <gqa.tsv> --name <name> --universe gqa" in (
            message
        )
        # One set named for a task of another universe: the same error, never None.
        with pytest.raises(DataError, match="universe 'vg'"):
            uf.split("vgqa", "train", "bottomup_coco")
        with pytest.raises(KeyError, match=r"no features 'nope'.*bottomup_coco"):
            uf.split("vqa2", "minval", "nope")
    with (
        UnifiedFile(tiny_h5) as uf,  # no feature set at all
        pytest.raises(DataError, match=r"no feature set serves it \(sets: none\)"),
    ):
        uf.split("vqa2", "minval", "auto")


@pytest.fixture(scope="module")
def twice(featured_h5: Path, tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The featured file plus a second coco set and a GQA set covering vg: photos too."""
    work = tmp_path_factory.mktemp("twice")
    dest = work / "twice.h5"
    shutil.copyfile(featured_h5, dest)
    with UnifiedFile(dest) as uf:
        keys = sorted({str(k) for k in uf.split("gqa", "trainval").image_keys()})
        dim = uf.feature_set("bottomup_coco").dim
    tsv = write_tsv(work / "gqa_all.tsv", region_rows(keys, dim, seed=7))
    import_features(dest, [tsv], "gqa_all", "gqa")
    import_features(dest, [tiny_raw / "features" / "coco.tsv"], "other_coco", "coco")
    return dest


def test_two_sets_of_one_universe_are_ambiguous_for_auto(twice: Path) -> None:
    with UnifiedFile(twice) as uf:
        with pytest.raises(DataError, match="bottomup_coco, other_coco all serve universe 'coco'"):
            uf.split("vqa2", "minval", "auto")
        with pytest.raises(DataError, match="ambiguous"):
            uf.split("vqa2", "minval", ["bottomup_coco", "other_coco"])
        ex = uf.split("vqa2", "minval", ["other_coco"]).example(0)
        want = uf.region_features("other_coco", ex["image_index"])
        np.testing.assert_array_equal(ex["features"]["features"], want["features"])


def test_a_set_holding_another_universe_serves_it_when_none_is_declared(twice: Path) -> None:
    """A GQA feature file (--universe gqa) also holds the Visual Genome photos GQA uses."""
    with UnifiedFile(twice) as uf:
        alone = uf.split("gqa", "trainval", ["gqa_all"])
        both = uf.split("gqa", "trainval", ["gqa_all", "bottomup_vg"])
        for ex, ex2 in zip(alone, both, strict=True):
            own = uf.region_features("gqa_all", ex["image_index"])
            np.testing.assert_array_equal(ex["features"]["boxes"], own["boxes"])
            if ex["image"].startswith("vg:"):  # the declared vg set wins over a covering one
                vg = uf.region_features("bottomup_vg", ex["image_index"])
                np.testing.assert_array_equal(ex2["features"]["boxes"], vg["boxes"])
        with pytest.raises(DataError, match="gqa_all, bottomup_gqa all serve universe 'gqa'"):
            uf.split("gqa", "trainval", ["gqa_all", "bottomup_gqa"])


# ------------------------------------------------------------------- options, storage
def test_select_keeps_id_and_image_and_names_unknown_columns(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        view = uf.split("vqa2", "trainval", select=["question"], targets=True)
        ex = view.example(3)
        assert list(ex) == ["task", "id", "question", "image_index", "image", "target"]
        full = uf.split("vqa2", "trainval", targets=True).example(3)
        assert_same(ex["target"], full["target"])  # targets do not depend on the selection
        with pytest.raises(KeyError, match=r"no column 'nope'.*question_type"):
            uf.split("vqa2", "trainval", select=["nope"])


def test_packed_strings_round_trip(tmp_path: Path) -> None:
    values = ["", "a", "héllo wörld", "日本語", "x" * 1000, ""]
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("s", data=np.array(values, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset(
            "pairs", data=np.array(values, dtype=object).reshape(3, 2), dtype=h5py.string_dtype()
        )
        packed = PackedStrings.from_dataset(f["s"])
        pairs = PackedStrings.from_dataset(f["pairs"])
        part = PackedStrings.from_dataset(f["s"], slice(2, 5))
    assert [packed.row(i) for i in range(len(packed))] == values
    assert packed.strings(1, 4).tolist() == values[1:4]
    assert [pairs.row(i) for i in range(3)] == [values[0:2], values[2:4], values[4:6]]
    assert pairs.rows(1, 3).shape == (2, 2)
    assert [part.row(i) for i in range(3)] == values[2:5]
    assert packed.nbytes < sum(len(v.encode()) for v in values) + 8 * (len(values) + 1) + 1


@pytest.mark.parametrize(
    "layout",
    [
        {"chunks": (7, 3)},
        {"chunks": None},
        {"chunks": (7, 3), "compression": "gzip"},
        {"chunks": (5, 1)},
    ],
)
def test_direct_rows_equal_hdf5_reads(tmp_path: Path, layout: dict) -> None:
    """Direct reads where HDF5's own layout allows them, HDF5 reads otherwise."""
    data = np.arange(40 * 3, dtype=np.float16).reshape(40, 3)
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, **layout)
    with h5py.File(path, "r") as f:
        rows = DirectRows(f["d"], str(path))
        direct = layout.get("chunks") != (5, 1) and "compression" not in layout
        assert rows.direct is direct
        for a, b in ((0, 1), (5, 9), (6, 15), (0, 40), (39, 40), (3, 3)):
            got = rows.read(a, b)
            assert got.dtype == data.dtype and got.shape == (b - a, 3)
            assert got.flags.writeable  # a transform may normalise in place
            np.testing.assert_array_equal(got, data[a:b])
        rows.close()


def test_chunk_cache_option_reaches_hdf5(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5, chunk_cache_bytes=8 << 20) as uf:
        assert uf.h5.id.get_access_plist().get_cache()[2] == 8 << 20
