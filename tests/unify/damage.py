"""Ways to damage a copy of a unified file, as a disk, a copy or a hand edit would.

Edits go through h5py (delete, retype, rewrite); byte flips go to the file itself, at an
offset HDF5 reports (a dataset's first chunk), or inside the global heap that holds the
variable-length strings (where nothing but a checksum notices a changed byte).
"""

from __future__ import annotations

import struct
from pathlib import Path

import h5py

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
