"""Atomic HDF5 writing of a build: temp file in the target folder, then rename.

A crash, an exception or Ctrl-C during a build must never leave a partial FILE behind (a
half-written HDF5 file may still open and silently miss tasks), so everything is written to
a temporary sibling that is renamed over the target only after it was closed cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unify import __version__
from unify.checksums import seal, stamped
from unify.errors import DataError
from unify.images import ImageRegistry, LinkSet
from unify.rawio import unstorable
from unify.schema import (
    GZIP_LEVEL,
    IMAGES,
    LINKS,
    NUMERIC_CHUNK_ROWS,
    OFFSETS,
    SCHEMA_VERSION,
    STRING_CHUNK_ROWS,
    TASKS,
    VOCAB,
)
from unify.table import Ragged, SplitTable, TaskTable
from unify.vocab import Vocabulary

STR = h5py.string_dtype("utf-8")


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; rename it to ``out`` only on success."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _chmod_default(tmp)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _chmod_default(path: Path) -> None:
    """mkstemp makes 0600 files; give the result the permissions open() would."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def write_strings(group: h5py.Group, name: str, values: Sequence[str] | np.ndarray) -> h5py.Dataset:
    data = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    if data.dtype != object:
        data = data.astype(object)
    n = len(data)
    chunks = (min(n, STRING_CHUNK_ROWS), *data.shape[1:]) if n else None
    try:
        dataset = group.create_dataset(
            name,
            data=data,
            dtype=STR,
            chunks=chunks,
            maxshape=(None, *data.shape[1:]) if n else None,
        )
    except (ValueError, TypeError, UnicodeEncodeError):
        # The converters' rules refuse such text with the raw file named; this is the last
        # guard, so that a value no rule foresaw is still one line, never a traceback.
        raise DataError(f"{group.name.rstrip('/')}/{name}: {_bad_string(data)}") from None
    return stamped(dataset, data)


def _bad_string(data: np.ndarray) -> str:
    for index, value in enumerate(data.reshape(-1)):
        if not isinstance(value, str):
            return f"row {index} is a {type(value).__name__}, not text: {value!r:.60}"
        what = unstorable(value)
        if what is not None:
            return f"row {index} holds {what}, which HDF5 UTF-8 strings cannot store"
    return "cannot be stored as HDF5 UTF-8 strings"


def write_numbers(group: h5py.Group, name: str, values: np.ndarray) -> h5py.Dataset:
    n = len(values)
    if n == 0:
        return stamped(group.create_dataset(name, data=values), values)
    chunks = (min(n, NUMERIC_CHUNK_ROWS), *values.shape[1:])
    return stamped(
        group.create_dataset(
            name,
            data=values,
            chunks=chunks,
            compression="gzip",
            compression_opts=GZIP_LEVEL,
            shuffle=True,
        ),
        values,
    )


def write_column(group: h5py.Group, name: str, column: Any) -> None:
    """Write a plain column (numpy array or list of strings) or a ragged one."""
    if isinstance(column, Ragged):
        sub = group.create_group(name)
        write_numbers(sub, OFFSETS, np.asarray(column.offsets, dtype=np.int64))
        for value_name, values in column.values.items():
            write_column(sub, value_name, values)
        return
    if isinstance(column, np.ndarray) and column.dtype != object:
        write_numbers(group, name, column)
        return
    write_strings(group, name, column)


def image_indices(keys: Sequence[Any], index: dict[str, int], width: int = 1) -> np.ndarray:
    """Map image keys (or pairs of keys) to row indices of /images.

    ``width`` is the number of images per example of the task, so that an empty split of a
    pair task still has shape [0, 2].
    """
    if not len(keys) and width > 1:
        return np.zeros((0, width), dtype=np.int32)
    if len(keys) and isinstance(keys[0], tuple):
        flat = [index[k] for pair in keys for k in pair]
        return np.asarray(flat, dtype=np.int32).reshape(len(keys), -1)
    return np.fromiter((index[k] for k in keys), dtype=np.int32, count=len(keys))


def write_split(
    task_group: h5py.Group, split: SplitTable, index: dict[str, int], width: int = 1
) -> None:
    split.check_lengths()
    group = task_group.create_group(split.name, track_order=True)
    group.attrs["role"] = split.role
    group.attrs["num_examples"] = split.num_examples
    for key, value in split.attrs.items():
        group.attrs[key] = value
    for name, column in split.columns.items():
        if name == "image":
            write_numbers(group, name, image_indices(column, index, width))
        else:
            write_column(group, name, column)
    # Split-level arrays (not one row per example): listed so readers skip them as columns.
    if split.arrays:
        group.attrs["split_arrays"] = json.dumps(list(split.arrays))
    for name, values in split.arrays.items():
        if name in split.image_arrays:
            write_numbers(group, name, image_indices(values, index))
        else:
            write_column(group, name, values)


def _attr(value: Any) -> Any:
    return (
        value
        if isinstance(value, (str, int, float, bool, np.generic))
        else json.dumps(value, sort_keys=True)
    )


def write_unified(
    path: Path,
    tasks: list[TaskTable],
    images: ImageRegistry,
    links: LinkSet,
    vocabularies: dict[str, Vocabulary],
    root_attrs: dict[str, Any],
    finish: Callable[[h5py.File, dict[str, int]], None] | None = None,
) -> None:
    """Write a complete unified file at ``path`` (use inside ``atomic_output``).

    ``finish`` adds groups computed over the whole build (the leakage report) while the
    file is open; it receives the key -> /images row index.
    """
    keys = images.sorted_keys()
    index = {key: i for i, key in enumerate(keys)}
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["vl12_version"] = __version__
        f.attrs["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        for key, value in root_attrs.items():
            f.attrs[key] = _attr(value)

        g = f.create_group(IMAGES)
        write_strings(g, "key", keys)
        sizes = np.array([images.sizes[k] for k in keys], dtype=np.int32).reshape(-1, 2)
        write_numbers(g, "width", sizes[:, 0].copy())
        write_numbers(g, "height", sizes[:, 1].copy())

        g = f.create_group(LINKS)
        rows = links.sorted()
        for field in ("key_a", "key_b", "type", "source"):
            write_strings(g, field, [getattr(link, field) for link in rows])

        g = f.create_group(VOCAB)
        for name in sorted(vocabularies):
            vocab = vocabularies[name]
            ds = write_strings(g, name, vocab.answers)
            ds.attrs["min_count"] = vocab.min_count
            ds.attrs["counted_from"] = json.dumps(vocab.counted_from)
            ds.attrs["normalized"] = vocab.normalized

        g = f.create_group(TASKS, track_order=True)
        for task in tasks:
            tg = g.create_group(task.name, track_order=True)
            for key, value in task.attrs.items():
                tg.attrs[key] = _attr(value)
            width = next(
                (
                    len(s.columns["image"][0])
                    for s in task.splits
                    if s.num_examples and isinstance(s.columns["image"][0], tuple)
                ),
                1,
            )
            for split in task.splits:
                write_split(tg, split, index, width)
        if finish is not None:
            finish(f, index)
        seal(f)  # every dataset's checksum, listed (unify.checksums; `unify verify`)
