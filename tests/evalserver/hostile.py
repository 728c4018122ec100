"""Hostile and corrupted prediction files, built in memory, for the tests and the benchmark.

Bombs are built without doing the work they would cause: a gzip or deflate stream of N
zero bytes is one compressed block of zeros repeated (each ends with a full flush, so the
copies are independent), with a correct CRC; a zip member's declared size is patched into
its headers. Used by the tests (test_hostile.py) and benchmarks/bench_hostile_predictions.py.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_BLOCK = 1 << 20


def _deflate_zeros(n: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``n`` zero bytes (n a multiple of 1 MiB) and its CRC-32."""
    assert n % _BLOCK == 0
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(_BLOCK)) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.flush(zlib.Z_FINISH)
    crc = 0
    zeros = bytes(_BLOCK)
    for _ in range(n // _BLOCK):
        crc = zlib.crc32(zeros, crc)
    return block * (n // _BLOCK) + tail, crc


def zeros_gzip(n: int) -> bytes:
    """A valid gzip file of ``n`` zero bytes, about n / 1000 bytes long."""
    body, crc = _deflate_zeros(n)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + body + struct.pack("<II", crc, n & 0xFFFFFFFF)


def _header_bytes(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _ids_only() -> bytes:
    """A zip holding small ``caption_ids`` and ``image_ids`` (the bombs add ``scores``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("caption_ids.npy", _array_bytes(np.arange(3)))
        archive.writestr("image_ids.npy", _array_bytes(np.arange(3)))
    return buffer.getvalue()


def npz_zeros_bomb(n: int) -> bytes:
    """A real NPZ bomb: ``scores`` is a deflated member of ``n`` zero bytes (n a multiple
    of 1 MiB) under a consistent float32 header, about n / 1000 bytes on disk."""
    member = _deflated_member("scores.npy", _header_bytes((n // 4,), "<f4"), n)
    return _append_member(_ids_only(), member)


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Member:
    name: bytes
    data: bytes  # compressed
    crc: int
    compressed: int
    size: int
    method: int


def _deflated_member(name: str, prefix: bytes, zeros: int) -> _Member:
    """``prefix`` followed by ``zeros`` zero bytes (a multiple of 1 MiB), deflated."""
    assert zeros % _BLOCK == 0
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = packer.compress(prefix) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(bytes(_BLOCK)) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    zero_block = bytes(_BLOCK)
    for _ in range(zeros // _BLOCK):
        crc = zlib.crc32(zero_block, crc)
    data = head + block * (zeros // _BLOCK) + tail
    return _Member(name.encode(), data, crc, len(data), len(prefix) + zeros, 8)


def _append_member(archive: bytes, member: _Member) -> bytes:
    """``archive`` (a zip without zip64) with one more member, written by hand so that its
    sizes can be anything up to 4 GiB."""
    end = archive.rindex(b"PK\x05\x06")
    (_, _, _, count, _, cd_size, cd_offset, _) = struct.unpack("<IHHHHIIH", archive[end : end + 22])
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            member.method,
            0,
            0,
            member.crc,
            member.compressed,
            member.size,
            len(member.name),
            0,
        )
        + member.name
    )
    offset = cd_offset
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            member.method,
            0,
            0,
            member.crc,
            member.compressed,
            member.size,
            len(member.name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + member.name
    )
    entries = archive[cd_offset : cd_offset + cd_size]
    new_offset = offset + len(local) + len(member.data)
    eocd = struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        count + 1,
        count + 1,
        cd_size + len(central),
        new_offset,
        0,
    )
    return archive[:cd_offset] + local + member.data + entries + central + eocd


def npz_declaring(scores_bytes: int) -> bytes:
    """An NPZ whose ``scores`` member DECLARES ``scores_bytes`` (its header a consistent
    float32 shape) but holds 64 bytes: nothing must be allocated or inflated."""
    header = _header_bytes((scores_bytes // 4,), "<f4")
    data = header + bytes(64)
    member = _Member(
        b"scores.npy", data, zlib.crc32(data), len(data), len(header) + scores_bytes, 0
    )
    return _append_member(_ids_only(), member)


def npz_huge_shape() -> bytes:
    """Every array's header declares a huge shape; each member holds 64 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, shape, descr in (
            ("scores", (10**6, 10**6), "<f8"),
            ("caption_ids", (10**6,), "<i8"),
            ("image_ids", (10**6,), "<i8"),
        ):
            archive.writestr(f"{name}.npy", _header_bytes(shape, descr) + bytes(64))
    return buffer.getvalue()


class Tripwire:
    """Unpickling it would create ``path``: proof that no pickle ever ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.path, "w"))


def npz_object(tripwire: str) -> bytes:
    """``scores`` as an object array whose pickle would create ``tripwire``."""
    scores = np.empty((1, 1), dtype=object)
    scores[0, 0] = Tripwire(tripwire)
    buffer = io.BytesIO()
    np.savez(buffer, scores=scores, caption_ids=np.arange(1), image_ids=np.arange(1))
    return buffer.getvalue()


def pickle_file() -> bytes:
    return pickle.dumps([{"question_id": 1, "answer": "yes"}], protocol=4)


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_record(depth: int) -> bytes:
    """A valid record with an extra key nested ``depth`` levels deep."""
    return b'[{"question_id": 1, "answer": "yes", "extra": ' + deep_json(depth) + b"}]"


def gzip_members(count: int) -> bytes:
    return gzip.compress(b"") * count
