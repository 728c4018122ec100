"""Reading named arrays from an uploaded ``.npz`` without trusting it.

``numpy.load`` on a participant's archive can be made to allocate terabytes (a ``.npy``
header is free to declare any shape: numpy allocates before reading and raises a
traceback), to inflate a small zip member into gigabytes (a zip bomb), or to unpickle
(object arrays, refused by ``allow_pickle=False`` only once the header was read). Here the
archive is checked before any array is allocated:

- every member's DECLARED uncompressed size, and their sum, against
  ``Limits.max_decompressed_bytes``;
- each ``.npy`` header, read with numpy's own header readers (``read_magic``,
  ``read_array_header_1_0/2_0``, which never allocate the array): an object dtype (a
  pickle) is refused; the declared shape x itemsize must equal the member's size;
- duplicate or encrypted members are refused.

Only then are the arrays read: a stored member (``np.savez``) as a view of the upload's
bytes after its CRC is checked (no copy), a compressed one in steps into its own buffer.
The caller checks shapes and dtypes against the ground truth from the headers alone
(``NpzArchive.headers``) before calling ``read``.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy

from evalserver.metrics.limits import Limits, format_size
from evalserver.metrics.problems import Problem, ProblemLog, ValidationError
from evalserver.metrics.upload import MemoryReader

__all__ = ["READ_ERRORS", "ArrayHeader", "NpzArchive"]

#: Bytes copied per step when reading an array.
_STEP = 1 << 24
#: What can go wrong inside zipfile / zlib / numpy's header parser on a hostile archive.
READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    SyntaxError,
    RecursionError,
    MemoryError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    IndexError,
    struct.error,
    tokenize.TokenError,
)


@dataclass(frozen=True)
class ArrayHeader:
    """What a member's ``.npy`` header declares (nothing was allocated yet)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # bytes of magic + header before the data

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzArchive:
    """The arrays ``keys`` of an ``.npz`` (zip) content, headers checked, data unread.

    Raises ``ValidationError`` for an unreadable archive or member, a missing array
    (location: the array's name), a duplicate, an object dtype, a header that does not fit
    the member, or declared sizes beyond the limit. Other members are never opened.
    """

    def __init__(self, data: bytes, keys: Sequence[str], limits: Limits) -> None:
        self._data = data
        try:
            self._zip = zipfile.ZipFile(MemoryReader(data))
            infos = self._zip.infolist()
        except READ_ERRORS as exc:
            raise ValidationError.one(f"not a readable .npz file: {_reason(exc)}") from None
        self._members = self._find(infos, keys)
        declared = sum(info.file_size for info in self._members.values())
        if declared > limits.max_decompressed_bytes:
            sizes = ", ".join(
                f"{key} {format_size(info.file_size)}" for key, info in self._members.items()
            )
            raise ValidationError.one(
                f"the .npz declares {format_size(declared)} of arrays ({sizes}), more than "
                f"the limit of {format_size(limits.max_decompressed_bytes)} "
                "(Limits.max_decompressed_bytes); nothing was decompressed"
            )
        self.headers = {key: self._header(key, info) for key, info in self._members.items()}

    def _find(
        self, infos: list[zipfile.ZipInfo], keys: Sequence[str]
    ) -> dict[str, zipfile.ZipInfo]:
        """Each key's member (``key.npy``, or ``key`` as numpy also accepts)."""
        problems = ProblemLog()
        held = sorted({info.filename.removesuffix(".npy") for info in infos})
        found: dict[str, zipfile.ZipInfo] = {}
        for key in keys:
            matches = [info for info in infos if info.filename in (f"{key}.npy", key)]
            if not matches:
                problems.add(f"the .npz has no array {key!r} (it holds {held[:20]})", key)
            elif len(matches) > 1:
                problems.add(
                    f"the .npz holds {len(matches)} members named {matches[0].filename!r}: "
                    "which one is meant is ambiguous",
                    key,
                )
            elif matches[0].flag_bits & 0x1:
                problems.add("the array is encrypted in the archive", key)
            else:
                found[key] = matches[0]
        problems.raise_if_any()
        return found

    def _header(self, key: str, info: zipfile.ZipInfo) -> ArrayHeader:
        try:
            with self._zip.open(info) as stream:
                version = npy.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = npy.read_array_header_1_0(stream)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = npy.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                offset = stream.tell()
        # numpy's header parser (ast, tokenize, dtype descriptors) on hostile bytes can raise
        # nearly anything: all of it means "not a readable header".
        except Exception as exc:
            raise ValidationError(
                [Problem(f"not a readable .npy array: {_reason(exc)}", key)]
            ) from None
        if dtype.hasobject:
            raise ValidationError(
                [
                    Problem(
                        f"dtype {dtype} holds Python objects (a pickle), which are never "
                        "loaded: save a numeric array",
                        key,
                    )
                ]
            )
        if any(d < 0 for d in shape):
            raise ValidationError([Problem(f"the .npy header declares shape {shape}", key)])
        header = ArrayHeader(tuple(int(d) for d in shape), dtype, bool(fortran), offset)
        held = info.file_size - offset
        if header.nbytes != held:
            raise ValidationError(
                [
                    Problem(
                        f"the .npy header declares shape {header.shape} of {dtype} "
                        f"({format_size(header.nbytes)}), but the member holds "
                        f"{format_size(max(held, 0))} of data",
                        key,
                    )
                ]
            )
        return header

    def read(self, key: str) -> np.ndarray:
        """The array ``key`` (a damaged member is a ``ValidationError`` naming it).

        A stored (uncompressed) member, as ``np.savez`` writes it, becomes a read-only view
        of the upload's bytes once its CRC is checked: no copy, so the file's memory is not
        paid twice. A compressed or misaligned one is read in steps into its own buffer.
        """
        header = self.headers[key]
        info = self._members[key]
        try:
            start = self._stored_data(info)
            if start is not None:
                offset = start + header.data_offset
                if offset % max(1, header.dtype.alignment) == 0:
                    return self._view(header, offset)
            return self._copy(header, info)
        except READ_ERRORS as exc:
            raise ValidationError(
                [Problem(f"cannot read the array: {_reason(exc)}", key)]
            ) from None

    def _stored_data(self, info: zipfile.ZipInfo) -> int | None:
        """Where a stored member's bytes start in the upload (its CRC checked), else None."""
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        at = info.header_offset
        if self._data[at : at + 4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("no local header where the directory says")
        name_length, extra_length = struct.unpack("<HH", self._data[at + 26 : at + 30])
        start = at + 30 + name_length + extra_length
        stop = start + info.file_size
        if info.compress_size != info.file_size or stop > len(self._data):
            raise zipfile.BadZipFile("the member runs past the end of the archive")
        if zlib.crc32(memoryview(self._data)[start:stop]) != info.CRC:
            raise zipfile.BadZipFile("bad CRC-32: the member is damaged")
        return start

    def _view(self, header: ArrayHeader, offset: int) -> np.ndarray:
        count = math.prod(header.shape)
        flat = np.frombuffer(self._data, dtype=header.dtype, count=count, offset=offset)
        order = "F" if header.fortran_order else "C"
        return flat.reshape(header.shape, order=order)

    def _copy(self, header: ArrayHeader, info: zipfile.ZipInfo) -> np.ndarray:
        raw = np.empty(header.nbytes, dtype=np.uint8)
        target = memoryview(raw)
        with self._zip.open(info) as stream:
            stream.seek(header.data_offset)
            done = 0
            while done < header.nbytes:
                chunk = stream.read(min(_STEP, header.nbytes - done))
                if not chunk:
                    raise EOFError("the member ends early")
                target[done : done + len(chunk)] = chunk
                done += len(chunk)
            if stream.read(1):
                raise ValueError("the member holds more data than its header declares")
        order = "F" if header.fortran_order else "C"
        return raw.view(header.dtype).reshape(header.shape, order=order)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."
