"""Read a unified file: tasks, splits, columns and examples as plain Python / numpy.

Nothing here imports torch (``unify.dataset`` wraps this for DataLoaders), so scorers and
the evaluation server can read ground truth without the training stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unify.errors import SchemaError
from unify.schema import FEATURES, IMAGES, LINKS, OFFSETS, SCHEMA_MAJOR, TASKS, VOCAB

ITER_BLOCK = 4096


def _decode(ds: h5py.Dataset, sel: Any = slice(None)) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[sel]
    return ds[sel]


@dataclass
class RaggedColumn:
    """Flat values with offsets; ``row(i)`` is example i's slice of every value array."""

    offsets: np.ndarray
    values: dict[str, np.ndarray]

    def row(self, i: int) -> dict[str, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return {name: vals[start:end] for name, vals in self.values.items()}

    def rows(self, i: int) -> Any:
        """Example i as a list (single ``values``) or a dict of arrays."""
        row = self.row(i)
        if list(row) == ["values"]:
            return list(row["values"])
        return row


class SplitView:
    """One split of one task; columns are read on demand."""

    def __init__(
        self, unified: UnifiedFile, task: str, name: str, features: str | None = None
    ) -> None:
        self.file = unified
        self.task = task
        self.name = name
        self.features = features
        self.group: h5py.Group = unified.h5[TASKS][task][name]
        if features is not None and features not in unified.feature_names():
            raise KeyError(
                f"no features {features!r} in {unified.path} "
                f"(features: {', '.join(unified.feature_names()) or 'none'})"
            )

    @property
    def role(self) -> str:
        return str(self.group.attrs["role"])

    @property
    def num_examples(self) -> int:
        return int(self.group.attrs["num_examples"])

    def __len__(self) -> int:
        return self.num_examples

    @property
    def fields(self) -> list[str]:
        """Per-example columns (split arrays such as retrieval ``candidates`` excluded)."""
        return [name for name, _ in self._column_items()]

    @cached_property
    def arrays(self) -> list[str]:
        """Split-level arrays of any length (read them with ``column``)."""
        raw = self.group.attrs.get("split_arrays")
        return json.loads(raw) if raw else []

    def _column_items(self) -> list[tuple[str, Any]]:
        skip = set(self.arrays)
        return [(name, item) for name, item in self.group.items() if name not in skip]

    def is_ragged(self, name: str) -> bool:
        return isinstance(self.group[name], h5py.Group)

    def column(self, name: str, sel: Any = slice(None)) -> np.ndarray:
        """A plain column (strings decoded to ``str``)."""
        item = self.group[name]
        if isinstance(item, h5py.Group):
            raise TypeError(f"{self.task}/{self.name}/{name} is ragged; use ragged()")
        return _decode(item, sel)

    def ragged(self, name: str) -> RaggedColumn:
        """A whole ragged column."""
        group = self.group[name]
        offsets = group[OFFSETS][:]
        values = {k: _decode(group[k]) for k in group if k != OFFSETS}
        return RaggedColumn(offsets, values)

    def image_keys(self) -> np.ndarray:
        """Image keys of every example (shape [N] or [N, 2])."""
        return self.file.image_keys[self.column("image")]

    def example(self, i: int) -> dict[str, Any]:
        """Example ``i`` with every field; ``image`` is given as key(s)."""
        if not 0 <= i < self.num_examples:
            raise IndexError(f"example {i} out of range for {self.task}/{self.name}")
        out: dict[str, Any] = {}
        for name, item in self._column_items():
            if isinstance(item, h5py.Group):
                start, end = item[OFFSETS][i : i + 2]
                row = {k: _decode(item[k], slice(start, end)) for k in item if k != OFFSETS}
                out[name] = list(row["values"]) if list(row) == ["values"] else row
            else:
                out[name] = _plain(_decode(item, i))
        self._finish(out)
        return out

    def _finish(self, ex: dict[str, Any]) -> None:
        """Image indices become keys; region features are attached when asked for."""
        index = ex.pop("image")
        ex["image_index"] = index
        keys = self.file.image_keys
        if isinstance(index, list):
            ex["image"] = keys[np.asarray(index)].tolist()
            if self.features is not None:
                ex["regions"] = [self.file.region_features(self.features, i) for i in index]
        else:
            ex["image"] = str(keys[index])
            if self.features is not None:
                ex["regions"] = self.file.region_features(self.features, index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """All examples in order, read block by block (not one HDF5 read per field and row)."""
        n = self.num_examples
        items = self._column_items()
        plain = [k for k, v in items if isinstance(v, h5py.Dataset)]
        ragged = {k: self.ragged(k) for k, v in items if isinstance(v, h5py.Group)}
        for start in range(0, n, ITER_BLOCK):
            block = {k: self.column(k, slice(start, min(n, start + ITER_BLOCK))) for k in plain}
            for j in range(len(block["id"])):
                ex = {k: _plain(v[j]) for k, v in block.items()}
                for k, col in ragged.items():
                    ex[k] = col.rows(start + j)
                self._finish(ex)
                yield ex


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


class UnifiedFile:
    """An open unified file; use as a context manager or call ``close()``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise SchemaError(f"{self.path}: cannot open as HDF5: {exc}") from None
        version = str(self.h5.attrs.get("schema_version", ""))
        if not version or version.split(".")[0] != str(SCHEMA_MAJOR):
            self.h5.close()
            raise SchemaError(
                f"{self.path}: schema version {version or 'missing'} is not "
                f"readable by this vl12 (schema {SCHEMA_MAJOR}.x)"
            )
        self.schema_version = version

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> UnifiedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attr_json(self, name: str) -> Any:
        raw = self.h5.attrs.get(name)
        return json.loads(raw) if raw is not None else None

    @property
    def build_options(self) -> dict[str, Any]:
        return self.attr_json("build_options") or {}

    @property
    def sources(self) -> list[dict[str, Any]]:
        return self.attr_json("sources") or []

    @property
    def build_report(self) -> dict[str, Any]:
        return self.attr_json("build_report") or {}

    @property
    def tasks(self) -> list[str]:
        return list(self.h5[TASKS].keys())

    def task_attrs(self, task: str) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.h5[TASKS][task].attrs.items()}

    def splits(self, task: str) -> list[str]:
        return list(self.h5[TASKS][task].keys())

    def split(self, task: str, name: str, features: str | None = None) -> SplitView:
        """A split; with ``features``, examples carry their images' region features."""
        if task not in self.h5[TASKS]:
            raise KeyError(f"task {task!r} not in {self.path} (tasks: {', '.join(self.tasks)})")
        if name not in self.h5[TASKS][task]:
            raise KeyError(
                f"split {name!r} not in task {task!r} (splits: {', '.join(self.splits(task))})"
            )
        return SplitView(self, task, name, features)

    @cached_property
    def image_keys(self) -> np.ndarray:
        return _decode(self.h5[IMAGES]["key"])

    def image_index(self, key: str) -> int:
        """Row of a key in /images (keys are sorted)."""
        keys = self.image_keys
        i = int(np.searchsorted(keys, key))
        if i >= len(keys) or keys[i] != key:
            raise KeyError(key)
        return i

    def feature_names(self) -> list[str]:
        return list(self.h5[FEATURES].keys()) if FEATURES in self.h5 else []

    @cached_property
    def _feature_rows(self) -> dict[str, np.ndarray]:
        return {name: self.h5[FEATURES][name]["row"][:] for name in self.feature_names()}

    def region_features(self, name: str, image_index: int) -> dict[str, np.ndarray] | None:
        """Boxes (x1, y1, x2, y2) and float16 features of one image; None if it has none."""
        row = int(self._feature_rows[name][image_index])
        if row < 0:
            return None
        group = self.h5[FEATURES][name]
        start, end = group["offsets"][row : row + 2]
        return {"boxes": group["boxes"][start:end], "features": group["features"][start:end]}

    def vocab_names(self) -> list[str]:
        return list(self.h5[VOCAB].keys())

    def vocab(self, name: str) -> list[str]:
        return _decode(self.h5[VOCAB][name]).tolist()

    def vocab_attrs(self, name: str) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.h5[VOCAB][name].attrs.items()}

    def links(self) -> dict[str, np.ndarray]:
        g = self.h5[LINKS]
        return {k: _decode(g[k]) for k in ("key_a", "key_b", "type", "source")}


def open_unified(path: Path | str) -> UnifiedFile:
    return UnifiedFile(path)
