"""Write small unified HDF5 files in the layout of docs/schema.md, for ground-truth tests.

Deliberately independent of ``unify.writer``: the scorers' reader must follow the
documented contract, so the tests write that contract by hand with h5py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")


class Ragged:
    """A ragged column: per-example lists for one or more value datasets."""

    def __init__(self, **values: Sequence[Sequence[Any]]) -> None:
        self.values = values


def _write(group: h5py.Group, name: str, value: Any) -> None:
    if isinstance(value, Ragged):
        sub = group.create_group(name)
        lists = next(iter(value.values.values()))
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in lists])]).astype(np.int64)
        sub.create_dataset("offsets", data=offsets)
        for key, per_example in value.values.items():
            flat = [x for items in per_example for x in items]
            _write(sub, key, flat if flat and isinstance(flat[0], str) else np.asarray(flat))
        return
    if isinstance(value, np.ndarray) and value.dtype != object:
        group.create_dataset(name, data=value, compression="gzip", shuffle=True)
        return
    group.create_dataset(name, data=np.asarray(list(value), dtype=object), dtype=STR)


def write_unified(
    path: Path,
    tasks: Mapping[str, Mapping[str, Mapping[str, Any]]],
    image_keys: Sequence[str] = (),
    *,
    schema_version: str = "1.0",
    roles: Mapping[str, str] | None = None,
) -> Path:
    """``tasks[task][split][column]``: numpy arrays, lists of str, or ``Ragged``.

    An ``image`` column may be given as image KEYS (strings): it is stored as int32 row
    indices into the sorted /images/key, as the schema says. ``candidates`` likewise.
    """
    keys = sorted(set(image_keys))
    for splits in tasks.values():
        for columns in splits.values():
            for name in ("image", "candidates"):
                if name in columns and len(columns[name]) and isinstance(columns[name][0], str):
                    keys = sorted(set(keys) | set(columns[name]))
    index = {k: i for i, k in enumerate(keys)}
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = schema_version
        f.attrs["vl12_version"] = "test"
        images = f.create_group("images")
        images.create_dataset("key", data=np.asarray(keys, dtype=object), dtype=STR)
        images.create_dataset("width", data=np.full(len(keys), -1, dtype=np.int32))
        images.create_dataset("height", data=np.full(len(keys), -1, dtype=np.int32))
        root = f.create_group("tasks")
        for task, splits in tasks.items():
            tg = root.create_group(task, track_order=True)
            for split, columns in splits.items():
                g = tg.create_group(split, track_order=True)
                n = len(columns["id"])
                role = (roles or {}).get(split) or ("train" if split == "train" else "eval")
                g.attrs["role"] = role
                g.attrs["num_examples"] = n
                for name, value in columns.items():
                    if name in ("image", "candidates") and len(value) and isinstance(value[0], str):
                        value = np.asarray([index[k] for k in value], dtype=np.int32)
                    _write(g, name, value)
    return path
