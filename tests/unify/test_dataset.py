"""Torch side: DataLoader over every task with collate, and the block-reading iterable."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch Dataset needs the [baseline] extra")
from torch.utils.data import DataLoader, Subset  # noqa: E402

from tests.unify import reader_fixtures  # noqa: E402
from tests.unify.reader_fixtures import assert_same  # noqa: E402
from unify import tasks  # noqa: E402
from unify.batching import (  # noqa: E402
    UnifiedIterableDataset,
    block_order,
    collate,
    dense_soft_scores,
)
from unify.dataset import UnifiedDataset  # noqa: E402
from unify.reader import UnifiedFile  # noqa: E402

featured_h5 = reader_fixtures.featured_h5  # the shared session fixture


def _train_split(task: str) -> str:
    return tasks.get(task).train_splits[0]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("task", tasks.task_names())
def test_dataloader_batches_every_task(featured_h5: Path, task: str, workers: int) -> None:
    """Features and targets included; the last batch is partial."""
    split = _train_split(task)
    ds = UnifiedDataset(featured_h5, task, split, features="auto", targets=True)
    rows = np.linspace(0, len(ds) - 1, 10).astype(int).tolist()
    loader = DataLoader(Subset(ds, rows), batch_size=4, collate_fn=collate, num_workers=workers)
    batches = list(loader)
    assert [len(b["id"]) for b in batches] == [4, 4, 2]
    with UnifiedFile(featured_h5) as uf:
        view = uf.split(task, split, "auto", targets=True)
        expected = [view.example(i) for i in rows]
    got_ids = [
        x for b in batches for x in (b["id"].tolist() if torch.is_tensor(b["id"]) else b["id"])
    ]
    assert got_ids == [e["id"] for e in expected]
    for b, chunk in zip(batches, (expected[:4], expected[4:8], expected[8:]), strict=True):
        assert b["task"] == [task] * len(chunk)
        assert b["target"]["index"].tolist() == [e["target"]["index"] for e in chunk]
        feats = b["features"]
        pair = isinstance(chunk[0]["features"], list)
        for j, e in enumerate(chunk):
            for k, f in enumerate(e["features"] if pair else [e["features"]]):
                mask = feats["mask"][j, k] if pair else feats["mask"][j]
                values = feats["features"][j, k] if pair else feats["features"][j]
                assert int(mask.sum()) == len(f["features"])
                np.testing.assert_array_equal(values[mask].numpy(), f["features"])
        assert feats["features"].dtype == torch.float16


def test_collate_pads_ragged_rows_and_keeps_strings() -> None:
    a = {
        "task": "t",
        "id": 1,
        "text": "a",
        "answers": ["x", "y"],
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "objects": {
            "ids": np.array([5, 6, 7]),
            "names": np.array(["p", "q", "r"], dtype=object),
        },
        "target": {"kind": "k", "index": 2, "labels": np.array([3]), "scores": np.array([0.5])},
    }
    b = {
        "task": "t",
        "id": 2,
        "text": "b",
        "answers": [],
        "bbox": [5.0, 6.0, 7.0, 8.0],
        "objects": {"ids": np.array([9]), "names": np.array(["s"], dtype=object)},
        "target": {"kind": "k", "index": -1, "labels": np.zeros(0, int), "scores": np.zeros(0)},
    }
    batch = collate([a, b])
    assert batch["id"].tolist() == [1, 2] and batch["text"] == ["a", "b"]
    assert batch["answers"] == [["x", "y"], []]
    assert batch["bbox"].shape == (2, 4)
    assert batch["objects"]["ids"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert batch["objects"]["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["objects"]["names"] == [["p", "q", "r"], ["s"]]
    assert batch["target"]["kind"] == ["k", "k"]
    assert batch["target"]["labels"].shape == (2, 1)
    assert batch["target"]["mask"].tolist() == [[True], [False]]
    with pytest.raises(ValueError, match="mixes tasks"):
        collate([a, {**b, "task": "other"}])
    with pytest.raises(ValueError, match="bbox has rows of different shapes"):
        collate([a, {**b, "bbox": [1.0]}])


def test_dense_soft_scores() -> None:
    rows = [
        {
            "kind": "vqa_soft",
            "labels": np.array([2, 0]),
            "scores": np.array([1.0, 0.3], np.float32),
        },
        {"kind": "vqa_soft", "labels": np.zeros(0, np.int64), "scores": np.zeros(0, np.float32)},
    ]
    batch = collate([{"task": "v", "target": {**r, "num_classes": 4}} for r in rows])
    dense = dense_soft_scores(batch["target"])
    assert dense.tolist() == [[pytest.approx(0.3), 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_dataset_preload_pickle_and_options(featured_h5: Path) -> None:
    ds = UnifiedDataset(featured_h5, "vqa2", "trainval", select=["question"], targets=True)
    assert ds._file is None and ds.memory_bytes == 0
    ds.preload()
    assert ds.memory_bytes > 0
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._columns is None and clone._file is None  # spawn workers load their own
    assert_same(clone[7], ds[7])
    assert set(ds[0]) == {"task", "id", "question", "image", "image_index", "target"}
    with pytest.raises(KeyError, match="no features"):
        UnifiedDataset(featured_h5, "vqa2", "trainval", features="nope")


# ---------------------------------------------------------------------- iterable dataset
def _id(example: dict) -> object:
    return example["id"]


def _epoch_ids(ds: UnifiedIterableDataset, workers: int) -> list:
    """The ids of one epoch (only ids cross the worker queues: ``transform=_id``)."""
    ds.transform = _id
    return list(DataLoader(ds, batch_size=None, num_workers=workers))


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_reads_each_example_once_per_epoch(featured_h5: Path, workers: int) -> None:
    with UnifiedFile(featured_h5) as uf:
        all_ids = uf.split("gqa", "trainval").column("id").tolist()
    ds = UnifiedIterableDataset(featured_h5, "gqa", "trainval", block=64, seed=3)
    assert len(ds) == len(all_ids)
    first = _epoch_ids(ds, workers)
    assert Counter(first) == Counter(all_ids)  # every example exactly once
    assert first != all_ids  # shuffled
    assert _epoch_ids(ds, workers) == first  # same seed and epoch, same order
    ds.set_epoch(1)
    second = _epoch_ids(ds, workers)
    assert Counter(second) == Counter(all_ids) and second != first


def test_iterable_shards_over_ranks_and_workers(featured_h5: Path) -> None:
    with UnifiedFile(featured_h5) as uf:
        all_ids = uf.split("vqa2", "minval").column("id").tolist()
    seen: list = []
    for rank in range(2):
        ds = UnifiedIterableDataset(
            featured_h5, "vqa2", "minval", block=100, seed=1, rank=rank, world_size=2
        )
        mine = _epoch_ids(ds, 2)
        assert 0 < len(mine) < len(all_ids)
        seen += mine
    assert Counter(seen) == Counter(all_ids)


def test_iterable_blocks_are_contiguous_rows_in_shuffled_order(featured_h5: Path) -> None:
    """Block-shuffled: a block's rows come together (one read), in a seeded order."""
    blocks = block_order(1000, 64, seed=0, epoch=0)
    assert sorted(blocks) == [(a, min(1000, a + 64)) for a in range(0, 1000, 64)]
    assert blocks != sorted(blocks) and blocks == block_order(1000, 64, seed=0, epoch=0)
    assert block_order(1000, 64, 0, 0, shuffle=False) == sorted(blocks)
    with UnifiedFile(featured_h5) as uf:
        position = {v: i for i, v in enumerate(uf.split("vqa2", "minval").column("id").tolist())}
    ds = UnifiedIterableDataset(featured_h5, "vqa2", "minval", block=50, seed=5)
    rows = [position[i] for i in _epoch_ids(ds, 0)]
    for k in range(0, len(rows), 50):  # one process: blocks come whole, one after another
        chunk = rows[k : k + 50]
        assert max(chunk) - min(chunk) == len(chunk) - 1 and min(chunk) % 50 == 0


def test_iterable_carries_features_and_targets(featured_h5: Path) -> None:
    ds = UnifiedIterableDataset(
        featured_h5, "nlvr2", "train", features="auto", targets=True, block=16
    )
    loader = DataLoader(ds, batch_size=8, collate_fn=collate, num_workers=2)
    batch = next(iter(loader))
    assert batch["features"]["features"].shape[:2] == (8, 2)
    assert batch["target"]["index"].shape == (8,)
    with pytest.raises(ValueError, match=r"rank 2 is not in 0\.\.1"):
        UnifiedIterableDataset(featured_h5, "nlvr2", "train", rank=2, world_size=2)


class _CacheProbe(UnifiedDataset):
    """Items also say which column cache served them (an object's id survives a fork)."""

    def __getitem__(self, index: int) -> tuple[dict, int]:
        return super().__getitem__(index), id(self._columns)


def test_workers_forked_after_the_parent_read_reopen_and_share_columns(featured_h5: Path) -> None:
    """The parent has read (file, feature descriptors and columns open): forked workers
    reopen the file and descriptors, keep the preloaded columns, and read the same."""
    ds = _CacheProbe(featured_h5, "gqa", "trainval", features="auto", targets=True)
    ds.preload()
    parent_file, parent_cache = ds._file, id(ds._columns)
    rows = list(range(0, len(ds), 97))
    expected = [ds[i][0] for i in rows]
    loader = DataLoader(Subset(ds, rows), batch_size=None, num_workers=2)
    for (got, cache), want in zip(loader, expected, strict=True):
        assert cache == parent_cache  # the preloaded columns, not a fresh load
        assert got["id"] == want["id"]
        np.testing.assert_array_equal(got["features"]["features"], want["features"]["features"])
        assert got["target"]["index"] == want["target"]["index"]
    assert ds._file is parent_file  # the parent's own handle was left alone
