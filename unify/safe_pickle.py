"""Load the refer toolkit's Python-2 pickles (``refs(unc).p``) without running their code.

A pickle is a program: its GLOBAL/REDUCE opcodes can import and call anything (``os.system``
included), so a raw file downloaded from a mirror must never reach ``pickle.load``. This
unpickler resolves NO global at all (``find_class`` and ``persistent_load`` refuse), which
leaves only the objects the pickle machine builds by itself; the result is then walked and
anything that is not a plain list, dict, tuple, string, number, bool or None (a set, a
bytearray, ...) is refused too. Refusals raise ``UnsafePickleError`` naming the file and
what was asked for; a truncated or corrupt pickle raises ``MalformedFileError``.

Text decoding (Python 2 wrote its ``str`` as byte strings, SHORT_BINSTRING/BINSTRING/
STRING opcodes, and its ``unicode`` as BINUNICODE):

1. Load with Python 3's default (``encoding="ASCII"``): right for every file whose byte
   strings are ASCII, which is what the refer releases are in practice.
2. On a ``UnicodeDecodeError`` (a non-ASCII byte string), load again with
   ``encoding="bytes"`` and decode every ``bytes`` value, dict keys included, recursively,
   as UTF-8. Not latin1: the expressions were typed as UTF-8, and latin1 would turn
   "café" into "cafÃ©" without any error. Bytes that are not valid UTF-8 are a malformed
   file (the error says where inside the structure).

``bytes`` values of protocol 3+ pickles are decoded as UTF-8 in both passes, so callers
always get ``str`` text. The result says which pass succeeded (``decoding``), for the build
report.

Bounds (``RawLimits``): a pickle can reference one list from many places (the memo), so a
file of 84 KB can stand for gigabytes of nested lists. The loaded object graph is walked
level by level with ``gc.get_referents`` (C speed, no serialisation, shared objects never
copied), counting every reference as it is reached: more than ``max_pickle_expansion``
elements per byte of pickle is refused (a pickle that shares no list or dict holds fewer
than one per byte), and so is nesting deeper than ``max_depth`` (which also stops a pickle
that refers to itself).
"""

from __future__ import annotations

import gc
import io
import pickle
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import Any, Literal, NoReturn

from unify.errors import DataError, LimitError, MalformedFileError
from unify.rawio import DEFAULT_LIMITS, RawLimits

Decoding = Literal["default", "bytes-utf8"]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_ANY_PLAIN = _SCALARS | {bytes, list, dict, tuple}
_CONTAINERS = frozenset({list, dict, tuple})
_is_container = _CONTAINERS.__contains__
#: Errors the C unpickler raises on corrupt or truncated input (UnicodeDecodeError, a
#: ValueError, is handled before these).
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
)


class UnsafePickleError(DataError):
    """The pickle asks for something a plain-data file never needs (a global, a set...)."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: refused to load this pickle: {detail}; only plain lists, dicts, "
            "tuples, strings, numbers, bools and None are accepted (no globals)"
        )


@dataclass(frozen=True)
class PlainPickle:
    """The loaded data and the decoding pass that read it."""

    value: Any
    decoding: Decoding


class _NoGlobalsUnpickler(pickle.Unpickler):
    """A C unpickler that resolves no global and no persistent id."""

    def __init__(self, file: io.BytesIO, path: Path | str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._path = path

    def find_class(self, module: str, name: str) -> NoReturn:
        raise UnsafePickleError(self._path, f"it names the global {module}.{name}")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise UnsafePickleError(self._path, f"it holds a persistent id {pid!r:.60}")


def load_plain(path: Path, limits: RawLimits = DEFAULT_LIMITS) -> PlainPickle:
    """Read ``path`` and load it with ``loads_plain``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return loads_plain(data, path, limits)


def loads_plain(data: bytes, path: Path | str, limits: RawLimits = DEFAULT_LIMITS) -> PlainPickle:
    """Load pickle bytes read from ``path`` (named in every error) as plain data."""
    decoding: Decoding = "default"
    try:
        value = _load(data, path, "ASCII")
    except UnicodeDecodeError:
        decoding = "bytes-utf8"
        try:
            value = _load(data, path, "bytes")
        except UnicodeDecodeError as exc:
            # Only a BINUNICODE opcode with invalid UTF-8 can fail under encoding="bytes".
            raise MalformedFileError(
                path, f"a unicode string is not valid UTF-8 ({exc.reason})"
            ) from None
    kinds = _check_graph(value, path, len(data), limits)
    if kinds <= _CONTAINERS | _SCALARS:
        return PlainPickle(value, decoding)
    return PlainPickle(_plain(value, path, ()), decoding)


def _check_graph(value: Any, path: Path | str, size: int, limits: RawLimits) -> set[type]:
    """Walk the loaded graph level by level; return the kinds of object it holds.

    Every reference counts, so a list reached from a thousand places counts a thousand
    times: the expansion is measured before anything (a converter loop, a serialiser)
    could pay for it. The walk itself is bounded by the same budget.
    """
    budget = max(size, 1) * limits.max_pickle_expansion
    kinds = {type(value)}
    level = [value] if _is_container(type(value)) else []
    depth = total = 0
    while level:
        depth += 1
        if depth > limits.max_depth:
            _refuse_cycle(value, path)
            raise LimitError(
                path,
                f"nested deeper than {limits.max_depth} levels (or it refers to itself)",
                "--max-depth",
                limits.max_depth,
            )
        total += sum(map(len, level))
        if total > budget:
            _refuse_cycle(value, path)
            raise LimitError(
                path,
                f"its shared references expand to more than {int(budget)} elements "
                f"({limits.max_pickle_expansion:g} per byte of its {size} bytes)",
                "--max-pickle-expansion",
                f"{limits.max_pickle_expansion:g}",
            )
        children = gc.get_referents(*level)
        types = list(map(type, children))
        found = set(types)
        kinds |= found
        level = list(compress(children, map(_is_container, types))) if found & _CONTAINERS else []
    return kinds


def _load(data: bytes, path: Path | str, encoding: str) -> Any:
    stream = io.BytesIO(data)
    unpickler = _NoGlobalsUnpickler(stream, path, encoding)
    try:
        value = unpickler.load()
    except UnicodeDecodeError:
        raise
    except RecursionError:
        raise MalformedFileError(path, "nested too deeply") from None
    except _CORRUPT as exc:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError) or "truncated" in detail:
            detail = f"truncated or empty pickle ({detail})"
        raise MalformedFileError(path, f"not a readable pickle: {detail}", stream.tell()) from None
    return value


def _where(trail: tuple[Any, ...]) -> str:
    """``()`` -> "the top level"; ``(0, "sentences", 2)`` -> "[0]['sentences'][2]"."""
    return "".join(f"[{key!r}]" for key in trail) or "the top level"


def _refuse_cycle(value: Any, path: Path | str) -> None:
    """A list or dict that contains itself is no plain data at all: say so rather than
    blame a limit. Depth-first over distinct containers (the slow path of a refusal)."""
    done: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, leaving = stack.pop()
        key = id(item)
        if leaving:
            on_path.discard(key)
            done.add(key)
            continue
        if key in on_path:
            raise MalformedFileError(path, "it refers to itself (a list or dict inside itself)")
        if key in done or not _is_container(type(item)):
            continue
        on_path.add(key)
        stack.append((item, True))
        stack.extend((child, False) for child in gc.get_referents(item))


def _plain(value: Any, path: Path | str, trail: tuple[Any, ...]) -> Any:
    """Check that ``value`` is plain data; decode bytes as UTF-8. Walks containers only
    (the graph is known to be finite, shallow enough and not too shared).

    Homogeneous lists of scalars (token lists, id lists) are accepted with one C-level
    type scan instead of a Python call per element.
    """
    try:
        return _walk(value, path, trail)
    except RecursionError:
        raise MalformedFileError(path, "nested too deeply to decode") from None


def _walk(value: Any, path: Path | str, trail: tuple[Any, ...]) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is bytes:
        return _utf8(value, path, trail)
    if kind is list or kind is tuple:
        kinds = set(map(type, value))
        if kinds <= _SCALARS:
            return value
        items = [_walk(v, path, (*trail, i)) for i, v in enumerate(value)]
        return items if kind is list else tuple(items)
    if kind is dict:
        key_kinds = set(map(type, value))
        value_kinds = set(map(type, value.values()))
        if key_kinds <= _SCALARS and value_kinds <= _SCALARS:
            return value
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = _walk(key, path, (*trail, "<key>")) if type(key) is not str else key
            if new_key in out:
                raise MalformedFileError(
                    path, f"{_where(trail)} has the key {new_key!r} twice once bytes are decoded"
                )
            out[new_key] = _walk(item, path, (*trail, new_key))
        return out
    if kind not in _ANY_PLAIN:
        raise UnsafePickleError(path, f"{_where(trail)} is a {kind.__name__}")
    raise AssertionError(kind)  # pragma: no cover - every plain kind is handled above


def _utf8(data: bytes, path: Path | str, trail: tuple[Any, ...]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedFileError(
            path, f"the byte string at {_where(trail)} is not UTF-8 ({exc.reason}): {data!r:.60}"
        ) from None
