"""File formats as the fuzz harness sees them: decode a valid file into a document, encode a
(corrupted) document back, and decode strictly with a reference parser.

The reference parser is the judge of byte-level damage: a corrupted file that it refuses
(not UTF-8, not strict JSON, a truncated gzip or pickle, a pickle global, a cycle, nesting
deeper than Python's parser goes) must be refused by the product too; one that it reads is
judged field by field against the seed (``rules``).

Codecs write the special values of ``values`` their own way: JSON splices raw tokens, a
pickle gets floats, Python-2 byte strings and hand-written opcodes (a placeholder string is
pickled and its opcode replaced), a CSV gets raw bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tests.fuzz.values import (
    BadUtf8,
    Deep,
    DupKey,
    NonFinite,
    PickleGlobal,
    RawToken,
    RefBomb,
    SelfRef,
    has_surrogate,
)


class Invalid(Exception):
    """The reference parser refuses the bytes (the reason is the message)."""


# --------------------------------------------------------------------------- JSON


def _scalar_json(value: Any) -> bytes:
    if isinstance(value, NonFinite):
        return value.token.encode()
    if isinstance(value, RawToken):
        return value.text
    if isinstance(value, BadUtf8):
        return b'"' + value.data + b'"'
    if isinstance(value, Deep):
        return b"[" * value.depth + b"]" * value.depth
    if isinstance(value, RefBomb | SelfRef | PickleGlobal):
        raise TypeError(f"{type(value).__name__} has no JSON form")
    # json (not orjson): big integers, lone surrogates (as \\ud800 escapes), NUL (\\u0000)
    return json.dumps(value, ensure_ascii=True, allow_nan=False).encode()


def dump_json(value: Any) -> bytes:
    """Compact JSON of ``value``; plain subtrees go through orjson (fast), the rest (special
    values, big integers, surrogates) through the slow path."""
    if not isinstance(value, dict | list | tuple | DupKey):
        if isinstance(value, str) and not has_surrogate(value):
            return orjson.dumps(value)
        if (type(value) in (int, bool) and -(2**63) <= value < 2**64) or value is None:
            return orjson.dumps(value)
        if type(value) is float and value == value and abs(value) != float("inf"):
            return orjson.dumps(value)
        return _scalar_json(value)
    if isinstance(value, dict | list | tuple):
        try:  # (orjson would write the special values, dataclasses, as objects)
            return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATACLASS)
        except (TypeError, orjson.JSONEncodeError):
            pass
    if isinstance(value, dict):
        return _json_object(value.items())
    if isinstance(value, DupKey):
        raise TypeError("DupKey stands for a key of its parent object")
    return b"[" + b",".join(dump_json(v) for v in value) + b"]"


def _json_object(items: Any) -> bytes:
    parts = []
    for key, item in items:
        if isinstance(item, DupKey):
            parts.append(dump_json(str(key)) + b":" + dump_json(item.first))
            parts.append(dump_json(str(key)) + b":" + dump_json(item.second))
        else:
            parts.append(dump_json(str(key)) + b":" + dump_json(item))
    return b"{" + b",".join(parts) + b"}"


def _no_constants(token: str) -> Any:
    raise Invalid(f"{token} is not strict JSON")


def reference_json(text: bytes) -> Any:
    """Strict JSON (RFC 8259, UTF-8; a leading BOM is tolerated): no NaN/Infinity, no raw
    control characters; lone surrogate escapes and ``\\u0000`` are read (the rules judge
    them where they land)."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"not UTF-8 at byte {exc.start}") from None
    decoded = decoded.removeprefix("\ufeff")
    if not decoded.strip():
        raise Invalid("empty")
    try:
        return json.loads(decoded, parse_constant=_no_constants)
    except RecursionError:
        raise Invalid("nested deeper than the reference parser goes") from None
    except json.JSONDecodeError as exc:
        raise Invalid(f"not JSON: {exc}") from None
    except ValueError as exc:  # int too large to convert (over 4300 digits)
        raise Invalid(f"not JSON: {exc}") from None


@dataclass(frozen=True)
class JsonCodec:
    name: str = "json"

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def encode(self, doc: Any) -> bytes:
        return dump_json(doc)

    def reference(self, data: bytes) -> Any:
        return reference_json(data)


@dataclass(frozen=True)
class JsonlCodec:
    """JSON Lines: the document is the list of records, one per non-blank line."""

    name: str = "jsonl"

    def decode(self, data: bytes) -> Any:
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def encode(self, doc: Any) -> bytes:
        if not isinstance(doc, list):  # a corrupted top level: one line holding it
            return dump_json(doc) + b"\n"
        return b"".join(dump_json(record) + b"\n" for record in doc)

    def reference(self, data: bytes) -> Any:
        lines = [line for line in data.split(b"\n") if line.strip()]
        if not lines:
            raise Invalid("empty")
        out = []
        for number, line in enumerate(lines, start=1):
            try:
                out.append(reference_json(line))
            except Invalid as exc:
                raise Invalid(f"line {number}: {exc}") from None
        return out


@dataclass(frozen=True)
class GzipCodec:
    """A gzip member around another format."""

    inner: Any
    name: str = "gzip"

    def decode(self, data: bytes) -> Any:
        return self.inner.decode(gzip.decompress(data))

    def encode(self, doc: Any) -> bytes:
        return gzip.compress(self.inner.encode(doc), mtime=0)

    def reference(self, data: bytes) -> Any:
        try:
            plain = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise Invalid(f"not gzip: {exc}") from None
        return self.inner.reference(plain)


# --------------------------------------------------------------------------- pickle


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise Invalid(f"names the global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise Invalid("holds a persistent id")


def _plain(value: Any, seen: set[int], depth: int = 0) -> Any:
    """Bytes -> UTF-8 text; refuse anything that is not plain data, and cycles. Shared
    sub-objects are walked once (a reference bomb is linear here)."""
    if depth > 900:
        raise Invalid("nested deeper than the reference walker goes")
    kind = type(value)
    if kind in (str, int, float, bool, type(None)):
        return value
    if kind is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("a byte string is not UTF-8") from None
    if kind in (list, tuple, dict):
        if id(value) in seen:
            return value  # shared (already checked); cycles are caught by _acyclic
        seen.add(id(value))
        if kind is dict:
            return {
                _plain(k, seen, depth + 1): _plain(v, seen, depth + 1) for k, v in value.items()
            }
        items = [_plain(v, seen, depth + 1) for v in value]
        return items if kind is list else tuple(items)
    raise Invalid(f"holds a {kind.__name__}")


def _acyclic(value: Any) -> None:
    """Refuse an object graph with a cycle (iterative DFS, shared nodes visited once)."""
    done: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Any, Iterator[Any]]] = []

    def children(v: Any) -> Iterator[Any]:
        if isinstance(v, dict):
            return iter(list(v.values()))
        if isinstance(v, list | tuple):
            return iter(list(v))
        return iter(())

    if not isinstance(value, dict | list | tuple):
        return
    stack.append((value, children(value)))
    on_path.add(id(value))
    while stack:
        node, it = stack[-1]
        child = next(it, _END)
        if child is _END:
            stack.pop()
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if not isinstance(child, dict | list | tuple) or id(child) in done:
            continue
        if id(child) in on_path:
            raise Invalid("refers to itself")
        on_path.add(id(child))
        stack.append((child, children(child)))


_END = object()


def reference_pickle(data: bytes) -> Any:
    if not data:
        raise Invalid("empty")
    try:
        value = _NoGlobals(io.BytesIO(data), encoding="bytes").load()
    except Invalid:
        raise
    except RecursionError:
        raise Invalid("nested deeper than the reference unpickler goes") from None
    except Exception as exc:  # the C unpickler raises many kinds on corrupt input
        raise Invalid(f"not a pickle: {type(exc).__name__}: {exc}") from None
    _acyclic(value)
    try:
        return _plain(value, set())
    except RecursionError:
        raise Invalid("nested too deeply") from None


def _pickle_str_opcode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _special_opcodes(value: Any) -> bytes:
    """Opcodes that push ``value`` (one object) onto the unpickler's stack."""
    if isinstance(value, BadUtf8):
        data = value.data
        if len(data) < 256:
            return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING: a Python-2 str
        return b"T" + struct.pack("<i", len(data)) + data  # BINSTRING
    if isinstance(value, Deep):
        return b"]" * value.depth + b"a" * (value.depth - 1)  # EMPTY_LIST..., APPEND...
    if isinstance(value, PickleGlobal):
        # GLOBAL __builtin__.open, MARK, path, "w", TUPLE, REDUCE: open(marker, "w")
        return (
            b"c__builtin__\nopen\n("
            + _pickle_str_opcode(value.marker)
            + _pickle_str_opcode("w")
            + b"tR"
        )
    raise TypeError(type(value).__name__)


def dump_pickle(doc: Any) -> bytes:
    """Protocol 2 (the refer releases' protocol) with the special values in place."""
    placeholders: dict[str, Any] = {}

    def prepare(value: Any) -> Any:
        if isinstance(value, NonFinite):
            return value.value
        if isinstance(value, RawToken):
            return value.text.decode("latin-1")
        if isinstance(value, RefBomb):
            return value.build()
        if isinstance(value, SelfRef):
            loop: list[Any] = []
            loop.append(loop)
            return loop
        if isinstance(value, BadUtf8 | Deep | PickleGlobal):
            key = f"\x00fuzz-placeholder-{len(placeholders)}\x00"
            placeholders[key] = value
            return key
        if isinstance(value, DupKey):
            return value.second
        if isinstance(value, dict):
            return {k: prepare(v) for k, v in value.items()}
        if isinstance(value, list):
            return [prepare(v) for v in value]
        if isinstance(value, tuple):
            return tuple(prepare(v) for v in value)
        return value

    data = pickle.dumps(prepare(doc), protocol=2)
    for key, value in placeholders.items():
        opcode = _pickle_str_opcode(key)
        assert data.count(opcode) == 1, "placeholder must be pickled exactly once"
        data = data.replace(opcode, _special_opcodes(value))
    return data


@dataclass(frozen=True)
class PickleCodec:
    name: str = "pickle"

    def decode(self, data: bytes) -> Any:
        return reference_pickle(data)

    def encode(self, doc: Any) -> bytes:
        return dump_pickle(doc)

    def reference(self, data: bytes) -> Any:
        return reference_pickle(data)


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvCodec:
    """``id,label`` lines: the document is the list of rows (lists of fields)."""

    name: str = "csv"

    def decode(self, data: bytes) -> Any:
        return [line.split(",") for line in data.decode("utf-8").splitlines() if line.strip()]

    def encode(self, doc: Any) -> bytes:
        if not isinstance(doc, list):
            return _csv_field(doc) + b"\n"
        lines = []
        for row in doc:
            if isinstance(row, list):
                lines.append(b",".join(_csv_field(f) for f in row))
            else:
                lines.append(_csv_field(row))
        return b"".join(line + b"\n" for line in lines)

    def reference(self, data: bytes) -> Any:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"not UTF-8 at byte {exc.start}") from None
        rows = [line.split(",") for line in text.removeprefix("\ufeff").splitlines()]
        rows = [row for row in rows if any(f.strip() for f in row)]
        if not rows:
            raise Invalid("empty")
        return rows


def _csv_field(value: Any) -> bytes:
    if isinstance(value, BadUtf8):
        return value.data
    if isinstance(value, NonFinite):
        return value.token.encode()
    if isinstance(value, RawToken):
        return value.text
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if value is None:
        return b""
    if isinstance(value, int | float):
        return str(value).encode()
    return dump_json(value)


# --------------------------------------------------------------------------- NPZ


@dataclass(frozen=True)
class NpzCodec:
    """An NPZ archive: the document is {name: array}."""

    name: str = "npz"

    def decode(self, data: bytes) -> Any:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}

    def encode(self, doc: Any) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in doc.items()})
        return buffer.getvalue()

    def reference(self, data: bytes) -> Any:
        if not data:
            raise Invalid("empty")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise Invalid(f"not an NPZ: {type(exc).__name__}: {exc}") from None
        except MemoryError:
            raise Invalid("not an NPZ: declares arrays larger than memory") from None


CODECS = {c.name: c for c in (JsonCodec(), JsonlCodec(), PickleCodec(), CsvCodec(), NpzCodec())}


def codec_for_raw(name: str, description: str) -> Any:
    """The codec of a raw release file, from its name and its ``RawFile`` description."""
    if name.endswith(".gz"):
        return GzipCodec(codec_for_raw(name.removesuffix(".gz"), description))
    if name.endswith(".p") or name.endswith(".pkl"):
        return PickleCodec()
    if name.endswith(".jsonl") or "JSON Lines" in description:
        return JsonlCodec()
    return JsonCodec()
