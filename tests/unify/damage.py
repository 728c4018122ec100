"""Ways to damage a copy of a unified file, as a disk, a copy or a hand edit would.

Edits go through h5py (delete, retype, rewrite); byte flips go to the file itself, at an
offset HDF5 reports (a dataset's first chunk), or inside the global heap that holds the
variable-length strings (where nothing but a checksum notices a changed byte).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: Bytes of a variable-length datum in a dataset's chunk: length, heap address, index.
_VLEN_REF = struct.Struct("<IQI")


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def chunk_span(path: Path, dataset: str) -> tuple[int, int]:
    """(file offset, size) of the first chunk of ``dataset`` (or of its contiguous data)."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        if ds.chunks:
            info = ds.id.get_chunk_info(0)
            return info.byte_offset, info.size
        return ds.id.get_offset(), ds.id.get_storage_size()


def flip_in_chunk(path: Path, dataset: str, fraction: float = 0.5) -> None:
    """Flip every bit of one byte inside the first chunk of ``dataset``."""
    offset, size = chunk_span(path, dataset)
    flip_byte(path, offset + int(size * fraction))


def string_offset(path: Path, dataset: str, row: int) -> tuple[int, int]:
    """(file offset, length) of the bytes of string ``row`` of an uncompressed string
    dataset, found through its heap reference and the global heap collection."""
    offset, size = chunk_span(path, dataset)
    with h5py.File(path, "r") as f:
        rows_per_chunk = f[dataset].chunks[0]
    assert row < rows_per_chunk and size == rows_per_chunk * _VLEN_REF.size
    with open(path, "rb") as fh:
        fh.seek(offset + row * _VLEN_REF.size)
        length, collection, index = _VLEN_REF.unpack(fh.read(_VLEN_REF.size))
        fh.seek(collection)
        header = fh.read(16)
        assert header[:4] == b"GCOL", "not a global heap collection"
        at = collection + 16
        end = collection + struct.unpack("<Q", header[8:16])[0]
        while at < end:
            fh.seek(at)
            obj_index, _, _, obj_size = struct.unpack("<HHIQ", fh.read(16))
            if obj_index == index:
                assert obj_size == length
                return at + 16, length
            if obj_index == 0:  # free space
                break
            at += 16 + (obj_size + 7) // 8 * 8
    raise AssertionError(f"string {row} of {dataset} not found in its heap")


def change_string_byte(path: Path, dataset: str, row: int, position: int, new: bytes) -> None:
    """Overwrite one byte of string ``row`` in the heap: the value changes, nothing else."""
    offset, length = string_offset(path, dataset, row)
    assert 0 <= position < length
    with open(path, "r+b") as f:
        f.seek(offset + position)
        f.write(new)


def truncate(path: Path, fraction: float) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * fraction))


# --------------------------------------------------------------------- random damage
KINDS = ("flip", "flip-data", "truncate", "delete", "retype", "attr")
GARBAGE = ("{", "", "[1, 2", "null", "not json", "ééé", "1e999")


def objects_of(path: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(datasets, groups, (object, attribute) pairs) of a file: what ``damage`` picks from."""
    datasets: list[str] = []
    groups: list[str] = []
    with h5py.File(path, "r") as f:
        attrs: list[tuple[str, str]] = [("/", a) for a in f.attrs]

        def visit(name: str, obj: Any) -> None:
            (datasets if isinstance(obj, h5py.Dataset) else groups).append(name)
            attrs.extend((name, a) for a in obj.attrs)

        f.visititems(visit)
    return datasets, groups, attrs


def damage(path: Path, kind: str, rng: random.Random, objects: Any) -> str:
    """Damage ``path`` in place; a description of what was done."""
    datasets, groups, attrs = objects
    size = path.stat().st_size
    if kind == "flip":
        done = []
        with open(path, "r+b") as f:
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(size)
                f.seek(at)
                byte = f.read(1)[0]
                f.seek(at)
                f.write(bytes([byte ^ rng.randint(1, 255)]))
                done.append(at)
        return f"flip bytes at {done}"
    if kind == "flip-data":
        name = rng.choice(datasets)
        with h5py.File(path, "r") as f:
            ds = f[name]
            if ds.chunks and ds.id.get_num_chunks():
                info = ds.id.get_chunk_info(0)
                offset, length = info.byte_offset, info.size
            else:
                offset, length = ds.id.get_offset(), ds.id.get_storage_size()
        if offset is None or not length:
            return f"flip-data {name}: no data (nothing done)"
        at = offset + rng.randrange(length)
        with open(path, "r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ rng.randint(1, 255)]))
        return f"flip a byte of {name} at {at}"
    if kind == "truncate":
        keep = rng.randrange(size)
        with open(path, "r+b") as f:
            f.truncate(keep)
        return f"truncate to {keep} of {size} bytes"
    with h5py.File(path, "r+") as f:
        if kind == "delete":
            what = rng.choice(("dataset", "group", "attribute"))
            if what == "attribute":
                where, name = rng.choice(attrs)
                del f[where].attrs[name]
                return f"delete attribute {where}@{name}"
            name = rng.choice(datasets if what == "dataset" else groups)
            del f[name]
            return f"delete {what} {name}"
        if kind == "retype":
            name = rng.choice(datasets)
            values = f[name][()]
            del f[name]
            if values.dtype.kind == "O":
                new = np.arange(values.size).reshape(values.shape)
            elif values.dtype.kind == "f":
                new = values.astype(np.int64)
            else:
                new = values.astype(rng.choice((np.float64, np.int8, np.uint16)))
            f.create_dataset(name, data=new)
            return f"retype {name} {values.dtype} -> {new.dtype}"
        where, name = rng.choice(attrs)
        value: Any = rng.choice((*GARBAGE, -1, 10**12, 1.5, True))
        f[where].attrs[name] = value
        return f"set attribute {where}@{name} = {value!r}"
