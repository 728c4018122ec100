"""Reading an upload within bounds: bytes, gzip, what a file is, text encoding, JSON shape.

Everything here runs on a participant's file before it is parsed, and every failure is a
``ValidationError`` that says what is wrong and where (byte, line, column, record), never
a traceback:

- ``read_upload``: the file's bytes, at most ``Limits.max_bytes`` stored; gzip (detected
  by content) is decompressed as a stream in bounded steps and stops at
  ``Limits.decompressed_limit`` (a 4 MB gzip bomb no longer takes 8 GB of memory);
- ``what_binary``: an HDF5 file, a pickle, an image ... named instead of "not valid JSON";
- ``utf8_error``: the real byte position of invalid UTF-8 (a JSON parser says "char 0");
- ``measure_json``: nesting depth, number of top-level records and of values, counted by
  a vectorised scan of the raw bytes (strings and escapes respected) before any Python
  object is built, so that 1 GB of ``[{},{},...]`` is refused instead of parsed;
- ``load_json``: ``orjson.loads`` whose errors name the record and the real position;
- ``record_spans``: the bytes of given records, to quote a number exactly as written.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from evalserver.metrics.limits import Bounds, Limits, format_size
from evalserver.metrics.problems import Problem, ValidationError

__all__ = [
    "GZIP_MAGIC",
    "JsonShape",
    "MemoryReader",
    "Source",
    "first_byte",
    "line_column",
    "load_json",
    "measure_json",
    "read_upload",
    "record_of",
    "record_spans",
    "utf8_error",
    "what_binary",
]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
#: Bytes handed to zlib per step, and most bytes it may return per step.
_IN_STEP = 1 << 18
_OUT_STEP = 1 << 20
#: Decompressed bytes kept on the first pass: this many per stored byte, plus a base.
_KEEP_RATIO, _KEEP_BASE = 16, 1 << 24
#: Concatenated gzip members are fine (bgzip writes one per 64 KiB), but each costs a few
#: microseconds: past the first few, each must bring at least this much content.
_FREE_MEMBERS, _MEMBER_BYTES = 16, 4096
#: Bytes read from a stream per step, and scanned per step (bounds temporary arrays).
_READ_STEP = 1 << 24
_SCAN_STEP = 1 << 22
_COUNT_STEP = 1 << 22


# --------------------------------------------------------------------------- bytes


def read_upload(source: Source, limits: Limits) -> bytes:
    """The file's content: read within ``limits.max_bytes``, gunzipped (by content, not by
    name) within ``limits.decompressed_limit``. A missing file is the caller's error
    (``OSError``), not a problem of the submission; an empty one is a problem."""
    stored = _read_stored(source, limits.max_bytes)
    if not stored:
        raise ValidationError.one("the file is empty (0 bytes)")
    if stored[:2] != GZIP_MAGIC:
        return stored
    data = _gunzip(stored, limits)
    if not data:
        raise ValidationError.one("the file is empty once decompressed (0 bytes in the gzip)")
    return data


def _too_big(size: int | None, limit: int) -> ValidationError:
    if size is None:
        return ValidationError.one(
            f"the file is larger than the limit of {format_size(limit)} (Limits.max_bytes)"
        )
    return ValidationError.one(
        f"the file is {format_size(size)}, more than the limit of {format_size(limit)} "
        "(Limits.max_bytes)"
    )


def _read_stored(source: Source, limit: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        # Content already in memory is used as is (a bytearray, e.g. gunzipped, too).
        data = bytes(source) if isinstance(source, memoryview) else source
        if len(data) > limit:
            raise _too_big(len(data), limit)
        return data
    if hasattr(source, "read"):
        return _read_stream(source, limit)  # type: ignore[arg-type]
    with Path(source).open("rb") as handle:  # type: ignore[arg-type]
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise _too_big(size, limit)
        if size == 0:  # not a regular file (a FIFO), or empty: read it in bounded steps
            return _read_stream(handle, limit)
        data = handle.read(size)  # one buffer the size of the file, no copy
        extra = handle.read(1)
        if not extra:
            return data
        if len(data) + 1 > limit:  # it grew while read
            raise _too_big(None, limit)
        return data + extra + _read_stream(handle, limit - len(data) - 1)


def _read_stream(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes; one more means too big (a FIFO or a growing file alike)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_STEP, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_big(None, limit)
    return b"".join(chunks)


def _gunzip(stored: bytes, limits: Limits) -> bytes:
    """Every gzip member of ``stored``, decompressed in steps of at most 1 MiB of output.

    One pass keeps the output while it stays under ``_KEEP_RATIO`` times the stored size
    (files compress far less: floats about 1.1x, text 5-15x); past that it only counts,
    stops as soon as the limit is passed (a bomb costs time bounded by the limit, and
    memory bounded by the file's size), and a second pass keeps what fits the limit.
    """
    limit = limits.decompressed_limit(len(stored))
    keep = _KEEP_RATIO * len(stored) + _KEEP_BASE
    out = bytearray()  # grown in place (no final copy: the content is returned as is)
    size = 0
    for chunk in _gunzip_steps(stored, limit, limits):
        size += len(chunk)
        if size <= keep:
            out += chunk
        elif out:
            out = bytearray()  # a high ratio: count the rest, keep nothing
    if size <= keep:
        return out  # type: ignore[return-value]  # a bytearray serves every reader here
    full = bytearray(size)
    done = 0
    for chunk in _gunzip_steps(stored, limit, limits):
        full[done : done + len(chunk)] = chunk
        done += len(chunk)
    return full  # type: ignore[return-value]


def _gunzip_steps(stored: bytes, limit: int, limits: Limits) -> Iterator[bytes]:
    size = members = 0
    view = memoryview(stored)
    start = 0
    try:
        while True:
            unzip = zlib.decompressobj(wbits=31)  # a gzip header and trailer (CRC) required
            position = start
            pending: bytes | memoryview = b""
            while not unzip.eof:
                if not pending:
                    if position >= len(stored):
                        raise ValidationError.one(
                            "not a valid gzip file: the compressed stream ends early "
                            "(a truncated upload?)"
                        )
                    pending = view[position : position + _IN_STEP]
                    position += len(pending)
                chunk = unzip.decompress(pending, _OUT_STEP)
                pending = unzip.unconsumed_tail
                size += len(chunk)
                if size > limit:
                    raise _bomb(limit, limits, len(stored))
                yield chunk
            start = position - len(unzip.unused_data)  # the next member, if any
            if start >= len(stored):
                return
            members += 1
            if members > _FREE_MEMBERS and members * _MEMBER_BYTES > size:
                raise ValidationError.one(
                    f"not a valid gzip file: {members:,} concatenated gzip members for only "
                    f"{size:,} bytes of content (at most one per {format_size(_MEMBER_BYTES)})"
                )
            if stored[start : start + 2] != GZIP_MAGIC:
                if not stored[start:].strip(b"\0"):  # gzip(1) tolerates zero padding
                    return
                raise ValidationError.one(
                    f"not a valid gzip file: {len(stored) - start:,} bytes of something else "
                    "after the compressed data"
                )
    except zlib.error as exc:
        raise ValidationError.one(f"not a valid gzip file: {exc}") from None


def _bomb(limit: int, limits: Limits, stored: int) -> ValidationError:
    if limit == limits.max_decompressed_bytes:
        why = "Limits.max_decompressed_bytes"
    else:
        why = (
            f"{limits.max_expansion} times its compressed size of {format_size(stored)}, "
            "Limits.max_expansion: a compression bomb?"
        )
    return ValidationError.one(
        f"the decompressed file is larger than {format_size(limit)} ({why}); "
        "decompression was stopped there"
    )


# --------------------------------------------------------------------------- what it is

#: (offset, magic bytes, what a file starting with them is)
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89HDF\r\n\x1a\n", "an HDF5 file (a unified data file?)"),
    (0, b"PK\x03\x04", "a zip archive (an .npz?)"),
    (0, b"PK\x05\x06", "an empty zip archive"),
    (0, b"\x93NUMPY", "a NumPy .npy array"),
    (0, b"\x80\x02", "a Python pickle"),
    (0, b"\x80\x03", "a Python pickle"),
    (0, b"\x80\x04\x95", "a Python pickle"),
    (0, b"\x80\x05\x95", "a Python pickle"),
    (0, b"\xfd7zXZ\x00", "xz-compressed data (only gzip is read)"),
    (0, b"(\xb5/\xfd", "zstd-compressed data (only gzip is read)"),
    (0, b"7z\xbc\xaf'\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"%PDF-", "a PDF document"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"\x7fELF", "an executable"),
    (0, b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (0, b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
    (257, b"ustar", "a tar archive"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def what_binary(data: bytes) -> str | None:
    """What a file of a known non-text kind is ("an HDF5 file ..."), else None."""
    for offset, magic, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if _BZIP2.match(data[:10]):
        return "bzip2-compressed data (only gzip is read)"
    return None


def refuse_binary(data: bytes, expected: str, *, allowed: tuple[str, ...] = ()) -> None:
    """A ``ValidationError`` if ``data`` is a known binary kind (other than ``allowed``
    magic prefixes): "this is an HDF5 file ..., not a VQA results JSON"."""
    if any(data.startswith(magic) for magic in allowed):
        return
    kind = what_binary(data)
    if kind is not None:
        raise ValidationError.one(f"this is {kind}, not {expected}")


# --------------------------------------------------------------------------- text


def line_column(data: bytes, position: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``position``."""
    line = data.count(b"\n", 0, position) + 1
    start = data.rfind(b"\n", 0, position) + 1
    column = 1  # + the characters before it on its line: bytes that start a UTF-8 sequence
    for base in range(start, position, _SCAN_STEP):
        chunk = np.frombuffer(data, np.uint8, min(_SCAN_STEP, position - base), base)
        column += int(np.count_nonzero((chunk & 0xC0) != 0x80))
    return line, column


def utf8_error(data: bytes) -> tuple[int, str] | None:
    """(byte position, reason) of the first invalid UTF-8 sequence, else None.

    Decoded in steps (memory stays small); an encoded surrogate (``ED A0 80``) is invalid
    UTF-8 here as everywhere.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _SCAN_STEP):
        buffered = len(decoder.getstate()[0])
        stop = start + _SCAN_STEP
        try:
            decoder.decode(view[start:stop], final=stop >= len(data))
        except UnicodeDecodeError as exc:
            return start - buffered + exc.start, exc.reason
    return None


def utf8_problem(data: bytes, position: int, reason: str, where: str | None = None) -> Problem:
    line, column = line_column(data, position)
    shown = data[position : position + 4].hex(" ")
    return Problem(
        f"not UTF-8 text at byte {position:,} (line {line}, column {column}): {reason} in "
        f"the bytes {shown}",
        where,
    )


# --------------------------------------------------------------------------- JSON shape

# Byte classes of the structural scan: 1 opens, 2 closes, 3 separates; and the change of
# nesting depth each class makes.
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[[ord("["), ord("{")]] = 1
_CLASS[[ord("]"), ord("}")]] = 2
_CLASS[ord(",")] = 3
_DELTA = np.array([0, 1, -1, 0], dtype=np.int8)
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_SPACE = re.compile(rb"[ \t\r\n]*")


@dataclass(frozen=True)
class _Step:
    """One step of the scan: per byte, its class outside strings (0 inside a string or
    not structural) and the nesting depth after it."""

    base: int  # offset of the step in the file
    classes: np.ndarray  # uint8 per byte
    depths: np.ndarray  # int32 per byte

    def top_separators(self) -> np.ndarray:
        """Bool per byte: a comma between top-level records."""
        return (self.classes == 3) & (self.depths == 1)


def _structure(data: bytes, stop: int | None = None) -> Iterator[_Step]:
    """The structure of ``data[:stop]`` outside JSON strings, in steps of 4 MiB.

    Vectorised per byte: a quote is escaped when an odd run of backslashes precedes it; a
    byte is inside a string when the unescaped quotes up to it are odd in number (an
    exclusive-or scan). Invalid JSON (a backslash outside a string) may confuse the count;
    the parser reports such a file anyway.
    """
    end = len(data) if stop is None else min(stop, len(data))
    parity = 0  # unescaped quotes so far, mod 2
    escape_first = False  # the previous step ended with an unfinished escape
    depth = 0
    for base in range(0, end, _SCAN_STEP):
        chunk = np.frombuffer(data, np.uint8, min(_SCAN_STEP, end - base), base)
        quotes = chunk == _QUOTE
        slashes = np.flatnonzero(chunk == _BACKSLASH)
        if escape_first and len(slashes) and slashes[0] == 0:
            slashes = slashes[1:]  # this backslash is itself escaped
        escaped = np.zeros(0, dtype=np.int64)
        if len(slashes):
            breaks = np.flatnonzero(np.diff(slashes) != 1)
            starts = slashes[np.r_[0, breaks + 1]]
            ends = slashes[np.r_[breaks, len(slashes) - 1]]
            escaped = ends[(ends - starts) % 2 == 0] + 1  # odd run: escapes the next byte
        if escape_first:
            escaped = np.r_[0, escaped]
        escape_first = bool(len(escaped)) and escaped[-1] == len(chunk)
        if len(escaped):
            quotes[escaped[escaped < len(chunk)]] = False
        inside = np.bitwise_xor.accumulate(quotes.view(np.uint8))
        if parity:
            inside ^= 1
        parity = int(inside[-1])
        classes = _CLASS[chunk]
        classes[inside.view(bool)] = 0
        depths = np.cumsum(_DELTA[classes], dtype=np.int32)
        depths += depth
        depth = int(depths[-1])
        yield _Step(base, classes, depths)


@dataclass(frozen=True)
class JsonShape:
    """What a JSON text holds, counted without parsing it.

    ``records``: elements of the top-level array (None when the top level is not an
    array); ``values``: about how many values there are; ``depth``: the deepest nesting
    seen; ``deep_at``: the byte where nesting first passed the limit, ``deep_record`` the
    record holding it; ``scanned``: bytes looked at (the scan stops at the first excess).
    """

    records: int | None
    values: int
    depth: int
    scanned: int
    deep_at: int | None = None
    deep_record: int | None = None


def measure_json(
    data: bytes,
    max_depth: int,
    max_values: int | None = None,
    max_records: int | None = None,
) -> JsonShape:
    """Depth, records and values of ``data``; stops at the first byte nested deeper than
    ``max_depth``, and once more than ``max_values`` values or ``max_records`` records
    were counted (the counts then say "more than")."""
    is_array = first_byte(data) == b"["
    first = _first_record(data) if is_array else None
    has_records = first is not None
    commas = opens = depth = records = 0
    scanned = 0
    for step in _structure(data):
        scanned = step.base + len(step.classes)
        top = step.top_separators()
        peak = int(step.depths.max())
        if peak > max_depth:
            at = int(np.argmax(step.depths > max_depth))
            records += int(np.count_nonzero(top[:at]))
            record = records + 1 if has_records else None
            return JsonShape(
                records if is_array else None,
                commas + opens,
                peak,
                step.base + at + 1,
                step.base + at,
                record,
            )
        depth = max(depth, peak)
        commas += int(np.count_nonzero(step.classes == 3))
        opens += int(np.count_nonzero(step.classes == 1))
        records += int(np.count_nonzero(top))
        if max_values is not None and commas + opens > max_values:
            break
        if max_records is not None and records > max_records:
            break
    if is_array:
        records = records + 1 if has_records else 0
    return JsonShape(records if is_array else None, commas + opens + 1, depth, scanned)


def first_byte(data: bytes) -> bytes:
    """The first byte after leading JSON whitespace (b"" if none), without copying."""
    position = _SPACE.match(data).end()  # type: ignore[union-attr]  # "*" always matches
    return bytes(data[position : position + 1])


def _first_record(data: bytes) -> int | None:
    """Byte offset of the first element of the top-level array, None if it is empty."""
    start = data.index(b"[") + 1
    match = _SPACE.match(data, start)
    position = match.end() if match else start
    if position >= len(data) or data[position : position + 1] == b"]":
        return None
    return position


def record_of(data: bytes, position: int) -> int | None:
    """The 1-based top-level record that holds byte ``position`` (None: not in one)."""
    if first_byte(data) != b"[":
        return None
    first = _first_record(data)
    if first is None or position < first:
        return None
    records = 1
    for step in _structure(data, position):
        records += int(np.count_nonzero(step.top_separators()))
    return records


def record_spans(data: bytes, numbers: set[int]) -> dict[int, tuple[int, int]]:
    """Byte spans ``(start, stop)`` of the top-level records ``numbers`` (1-based)."""
    first = _first_record(data) if first_byte(data) == b"[" else None
    if first is None or not numbers:
        return {}
    bounds = [first]
    wanted = max(numbers)
    for step in _structure(data):
        ends = step.top_separators() | ((step.classes == 2) & (step.depths == 0))
        bounds.extend((np.flatnonzero(ends) + step.base + 1).tolist())
        if len(bounds) > wanted:
            break
    return {n: (bounds[n - 1], bounds[n] - 1) for n in numbers if n < len(bounds)}


class MemoryReader(io.RawIOBase):
    """A seekable binary file over bytes in memory, without the copy ``io.BytesIO`` makes of
    a bytearray (``zipfile`` reads an NPZ through it)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._position : self._position + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position


class _Literal(str):
    """A number as written in the file (json's parse_float / big parse_int hook)."""


def exact_records(data: bytes, numbers: set[int]) -> dict[int, Any]:
    """Records ``numbers`` parsed again with numbers kept as written: integers of any size
    as ``int`` (under 100 digits) and everything else as its text (``_Literal``), so that a
    message can quote ``1180591620717411303424`` instead of ``1.1805916207174113e+21``."""
    import json

    out: dict[int, Any] = {}
    for n, (start, stop) in record_spans(data, numbers).items():
        try:
            out[n] = json.loads(
                data[start:stop],
                parse_float=_Literal,
                parse_int=lambda s: int(s) if len(s) < 100 else _Literal(s),
            )
        except (ValueError, RecursionError):
            continue
    return out


def is_literal(value: Any) -> bool:
    return isinstance(value, _Literal)


# --------------------------------------------------------------------------- JSON parse


def load_json(data: bytes, bounds: Bounds, what: str) -> Any:
    """``data`` parsed, once its size in values and records is known to fit ``bounds``;
    every failure is a ``ValidationError`` naming the record and the position.

    Fast path: counting the bytes ``,`` ``[`` ``{`` (C speed) bounds the number of values
    from above; only when that bound passes ``bounds.max_json_values`` is the exact
    structure scanned (``measure_json``), which also stops a flood of records early.
    Nesting beyond ``Limits.max_depth`` is found by the scan, by orjson's own limit (1024,
    located by the scan) or, for nesting under that, in the parsed records.
    """
    limits = bounds.limits
    budget = bounds.max_json_values
    ceiling = _count_openers_and_commas(data) + 1
    if ceiling > budget:
        _check_shape(
            data, measure_json(data, limits.max_depth, budget, bounds.max_rows), bounds, what
        )
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        message, position = str(exc), exc.pos
        doc = exc.doc
        del exc
    else:
        if isinstance(value, list):
            reason = bounds.too_many_rows(len(value), "records")
            if reason:
                raise ValidationError.one(reason)
        return value
    if "depth limit" in message:
        _check_shape(data, measure_json(data, limits.max_depth), bounds, what)
    raise ValidationError([_json_problem(data, message, position, doc)])


def _count_openers_and_commas(data: bytes) -> int:
    """How many ``,`` ``[`` ``{`` bytes ``data`` holds (strings included: an upper bound of
    the values), counted by NumPy in steps (``bytes.count`` slows down on dense matches)."""
    total = 0
    for base in range(0, len(data), _COUNT_STEP):
        chunk = np.frombuffer(data, np.uint8, min(_COUNT_STEP, len(data) - base), base)
        for byte in b",[{":
            total += int(np.count_nonzero(chunk == byte))
    return total


def _check_shape(data: bytes, shape: JsonShape, bounds: Bounds, what: str) -> None:
    """A ``ValidationError`` if ``shape`` is beyond ``bounds`` (the first problem: text
    that is not UTF-8 before the point where the scan stopped comes first)."""
    limits = bounds.limits
    budget = bounds.max_json_values
    problem: Problem | None = None
    if shape.deep_at is not None:
        line, column = line_column(data, shape.deep_at)
        where = f"record {shape.deep_record}" if shape.deep_record else None
        problem = Problem(
            f"JSON nested deeper than {limits.max_depth} levels at byte {shape.deep_at:,} "
            f"(line {line}, column {column}; Limits.max_depth)",
            where,
        )
    elif shape.records is not None and bounds.too_many_rows(shape.records, "records"):
        complete = shape.scanned >= len(data)
        problem = Problem(bounds.too_many_rows(shape.records, "records", exact=complete) or "")
    elif shape.values > budget:
        per_row = ""
        if budget < limits.max_values:
            per_row = f", {limits.max_values_per_row} per accepted row"
        problem = Problem(
            f"the file holds more than {budget:,} JSON values (Limits.max_values{per_row}); "
            f"{what} needs far fewer"
        )
    if problem is not None:
        found = utf8_error(data[: shape.scanned])
        if found is not None:
            problem = utf8_problem(data, *found)
        raise ValidationError([problem])


def nesting_exceeds(value: Any, levels: int) -> bool:
    """Whether ``value`` (parsed JSON) nests containers more than ``levels`` deep (a
    scalar: 0, ``[]``: 1, ``[[1]]``: 2); stops at the first container too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > levels:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def _json_problem(data: bytes, message: str, position: int, doc: Any) -> Problem:
    if "not valid UTF-8" in message:
        found = utf8_error(data)
        if found is not None:
            record = record_of(data, found[0])
            return utf8_problem(data, found[0], found[1], f"record {record}" if record else None)
    offset = _byte_offset(data, doc, position)
    record = record_of(data, offset)
    where = f"record {record}" if record else None
    if "surrogate" in message:
        escape = re.match(rb"\\u[0-9A-Fa-f]{4}", data[offset : offset + 6])
        text = escape.group().decode() if escape else "\\u...."
        line, column = line_column(data, offset)
        return Problem(
            f"a string holds the lone surrogate escape {text} at byte {offset:,} (line {line}, "
            f"column {column}): half of a UTF-16 pair, not a character",
            where,
        )
    suffix = f" (in record {record})" if record else ""
    return Problem(f"not valid JSON: {message}{suffix}")


def _byte_offset(data: bytes, doc: Any, position: int) -> int:
    """Byte offset of character ``position`` (orjson counts characters of the decoded
    document): the ``position``-th byte that does not continue a UTF-8 sequence."""
    if isinstance(doc, str) and doc[:position].isascii():
        return position
    seen = 0
    for base in range(0, len(data), _SCAN_STEP):
        chunk = np.frombuffer(data, np.uint8, min(_SCAN_STEP, len(data) - base), base)
        starts = np.flatnonzero((chunk & 0xC0) != 0x80)
        if seen + len(starts) > position:
            return base + int(starts[position - seen])
        seen += len(starts)
    return len(data)
