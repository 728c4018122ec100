"""Columns of a split held in memory, so that a random example costs microseconds.

An HDF5 read costs tens of microseconds however small (selection, chunk lookup, and for a
compressed chunk of 64K rows, inflating all of it), and an example touches ten columns or
more. The split's columns are small next to region features, so the reader loads each one
once per process, on first use, and serves examples from numpy.

Strings are the exception to "load as numpy": a Python ``str`` per value costs ~50 bytes
plus an 8-byte pointer, and touching it after ``fork`` writes its reference count, which
un-shares the page in every DataLoader worker. ``PackedStrings`` keeps one UTF-8 buffer
and int64 offsets instead, decoding a value only when an example asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from unify.errors import SchemaError
from unify.schema import OFFSETS
from unify.structure import READ_ERRORS, check, detail, offsets_problems

#: Rows read per HDF5 call while loading a whole column (bounds the temporary objects).
LOAD_BLOCK = 1 << 18


class PackedStrings:
    """Variable-length strings as one UTF-8 buffer and offsets.

    ``shape`` is the per-row shape (``()`` for a ``[N]`` column), so ``[N, k]`` string
    columns work too: row ``i`` owns strings ``i * k : (i + 1) * k``.
    """

    __slots__ = ("_at", "data", "offsets", "shape", "where", "width")

    def __init__(
        self, data: bytes, offsets: np.ndarray, shape: tuple[int, ...] = (), where: str = ""
    ) -> None:
        self.data = data
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self._at = memoryview(self.offsets)  # indexes to Python ints, ~5x faster than numpy
        self.shape = shape
        self.width = int(np.prod(shape, dtype=np.int64)) if shape else 1
        self.where = where  # "file: /hdf5/path", for the message of a damaged value

    @classmethod
    def from_bytes(cls, values: Iterable[bytes], shape: tuple[int, ...] = ()) -> PackedStrings:
        parts = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values]
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(b"".join(parts), offsets, shape)

    @classmethod
    def from_dataset(cls, ds: h5py.Dataset, sel: slice = slice(None)) -> PackedStrings:
        """Read ``ds[sel]`` (rows) block by block, never holding all of it as objects."""
        start, stop, _ = sel.indices(ds.shape[0])
        stop = max(start, stop)
        shape = tuple(ds.shape[1:])
        chunks: list[bytes] = []
        lengths: list[np.ndarray] = []
        for a in range(start, stop, LOAD_BLOCK):
            raw = ds[a : min(stop, a + LOAD_BLOCK)].reshape(-1)  # object array of bytes
            lengths.append(np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)))
            chunks.append(b"".join(raw))
        offsets = np.zeros(sum(len(x) for x in lengths) + 1, dtype=np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        return cls(b"".join(chunks), offsets, shape, f"{ds.file.filename}: {ds.name}")

    def __len__(self) -> int:
        return (len(self.offsets) - 1) // self.width

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.offsets.nbytes

    def string(self, k: int) -> str:
        """The k-th string of the flat buffer."""
        at = self._at
        try:
            return self.data[at[k] : at[k + 1]].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._damaged(k, exc) from None

    def strings(self, a: int, b: int) -> np.ndarray:
        """Flat strings ``a:b`` as an object array of ``str`` (what h5py's asstr gives)."""
        out = np.empty(max(0, b - a), dtype=object)
        data, o = self.data, self.offsets[a : b + 1].tolist()
        try:
            for j in range(len(out)):
                out[j] = data[o[j] : o[j + 1]].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._damaged(a + j, exc) from None
        return out

    def _damaged(self, k: int, exc: UnicodeDecodeError) -> SchemaError:
        """Bytes that are not UTF-8 can only come from damage (HDF5 stored UTF-8)."""
        where = self.where or "a packed string column"
        return SchemaError(
            f"{where}: value {k} is not UTF-8 text, the file is damaged ({exc.reason})"
        )

    def row(self, i: int) -> Any:
        """Row ``i``: a ``str``, or nested lists of ``str`` for ``[N, k]`` columns."""
        if not self.shape:
            return self.string(i)
        return self.strings(i * self.width, (i + 1) * self.width).reshape(self.shape).tolist()

    def rows(self, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` as an object array of shape ``[b - a, *shape]``."""
        flat = self.strings(a * self.width, b * self.width)
        return flat.reshape((max(0, b - a), *self.shape))


Values = np.ndarray | PackedStrings


def _is_string(ds: h5py.Dataset) -> bool:
    return h5py.check_string_dtype(ds.dtype) is not None


def load_values(ds: h5py.Dataset, sel: slice = slice(None), packed: bool = True) -> Values:
    """Rows ``sel`` of a dataset: numbers as numpy, strings packed (kept for the process)
    or, for a block read once, an object array of ``str``."""
    if _is_string(ds):
        return PackedStrings.from_dataset(ds, sel) if packed else ds.asstr()[sel]
    return ds[sel]


def _value_slice(values: Values, a: int, b: int) -> np.ndarray:
    return values.rows(a, b) if isinstance(values, PackedStrings) else values[a:b]


def _nbytes(values: Values) -> int:
    return values.nbytes


@dataclass
class Plain:
    """A plain column: one value (scalar, fixed-shape row or string) per example."""

    values: Values

    def value(self, i: int) -> Any:
        """Example i's value as plain Python (scalars, lists, ``str``), as the reader gives."""
        v = self.values
        if isinstance(v, PackedStrings):
            return v.row(i)
        item = v[i]
        if isinstance(item, np.ndarray):
            return item.tolist()
        return item if isinstance(item, str) else item.item()

    @property
    def nbytes(self) -> int:
        return _nbytes(self.values)

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class Ragged:
    """A ragged column: offsets and value arrays sharing them (example i owns
    ``offsets[i]:offsets[i+1]``; ``base`` is subtracted when the offsets belong to a block
    cut out of a longer column)."""

    offsets: np.ndarray
    values: dict[str, Values]
    base: int = 0

    def bounds(self, i: int) -> tuple[int, int]:
        o = self.offsets
        return int(o[i]) - self.base, int(o[i + 1]) - self.base

    def value(self, i: int) -> Any:
        """A dict of arrays (strings as object arrays of ``str``); a ragged column with a
        single ``values`` array gives a list of ``str`` for strings, an array for numbers."""
        a, b = self.bounds(i)
        if len(self.values) == 1 and "values" in self.values:
            only = self.values["values"]
            if isinstance(only, PackedStrings):
                return only.rows(a, b).tolist()
            return only[a:b].tolist() if only.dtype == object else only[a:b]
        return {k: _value_slice(v, a, b) for k, v in self.values.items()}

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + sum(_nbytes(v) for v in self.values.values())

    def __len__(self) -> int:
        return len(self.offsets) - 1


Column = Plain | Ragged


def load_column(
    item: h5py.Dataset | h5py.Group, start: int = 0, stop: int | None = None, packed: bool = True
) -> Column:
    """Rows ``start:stop`` of a plain dataset or a ragged group, in memory (``packed``:
    strings as ``PackedStrings``, else as an object array of ``str``).

    A read that fails (damaged data) is a ``SchemaError`` naming the file and dataset, and
    ragged offsets are checked (from 0, monotone, ending at the values' length) before they
    are used to slice anything.
    """
    try:
        if isinstance(item, h5py.Group):
            names = [k for k in item if k != OFFSETS]
            n = item[OFFSETS].shape[0] - 1
            stop = n if stop is None else stop
            offsets = item[OFFSETS][start : stop + 1]
            n_values = item[names[0]].shape[0] if names else 0
            where = f"{item.name}/{OFFSETS}"
            problems = offsets_problems(where, offsets, n_values, start == 0, stop == n)
            check(item.file.filename, problems)
            a, b = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
            values = {k: load_values(item[k], slice(a, b), packed) for k in names}
            return Ragged(offsets, values, base=a)
        stop = item.shape[0] if stop is None else stop
        return Plain(load_values(item, slice(start, stop), packed))
    except READ_ERRORS as exc:
        raise SchemaError(
            f"{item.file.filename}: {item.name}: cannot be read, the file is damaged "
            f"({detail(exc)})"
        ) from None


class ColumnCache:
    """Whole columns of one split, loaded on first use and kept for the process.

    Holds only numpy arrays and packed strings (no HDF5 object), so it can be inherited by
    forked DataLoader workers and shared copy-on-write, whereas a file handle cannot.
    """

    def __init__(self) -> None:
        self._columns: dict[str, Column] = {}

    def get(self, group: h5py.Group, name: str) -> Column:
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = load_column(group[name])
        return column

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    @property
    def nbytes(self) -> int:
        """Bytes held (numpy buffers and packed strings; Python object headers excluded)."""
        return sum(c.nbytes for c in self._columns.values())

    def sizes(self) -> Mapping[str, int]:
        return {name: c.nbytes for name, c in self._columns.items()}


_preadv = getattr(os, "preadv", None)


class DirectRows:
    """Row ranges of an uncompressed 2-D dataset, read with ``os.pread`` at their offsets.

    Region features are read per image at random, and through HDF5 a read of a few rows
    costs ~250 us on this build whatever the chunk cache (selection set-up and chunk lookup
    dominate), against ~5 us for a ``pread`` of the same bytes. The byte offset of every
    chunk comes from HDF5 itself (``H5Dget_chunk_info``) once, when the set is opened; a
    dataset that is compressed, filtered, partly unallocated or laid out otherwise, or
    whose first row does not read back identically, is read through HDF5 instead.
    ``pread`` does not move a shared file position, so the descriptor survives ``fork``.
    """

    def __init__(self, ds: h5py.Dataset, path: str) -> None:
        self.ds = ds
        self.dtype = ds.dtype
        self.row_shape = tuple(ds.shape[1:])
        self.row_bytes = ds.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        self.chunk_rows, self.starts = _chunk_plan(ds)
        self.fd: int | None = None
        if self.starts is not None:
            self.fd = os.open(path, os.O_RDONLY)
            if len(ds) and not np.array_equal(self._pread(0, 1), ds[0:1]):
                self.close()  # offsets not what we think: stay on the safe path
                self.starts = None

    @property
    def direct(self) -> bool:
        return self.starts is not None

    def read(self, start: int, end: int) -> np.ndarray:
        if self.starts is None:
            return self.ds[start:end]
        return self._pread(start, end)

    def _pread(self, start: int, end: int) -> np.ndarray:
        """Read straight into a new (writable) array, one ``preadv`` per chunk touched."""
        assert self.fd is not None and self.starts is not None
        out = np.empty((end - start, *self.row_shape), dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        rows, rb, a = self.chunk_rows, self.row_bytes, start
        while a < end:
            k = a // rows
            b = min(end, (k + 1) * rows)
            at, want = (a - start) * rb, (b - a) * rb
            offset = int(self.starts[k]) + (a - k * rows) * rb
            if _preadv is not None:
                got = _preadv(self.fd, [view[at : at + want]], offset)
            else:  # no preadv on this platform: one copy more
                data = os.pread(self.fd, want, offset)
                view[at : at + len(data)] = data
                got = len(data)
            if got != want:
                raise OSError(f"{self.ds.file.filename}: short read in {self.ds.name}")
            a = b
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _chunk_plan(ds: h5py.Dataset) -> tuple[int, np.ndarray | None]:
    """(rows per chunk, file offset of each chunk in row order), or (0, None) when the
    dataset cannot be read directly."""
    n = ds.shape[0] if ds.ndim else 0
    dcpl = ds.id.get_create_plist()
    if ds.ndim < 1 or dcpl.get_nfilters() or ds.dtype.hasobject or ds.file.userblock_size:
        return 0, None
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        return (
            (max(n, 1), np.asarray([offset], dtype=np.int64)) if offset is not None else (0, None)
        )
    if layout != h5py.h5d.CHUNKED or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return 0, None
    rows = ds.chunks[0]
    count = -(-n // rows)
    if ds.id.get_num_chunks() != count:
        return 0, None
    starts = np.full(count, -1, dtype=np.int64)

    def note(info: Any) -> None:
        starts[info.chunk_offset[0] // rows] = info.byte_offset

    if hasattr(ds.id, "chunk_iter"):  # one pass (HDF5 >= 1.12.3)
        ds.id.chunk_iter(note)
    else:
        for i in range(count):
            note(ds.id.get_chunk_info(i))
    if (starts < 0).any():
        return 0, None
    return rows, starts
