"""The reader and the torch Dataset (lazy per-worker opening, multi-worker loading)."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import pytest

from unify.errors import SchemaError
from unify.reader import UnifiedFile


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
