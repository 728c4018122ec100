"""A generic converter test case, after TensorFlow Datasets' ``DatasetBuilderTestCase``.

A task's test module subclasses :class:`ConverterCase`, names the task, writes a tiny raw
folder with the task's own release-format writer and states the split sizes it expects.
The harness then builds the task (twice, from two copies of the folder) and checks what
every converter must guarantee:

- the split sizes, and that only the TaskSpec's splits appear, with the TaskSpec's roles;
- example ids are unique within a split and typed as the TaskSpec says (string ids are
  never cast to numbers);
- the build is deterministic: two builds of the same files hold identical datasets;
- the round trip through the writer: every id the writer wrote comes back, in its split;
- the task attributes in the file are the TaskSpec's, and every raw file the writer made
  is one the converter declares.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
import pytest

from unify.build import BuildOptions, run_build
from unify.reader import UnifiedFile
from unify.tasks import TaskSpec, get


def _datasets(group: h5py.Group) -> Iterator[tuple[str, h5py.Dataset]]:
    items: list[tuple[str, h5py.Dataset]] = []
    group.visititems(
        lambda name, obj: items.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
    )
    yield from items


class ConverterCase(ABC):
    """Subclass with ``TASK``, ``SPLIT_SIZES`` and ``write_raw``; pytest collects the tests."""

    TASK: ClassVar[str]
    #: The splits the build must hold, with their number of examples.
    SPLIT_SIZES: ClassVar[Mapping[str, int]]

    @abstractmethod
    def write_raw(self, raw: Path) -> Mapping[str, Sequence[Any]]:
        """Write the task's release files under ``raw`` with its sample writer; return the
        example ids written, per split of the unified file."""

    @property
    def spec(self) -> TaskSpec:
        return get(self.TASK)

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        root = tmp_path_factory.mktemp(f"case_{cls.TASK}")
        written = cls().write_raw(root / "raw")
        shutil.copytree(root / "raw", root / "raw_copy")
        options = BuildOptions(tasks=(cls.TASK,), clean=False)
        run_build(root / "raw", root / "a.h5", options)
        run_build(root / "raw_copy", root / "b.h5", options)
        return {"root": root, "a": root / "a.h5", "b": root / "b.h5", "written": written}

    def test_split_sizes_and_roles(self, built: dict[str, Any]) -> None:
        with UnifiedFile(built["a"]) as uf:
            sizes = {s: uf.split(self.TASK, s).num_examples for s in uf.splits(self.TASK)}
            roles = {s: uf.split(self.TASK, s).role for s in uf.splits(self.TASK)}
        assert sizes == dict(self.SPLIT_SIZES)
        assert set(roles) <= set(self.spec.split_names)
        assert roles == {s: self.spec.role(s) for s in roles}

    def test_ids_unique_and_typed(self, built: dict[str, Any]) -> None:
        with UnifiedFile(built["a"]) as uf:
            for split in uf.splits(self.TASK):
                ids = uf.split(self.TASK, split).column("id")
                assert len(set(ids.tolist())) == len(ids), f"{self.TASK}/{split}: repeated ids"
                if self.spec.id_kind is int:
                    assert np.issubdtype(ids.dtype, np.integer), f"{split}: {ids.dtype}"
                else:
                    assert all(type(i) is str for i in ids.tolist()), f"{split}: not strings"

    def test_deterministic(self, built: dict[str, Any]) -> None:
        with h5py.File(built["a"], "r") as a, h5py.File(built["b"], "r") as b:
            for top in ("tasks", "images", "links"):
                if top not in a:
                    continue
                left = dict(_datasets(a[top]))
                right = dict(_datasets(b[top]))
                assert sorted(left) == sorted(right)
                for name, ds in left.items():
                    assert ds.dtype == right[name].dtype, name
                    assert np.array_equal(ds[()], right[name][()]), f"{top}/{name} differs"
            assert dict(a["tasks"][self.TASK].attrs) == dict(b["tasks"][self.TASK].attrs)

    def test_round_trip_through_the_writer(self, built: dict[str, Any]) -> None:
        with UnifiedFile(built["a"]) as uf:
            for split, ids in built["written"].items():
                stored = uf.split(self.TASK, split).column("id").tolist()
                assert sorted(stored) == sorted(ids), f"{self.TASK}/{split}"

    def test_attributes_and_declared_files(self, built: dict[str, Any]) -> None:
        spec = self.spec
        with UnifiedFile(built["a"]) as uf:
            attrs = uf.task_attrs(self.TASK)
        assert (attrs["task_group"], attrs["metric"], attrs["id_field"]) == (
            spec.group,
            spec.metric,
            spec.id_field,
        )
        assert attrs["example_unit"] == spec.example_unit
        declared = {f.name for f in spec.make_converter().raw_files}
        folder = built["root"] / "raw" / self.TASK
        made = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        assert made <= declared, f"files the converter does not declare: {made - declared}"
