"""Reading raw release files: whole JSON, streamed JSON, JSON Lines, with provenance and bounds.

Every read goes through a ``SourceLog`` so that the unified file can record the size and
sha256 of each raw input (users compare builds by these), and every parse error is turned
into an error that names the file and the byte position. Hashing is done on the bytes we
read anyway, so it costs no extra I/O.

Every reader is bounded by ``RawLimits`` (options of ``unify build``, passed down in the
``BuildContext``; never globals), so that a hostile or damaged file costs memory and time
in proportion to its size on disk, never more:

- nesting depth: whole-file and line-by-line JSON are parsed by orjson, whose own ceiling
  is 1024 levels; the streaming parser (ijson) has none and its memory grows with the
  square of the depth, so the bytes it is fed are scanned first (:class:`DepthGuard`). A
  ``max_depth`` below 1024 makes every JSON path scan (the default does not need to);
- decompressed bytes of a gzip file, and the length of one JSON line;
- text that HDF5 cannot store: a NUL character (``\\u0000``) or a lone surrogate escape
  (``\\ud800``) in any string is refused with the record and field named, on every parsing
  path (orjson would reject a surrogate without saying where, ijson would silently store
  "?" or crash). The bytes are scanned for the escapes (a ``memchr`` for a backslash first,
  so files without escapes pay nothing more); on a hit the string is located by a second,
  slow parse that tracks the JSON path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np
import orjson

from unify.errors import LimitError, MalformedFileError, RecordError

#: orjson refuses JSON nested deeper than this; no option can raise it.
ORJSON_MAX_DEPTH = 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawLimits:
    """Resource bounds of the raw parsers (``unify build`` options of the same names).

    The defaults are far above what any release needs (the deepest release record nests 6
    levels, the longest JSON line is a GuessWhat game of some kB, the largest gzip file
    inflates to well under 1 GiB, a refer pickle shares no list or dict) and far below what
    would exhaust a machine.
    """

    #: Deepest nesting of lists/objects in a JSON file or a pickle (``--max-depth``).
    max_depth: int = ORJSON_MAX_DEPTH
    #: Bytes a gzip file may inflate to (``--max-decompressed-bytes``).
    max_decompressed_bytes: int = 4 << 30
    #: Bytes of one line of a JSON Lines file (``--max-line-bytes``).
    max_line_bytes: int = 64 << 20
    #: Elements (list items, dict keys and values) a pickle may expand to, per byte of
    #: pickle (``--max-pickle-expansion``). A pickle that shares no list or dict holds
    #: fewer than one per byte; shared references multiply it.
    max_pickle_expansion: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= ORJSON_MAX_DEPTH:
            raise ValueError(f"max_depth must be within 1..{ORJSON_MAX_DEPTH}")
        if self.max_decompressed_bytes < 1 or self.max_line_bytes < 1:
            raise ValueError("byte limits must be positive")
        if self.max_pickle_expansion <= 0:
            raise ValueError("max_pickle_expansion must be positive")


DEFAULT_LIMITS = RawLimits()


def depth_error(path: Path | str, limit: int, where: str = "") -> LimitError:
    at = f" ({where})" if where else ""
    return LimitError(path, f"nested deeper than {limit} levels{at}", "--max-depth", limit)


@dataclass(frozen=True)
class SourceFile:
    """Provenance of one raw file read by a build."""

    task: str
    path: str
    size: int
    sha256: str


@dataclass
class SourceLog:
    """Collects ``SourceFile`` records; paths are stored relative to the raw root."""

    root: Path
    files: dict[str, SourceFile] = field(default_factory=dict)

    def add(self, task: str, path: Path, size: int, sha256: str) -> None:
        try:
            rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = path.as_posix()
        self.files.setdefault(rel, SourceFile(task, rel, size, sha256))

    def as_records(self) -> list[dict[str, Any]]:
        return [vars(self.files[k]) | {} for k in sorted(self.files)]


# ----------------------------------------------------------------------------- nesting depth

_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_SQUARE = bytes.maketrans(b"{}", b"[]")


class DepthGuard:
    """The deepest nesting of JSON text fed chunk by chunk, without parsing it.

    Each chunk is reduced, at C speed, to its quotes and brackets (escaped quotes and
    backslashes dropped first); empty strings ``""`` and adjacent pairs ``[]`` are then
    removed round after round until nothing changes. Removing two adjacent quotes or a
    matched pair never changes whether the remaining brackets are inside a string, nor
    the depth outside strings, and each round lowers every peak of the depth profile by
    one; so ``levels still open + rounds`` bounds the chunk's deepest point. Only when
    that bound exceeds the limit is the chunk measured exactly (prefix sums over the
    reduced stream), so well-formed release files cost about 2 ms per MB.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0  # levels open outside strings at the end of what was fed
        self._in_string = False
        self._backslashes = b""  # a trailing backslash run, held for the next chunk

    def feed(self, chunk: bytes) -> bool:
        """Feed the next bytes; False once the nesting has gone deeper than the limit."""
        data = self._backslashes + bytes(chunk)
        stripped = data.rstrip(b"\\")
        self._backslashes = data[len(stripped) :]
        if b"\\" in stripped:
            stripped = stripped.replace(b"\\\\", b"").replace(b'\\"', b"")
        reduced = stripped.translate(_SQUARE, _DROP)
        carry = b"[" * self._open + (b'"' if self._in_string else b"")
        rest = carry + reduced
        rounds = 0
        while rounds <= self.limit:
            shorter = rest.replace(b'""', b"").replace(b"[]", b"")
            if len(shorter) == len(rest):
                break
            rest = shorter
            rounds += 1
        # Removing an adjacent pair changes no other bracket's depth, and each removed
        # pair sat at most one level above what is left: the rounds bound the rest.
        depth, in_string, deepest = _walk_reduced(rest)
        if deepest + rounds > self.limit and _walk_reduced(carry + reduced)[2] > self.limit:
            return False
        self._open, self._in_string = depth, in_string
        return True


def _walk_reduced(reduced: bytes) -> tuple[int, bool, int]:
    """(levels open at the end, inside a string at the end, deepest level) of a stream of
    quotes and ``[``/``]`` only; Python for the short rests of legitimate text, numpy
    prefix sums for long ones."""
    if len(reduced) > 256:
        codes = np.frombuffer(reduced, dtype=np.uint8)
        quotes = codes == 34
        outside = (np.cumsum(quotes) & 1) == 0
        step = np.zeros(len(codes), dtype=np.int64)
        step[(codes == 91) & outside] = 1
        step[(codes == 93) & outside] = -1
        levels = np.cumsum(step)
        return max(0, int(levels[-1])), bool(quotes.sum() & 1), max(0, int(levels.max()))
    depth = deepest = 0
    in_string = False
    for byte in reduced:
        if byte == 34:
            in_string = not in_string
        elif in_string:
            continue
        elif byte == 91:
            depth += 1
            deepest = max(deepest, depth)
        elif depth:  # a close with nothing open is the parser's error to report
            depth -= 1
    return depth, in_string, deepest


def check_depth(data: bytes, path: Path | str, limit: int, where: str = "") -> None:
    """Refuse ``data`` (a whole JSON text) if it nests deeper than ``limit``."""
    guard = DepthGuard(limit)
    for start in range(0, len(data), _CHUNK):
        if not guard.feed(data[start : start + _CHUNK]):
            raise depth_error(path, limit, where)


# ------------------------------------------------------------------------ text HDF5 refuses

#: A ``\u`` escape of NUL or of a UTF-16 surrogate (whether lone is decided after).
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class TextFault:
    """A string escape that decodes to text HDF5 cannot store, at a byte offset."""

    offset: int
    what: str


def _fault_at(data: bytes, pos: int, backslashes_before: int) -> str | None:
    """What the escape at ``data[pos:]`` decodes to, if unstorable; None if it is fine
    (an escaped backslash followed by text, or half of a well-formed surrogate pair)."""
    run = 0
    i = pos - 1
    while i >= 0 and data[i] == 92:
        run += 1
        i -= 1
    if i < 0:
        run += backslashes_before
    if run % 2:  # the backslash is itself escaped: "\\u0000" is the text \u0000
        return None
    unit = int(data[pos + 2 : pos + 6], 16)
    if unit == 0:
        return "a NUL character (\\u0000)"
    if unit < 0xDC00:  # high surrogate: needs a low one right after
        if _LOW.match(data, pos + 6):
            return None
        return f"a lone surrogate (\\u{unit:04x})"
    # Low surrogate: fine only right after a high one (which was checked above).
    if pos >= 6 and _HIGH.fullmatch(data, pos - 6, pos):
        return None
    return f"a lone surrogate (\\u{unit:04x})"


def find_text_fault(data: bytes, base: int = 0, backslashes_before: int = 0) -> TextFault | None:
    """The first NUL or lone-surrogate escape in a JSON text (``base``: offset of
    ``data[0]`` in the file). A ``memchr`` for a backslash settles most files at once."""
    start = data.find(b"\\")
    if start < 0:
        return None
    for match in _SUSPECT.finditer(data, start):
        what = _fault_at(data, match.start(), backslashes_before)
        if what is not None:
            return TextFault(base + match.start(), what)
    return None


class _EscapeScanner:
    """``find_text_fault`` over a stream fed in chunks (an escape may straddle two, and
    whether it is escaped or half of a pair depends on up to 12 bytes either side)."""

    _MARGIN = 12

    def __init__(self) -> None:
        self._tail = b""  # the last bytes seen, kept for context
        self._tail_offset = 0  # file offset of _tail[0]
        self._decided = 0  # bytes at the start of _tail already scanned
        self._backslashes = 0  # the backslash run that ends right before _tail

    def feed(self, chunk: bytes, final: bool = False) -> TextFault | None:
        if chunk.find(b"\\") < 0 and self._tail.find(b"\\") < 0:
            # No backslash, no escape (the common case): keep context, copy nothing else.
            total = len(self._tail) + len(chunk)
            self._tail = (self._tail + bytes(chunk[-2 * self._MARGIN :]))[-2 * self._MARGIN :]
            self._tail_offset += total - len(self._tail)
            self._decided = len(self._tail)
            self._backslashes = 0
            return None
        data = self._tail + bytes(chunk)
        cut = len(data) if final else max(self._decided, len(data) - self._MARGIN)
        fault = None
        if data.find(b"\\", self._decided) >= 0:
            for match in _SUSPECT.finditer(data, self._decided):
                if match.start() >= cut:
                    break
                what = _fault_at(data, match.start(), self._backslashes)
                if what is not None:
                    fault = TextFault(self._tail_offset + match.start(), what)
                    break
        keep = max(0, len(data) - 2 * self._MARGIN)
        head = data[:keep]
        stripped = head.rstrip(b"\\")
        self._backslashes = len(head) - len(stripped) + (0 if stripped else self._backslashes)
        self._tail = data[keep:]
        self._tail_offset += keep
        self._decided = cut - keep
        return fault


def _json_path(frames: list[list[Any]]) -> str:
    out = ""
    for kind, key in frames:
        if kind == "array":
            out += f"[{key}]"
        elif key is not None:
            out += f".{key}" if out else str(key)
    return out


#: Keys that name a record, most specific first (for "record 262148000 (questions[12])").
ID_KEYS = (
    "question_id",
    "qa_id",
    "sent_id",
    "sentid",
    "ref_id",
    "identifier",
    "pairID",
    "box_id",
    "id",
    "image_id",
)


class _PatchedReader(io.RawIOBase):
    """Serves a file with the 6-byte escape at ``offset`` replaced by ``\\u003f``, and with
    a read boundary right after it, so a parser neither stops on that escape nor completes
    the string holding it before the reader has passed it."""

    def __init__(self, raw: BinaryIO, offset: int) -> None:
        self._raw = raw
        self._offset = offset
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        end = self._offset + 6
        if self.pos < end:
            want = min(want, end - self.pos)
        data = self._raw.read(want)
        if self._offset + 6 > self.pos and self.pos + len(data) > self._offset:
            patched = bytearray(data)
            for k in range(6):
                at = self._offset + k - self.pos
                if 0 <= at < len(patched):
                    patched[at] = b"\\u003f"[k]
            data = bytes(patched)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def locate_string(open_raw: Callable[[], BinaryIO], offset: int) -> tuple[str, str]:
    """(record, field) of the JSON string whose text holds byte ``offset``: the slow path
    of a text fault, a second parse that tracks the JSON path of every value.

    A record is an item of the first array on the path (``questions[12]``) or, in a
    document of keyed objects, the value of a top-level key (GQA's question id); an id
    found in the record (``ID_KEYS``) is named with it.
    """
    end = offset + 6
    frames: list[list[Any]] = []  # [kind, key or index] per open container
    record: str | None = None
    record_level = 0
    ids: dict[str, Any] = {}
    culprit: str | None = None
    with open_raw() as raw:
        reader = _PatchedReader(raw, offset)
        try:
            for event, value in ijson.basic_parse(reader, use_float=True):
                if event == "map_key":
                    frames[-1][1] = value
                    if culprit is None and reader.pos > end:
                        culprit = _json_path(frames) + " (a key)"
                    continue
                if event in ("end_map", "end_array"):
                    frames.pop()
                    if record is not None and len(frames) == record_level:
                        if culprit is not None:
                            break
                        record = None
                    continue
                if frames and frames[-1][0] == "array":
                    frames[-1][1] += 1
                if record is None and _is_record(frames, event):
                    record, record_level, ids = _json_path(frames), len(frames), {}
                if culprit is None and event == "string" and reader.pos > end:
                    culprit = _json_path(frames)
                if (
                    record is not None
                    and len(frames) == record_level + 1
                    and frames[-1][0] == "map"
                    and frames[-1][1] in ID_KEYS
                    and event in ("string", "number")
                ):
                    ids.setdefault(frames[-1][1], value)
                if event == "start_map":
                    frames.append(["map", None])
                elif event == "start_array":
                    frames.append(["array", -1])
                elif record is not None and len(frames) == record_level:
                    if culprit is not None:
                        break
                    record = None
        except (ijson.JSONError, UnicodeDecodeError, ValueError):
            pass
    if culprit is None:
        return f"at byte {offset}", "<text>"
    if record is None or not culprit.startswith(record):
        return culprit, "<value>"
    label = next((f"{ids[k]} ({record})" for k in ID_KEYS if k in ids), record)
    return label, culprit[len(record) :].lstrip(".") or "<value>"


def _is_record(frames: list[list[Any]], event: str) -> bool:
    """Is the value starting here a record? An item of the path's first array is; so is
    the value of a top-level key, unless it is an array (then its items are)."""
    kinds = [kind for kind, _ in frames]
    if "array" in kinds:
        return kinds.index("array") == len(frames) - 1
    return len(frames) == 1 and event != "start_array"


def text_fault_error(
    path: Path | str, fault: TextFault, open_raw: Callable[[], BinaryIO]
) -> RecordError:
    record, field_name = locate_string(open_raw, fault.offset)
    return RecordError(path, record, field_name, text_detail(fault.what))


def text_detail(what: str) -> str:
    return f"the text holds {what}, which the unified file (HDF5 UTF-8 strings) cannot store"


# ----------------------------------------------------------------------------------- readers


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what passes through it, and (for the
    streaming parser) scans it for unstorable escapes and excessive nesting before the
    parser sees it; a finding stops the read with ``_StreamFault``."""

    def __init__(
        self, raw: BinaryIO, depth: DepthGuard | None = None, scan_text: bool = False
    ) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.count = 0
        self._depth = depth
        self._scanner = _EscapeScanner() if scan_text else None
        self.first_byte: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.sha.update(view)
            self.count += n
            if self._scanner is not None or self._depth is not None:
                self._inspect(bytes(view), final=False)
        elif self._scanner is not None:
            fault = self._scanner.feed(b"", final=True)
            if fault is not None:
                raise _StreamFault(fault)
        return n or 0

    def _inspect(self, data: bytes, final: bool) -> None:
        if self.first_byte is None:
            stripped = data.lstrip(b" \t\r\n")
            if stripped:
                self.first_byte = stripped[0]
        if self._depth is not None and not self._depth.feed(data):
            raise _StreamFault(None)
        if self._scanner is not None:
            fault = self._scanner.feed(data, final=final)
            if fault is not None:
                raise _StreamFault(fault)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data


class _StreamFault(Exception):
    """Raised inside a read to stop the streaming parser (None: too deep)."""

    def __init__(self, fault: TextFault | None) -> None:
        super().__init__()
        self.fault = fault


def read_bytes(path: Path, task: str, log: SourceLog | None) -> bytes:
    """Read a whole file, recording its provenance."""
    data = path.read_bytes()
    if log is not None:
        log.add(task, path, len(data), hashlib.sha256(data).hexdigest())
    return data


def load_json(
    path: Path, task: str, log: SourceLog | None = None, limits: RawLimits = DEFAULT_LIMITS
) -> Any:
    """Parse a whole JSON file (orjson: several times faster than ``json``)."""
    data = read_bytes(path, task, log)
    return loads_json(data, path, limits)


def loads_json(data: bytes, path: Path | str, limits: RawLimits = DEFAULT_LIMITS) -> Any:
    """``load_json`` of bytes already read: text faults, depth, then orjson."""
    fault = find_text_fault(data)
    if fault is not None:
        raise text_fault_error(path, fault, lambda: io.BytesIO(data))
    if limits.max_depth < ORJSON_MAX_DEPTH:
        check_depth(data, path, limits.max_depth)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise depth_error(path, ORJSON_MAX_DEPTH) from None
        raise MalformedFileError(path, exc.msg, _utf8_error_position(data, exc)) from None


def _utf8_error_position(data: bytes, exc: orjson.JSONDecodeError) -> int:
    """orjson reports invalid UTF-8 at position 0 whatever its place: find the first bad
    byte instead (only on this error path), so a user can go to it."""
    if "UTF-8" not in exc.msg:
        return exc.pos
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return bad.start
    return exc.pos


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")


def _ijson_message(exc: Exception) -> str:
    """ijson's messages span lines (a caret under an excerpt): keep the first line."""
    arg = exc.args[0] if exc.args else exc
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _stream(
    path: Path,
    task: str,
    log: SourceLog | None,
    limits: RawLimits,
    parse: Callable[[BinaryIO], Iterator[Any]],
) -> Iterator[Any]:
    """Run a streaming ijson ``parse`` over ``path`` behind the hashing, text and depth
    checks; the top level must be an object (an array would yield nothing at all)."""
    with _open_binary(path) as raw:
        reader = _HashingReader(raw, DepthGuard(limits.max_depth), scan_text=True)
        buffered = io.BufferedReader(reader, buffer_size=_CHUNK)
        try:
            yield from parse(buffered)
            # Drain so the digest (and the checks) cover the whole file.
            while buffered.read(_CHUNK):
                pass
        except _StreamFault as exc:
            if exc.fault is None:
                raise depth_error(path, limits.max_depth) from None
            raise text_fault_error(path, exc.fault, lambda: _open_binary(path)) from None
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise MalformedFileError(path, _ijson_message(exc), reader.count) from None
        if reader.first_byte != ord("{"):
            found = "nothing" if reader.first_byte is None else repr(chr(reader.first_byte))
            raise MalformedFileError(
                path, f"the top level must be a JSON object ({{...}}), found {found}", 0
            )
        if log is not None:
            log.add(task, path, reader.count, reader.sha.hexdigest())


def iter_json_items(
    path: Path, task: str, log: SourceLog | None = None, limits: RawLimits = DEFAULT_LIMITS
) -> Iterator[tuple[str, Any]]:
    """Stream the (key, value) pairs of a top-level JSON object with bounded memory.

    GQA question files are up to several GB; loading them whole would take many times
    their size in Python objects.
    """
    return _stream(path, task, log, limits, lambda f: ijson.kvitems(f, "", use_float=True))


def iter_json_array(
    path: Path,
    prefix: str,
    task: str,
    log: SourceLog | None = None,
    limits: RawLimits = DEFAULT_LIMITS,
) -> Iterator[Any]:
    """Stream the items of one array inside a JSON document (ijson prefix, e.g.
    ``images.item``), skipping everything else without building it.

    COCO instances files are hundreds of MB, mostly segmentation polygons; a reader that
    only needs the ``images`` records should not hold the annotations in memory. Items
    yielded as the parse reaches them; the digest is recorded once the file is exhausted.
    """
    return _stream(path, task, log, limits, lambda f: ijson.items(f, prefix, use_float=True))


def iter_jsonl(
    path: Path, task: str, log: SourceLog | None = None, limits: RawLimits = DEFAULT_LIMITS
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) from a JSON Lines file, gzip-compressed or not.

    Lines are split from 1 MB blocks (a line longer than ``max_line_bytes`` is refused
    before it is held whole); a gzip file is refused once it has inflated past
    ``max_decompressed_bytes``. A block without a backslash has no escape to check.
    """
    gz = path.suffix == ".gz"
    with _open_binary(path) as raw:
        reader = _HashingReader(raw)
        stream: BinaryIO = io.BufferedReader(reader, buffer_size=_CHUNK)
        if gz:
            stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
        lineno = 0
        total = 0
        pending: list[bytes] = []
        pending_len = 0
        try:
            while True:
                block = stream.read(_CHUNK)
                if not block:
                    break
                total += len(block)
                if gz and total > limits.max_decompressed_bytes:
                    raise LimitError(
                        path,
                        f"inflates to more than {limits.max_decompressed_bytes} bytes",
                        "--max-decompressed-bytes",
                        limits.max_decompressed_bytes,
                    )
                lines = block.split(b"\n")
                if len(lines) == 1:
                    pending.append(block)
                    pending_len += len(block)
                    _check_line_length(path, lineno + 1, pending_len, limits)
                    continue
                lines[0] = b"".join([*pending, lines[0]])
                last = lines.pop()
                pending, pending_len = [last], len(last)
                escapes = b"\\" in block or b"\\" in lines[0]
                for line in lines:
                    lineno += 1
                    record = _parse_line(line, lineno, path, limits, escapes)
                    if record is not _BLANK:
                        yield lineno, record
                _check_line_length(path, lineno + 1, pending_len, limits)
            if pending_len:
                lineno += 1
                record = _parse_line(b"".join(pending), lineno, path, limits, True)
                if record is not _BLANK:
                    yield lineno, record
        except (OSError, EOFError, zlib.error) as exc:
            raise MalformedFileError(path, f"after line {lineno}: {exc}") from None
        if log is not None:
            log.add(task, path, reader.count, reader.sha.hexdigest())


_BLANK = object()


def _check_line_length(path: Path, lineno: int, length: int, limits: RawLimits) -> None:
    if length > limits.max_line_bytes:
        raise LimitError(
            path,
            f"line {lineno} is longer than {limits.max_line_bytes} bytes",
            "--max-line-bytes",
            limits.max_line_bytes,
        )


def _parse_line(line: bytes, lineno: int, path: Path, limits: RawLimits, escapes: bool) -> Any:
    """One JSON line: its length, unstorable text, depth, then orjson."""
    _check_line_length(path, lineno, len(line), limits)
    if not line.strip():
        return _BLANK
    if escapes and b"\\" in line:
        fault = find_text_fault(line)
        if fault is not None:
            record, where = _locate_in_line(line, lineno)
            raise RecordError(path, record, where, text_detail(fault.what))
    if limits.max_depth < ORJSON_MAX_DEPTH:
        check_depth(line, path, limits.max_depth, f"line {lineno}")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise depth_error(path, ORJSON_MAX_DEPTH, f"line {lineno}") from None
        raise MalformedFileError(path, f"line {lineno}: {exc.msg}") from None


def _locate_in_line(line: bytes, lineno: int) -> tuple[str, str]:
    """(record, field) of the first unstorable string of one JSON line (slow path: the
    standard library parses NUL and lone surrogates that orjson refuses)."""
    record = f"line {lineno}"
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return record, "<text>"
    if isinstance(value, dict):
        for key in ID_KEYS:
            if isinstance(value.get(key), (str, int)) and not unstorable(str(value[key])):
                record = f"{value[key]} (line {lineno})"
                break
    found = find_unstorable(value)
    return record, found or "<text>"


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored as an HDF5 UTF-8 string, or None."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"a lone surrogate (\\u{ord(text[exc.start]):04x})"
    return None


def find_unstorable(value: Any) -> str | None:
    """The path (``qas[2].question``) of the first unstorable string (key or value)
    inside plain JSON-like data, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if unstorable(item):
                return where or "<value>"
        elif isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and unstorable(key):
                    return f"{where or '<top>'} (a key)"
                stack.append((sub, name))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]") for i, sub in reversed(list(enumerate(item))))
    return None
