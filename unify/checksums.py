"""Per-dataset checksums of a unified file: written at build time, compared on read.

HDF5 protects its own metadata with checksums (object headers, B-trees, heaps of the
v110 format), so a flipped byte there makes the object unreadable; but the data itself is
not protected. A flipped byte in a gzip-compressed chunk is caught by zlib, but one in an
uncompressed chunk or in the heap of variable-length strings silently changes a value:
a question, an answer, an image key, a link. Every dataset therefore carries the sha256 of
its logical content (the values as read back, not the file's bytes, so a repacked or
re-chunked copy keeps its checksums), and the root attribute ``checksums`` lists the
datasets that have one, so that a deleted dataset is noticed too.

The digest of a dataset (docs/schema.md, "Checksums"):

- numbers: the values in C order as little-endian bytes;
- strings: the UTF-8 values joined by NUL bytes (HDF5 strings cannot hold NUL, so the
  joining is unambiguous);

followed by a NUL byte and a descriptor ``<i4[3000]``, ``<f8[85,4]``, ``str[3000]``
(dtype and shape, so that a retyped or reshaped dataset does not match). The writer
computes it from the values it writes (``stamp``), which costs far less than reading
tens of millions of strings back; anything written without a stamp is read back once by
``seal`` at the end of the write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import h5py
import numpy as np

ALGORITHM = "sha256"
#: Dataset attribute holding the hex digest of the dataset's content.
ATTR = "sha256"
#: Root attribute: JSON ``{"algorithm": "sha256", "datasets": [sorted paths]}``.
ROOT_ATTR = "checksums"
#: Rows hashed per read when a dataset is read back (bounds the temporary objects).
BLOCK = 1 << 18


def is_string(dtype: np.dtype) -> bool:
    return h5py.check_string_dtype(dtype) is not None or dtype.kind == "O"


def descriptor(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """``<i4[3000]``: what the digest ends with, so dtype and shape are covered too."""
    tag = "str" if is_string(dtype) else np.dtype(dtype).newbyteorder("<").str
    return f"{tag}[{','.join(map(str, shape))}]".encode()


class Digest:
    """The digest of one dataset, fed block by block in row order."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._strings = 0

    def numbers(self, values: np.ndarray) -> None:
        le = values.dtype.newbyteorder("<")
        self._sha.update(np.ascontiguousarray(values, dtype=le).tobytes())

    def strings(self, joined: bytes, count: int) -> None:
        """``count`` values already joined by NUL bytes."""
        if count == 0:
            return
        if self._strings:
            self._sha.update(b"\0")
        self._sha.update(joined)
        self._strings += count

    def text(self, values: Iterable[Any]) -> None:
        """Values as ``str`` (what the writer holds) or ``bytes`` (what h5py reads back)."""
        items = list(values)
        if not items:
            return
        if isinstance(items[0], bytes):
            joined = b"\0".join(items)
        else:
            joined = "\0".join(items).encode("utf-8")
        self.strings(joined, len(items))

    def hexdigest(self, dtype: np.dtype, shape: tuple[int, ...]) -> str:
        sha = self._sha.copy()
        sha.update(b"\0" + descriptor(dtype, shape))
        return sha.hexdigest()


def digest_values(values: Any, dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """The digest of a whole dataset's values held in memory: a numpy array (numbers, or
    objects that are ``str``/``bytes``) or ``unify.columns.PackedStrings``."""
    d = Digest()
    data = getattr(values, "data", None)
    if isinstance(data, bytes) and hasattr(values, "offsets"):  # PackedStrings
        d.strings(_nul_joined(data, np.asarray(values.offsets)), len(values.offsets) - 1)
    elif is_string(dtype):
        d.text(np.asarray(values, dtype=object).reshape(-1).tolist())
    else:
        d.numbers(np.asarray(values))
    return d.hexdigest(dtype, shape)


def _nul_joined(data: bytes, offsets: np.ndarray) -> bytes:
    """Packed strings (one buffer and offsets) joined by NUL bytes, without a Python loop."""
    n = len(offsets) - 1
    if n <= 1:
        return data
    out = np.zeros(len(data) + n - 1, dtype=np.uint8)
    keep = np.ones(len(out), dtype=bool)
    keep[offsets[1:-1] + np.arange(n - 1)] = False
    out[keep] = np.frombuffer(data, dtype=np.uint8)
    return out.tobytes()


def digest_dataset(ds: h5py.Dataset) -> str:
    """The digest of a dataset, read back block by block (memory stays bounded)."""
    d = Digest()
    if ds.shape == ():
        return digest_values(np.asarray(ds[()]), ds.dtype, ())
    string = is_string(ds.dtype)
    for a in range(0, ds.shape[0], BLOCK):
        block = ds[a : a + BLOCK]
        if string:
            d.text(block.reshape(-1).tolist())
        else:
            d.numbers(block)
    return d.hexdigest(ds.dtype, ds.shape)


def stamped(ds: h5py.Dataset, values: Any) -> h5py.Dataset:
    """``ds`` with the digest of ``values`` (just written as ``ds``) recorded on it.

    Values that h5py had to convert (anything but ``str`` where strings belong) are read
    back instead, so the stamp always describes what the file holds.
    """
    try:
        digest = digest_values(values, ds.dtype, ds.shape)  # str.join refuses non-str
    except (TypeError, ValueError, UnicodeError):
        digest = digest_dataset(ds)
    ds.attrs[ATTR] = digest
    return ds


def restamp(ds: h5py.Dataset) -> None:
    """Record the checksum of what ``ds`` holds now, after a deliberate edit (otherwise
    the edit is indistinguishable from damage)."""
    ds.attrs[ATTR] = digest_dataset(ds)


def seal(f: h5py.File) -> None:
    """Stamp every dataset that has no checksum yet and list them all in the root
    attribute (called at the end of a build, and after a feature import)."""
    paths: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            if ATTR not in obj.attrs:
                obj.attrs[ATTR] = digest_dataset(obj)
            paths.append("/" + name)

    f.visititems(visit)
    f.attrs[ROOT_ATTR] = json.dumps({"algorithm": ALGORITHM, "datasets": sorted(paths)})
