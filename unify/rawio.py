"""Reading raw release files: whole JSON, streamed JSON, JSON Lines, with provenance.

Every read goes through a ``SourceLog`` so that the unified file can record the size and
sha256 of each raw input (users compare builds by these), and every parse error is turned
into an error that names the file and the byte position. Hashing is done on the bytes we
read anyway, so it costs no extra I/O.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from unify.errors import MalformedFileError


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


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.sha.update(view)
            self.count += n
        return n or 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data


def read_bytes(path: Path, task: str, log: SourceLog | None) -> bytes:
    """Read a whole file, recording its provenance."""
    data = path.read_bytes()
    if log is not None:
        log.add(task, path, len(data), hashlib.sha256(data).hexdigest())
    return data


def load_json(path: Path, task: str, log: SourceLog | None = None) -> Any:
    """Parse a whole JSON file (orjson: several times faster than ``json``)."""
    data = read_bytes(path, task, log)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedFileError(path, exc.msg, exc.pos) from None


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")


def iter_json_items(
    path: Path, task: str, log: SourceLog | None = None
) -> Iterator[tuple[str, Any]]:
    """Stream the (key, value) pairs of a top-level JSON object with bounded memory.

    GQA question files are up to several GB; loading them whole would take many times
    their size in Python objects.
    """
    with _open_binary(path) as raw:
        reader = _HashingReader(raw)
        buffered = io.BufferedReader(reader, buffer_size=1 << 20)
        try:
            yield from ijson.kvitems(buffered, "", use_float=True)
        except ijson.JSONError as exc:
            raise MalformedFileError(path, str(exc).strip(), reader.count) from None
        # Drain so the digest covers the whole file even if the object ended early.
        while buffered.read(1 << 20):
            pass
        if log is not None:
            log.add(task, path, reader.count, reader.sha.hexdigest())


def iter_json_array(
    path: Path, prefix: str, task: str, log: SourceLog | None = None
) -> Iterator[Any]:
    """Stream the items of one array inside a JSON document (ijson prefix, e.g.
    ``images.item``), skipping everything else without building it.

    COCO instances files are hundreds of MB, mostly segmentation polygons; a reader that
    only needs the ``images`` records should not hold the annotations in memory. Items
    yielded as the parse reaches them; the digest is recorded once the file is exhausted.
    """
    with _open_binary(path) as raw:
        reader = _HashingReader(raw)
        buffered = io.BufferedReader(reader, buffer_size=1 << 20)
        try:
            yield from ijson.items(buffered, prefix, use_float=True)
        except ijson.JSONError as exc:
            raise MalformedFileError(path, str(exc).strip(), reader.count) from None
        while buffered.read(1 << 20):
            pass
        if log is not None:
            log.add(task, path, reader.count, reader.sha.hexdigest())


def iter_jsonl(path: Path, task: str, log: SourceLog | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) from a JSON Lines file, gzip-compressed or not."""
    with _open_binary(path) as raw:
        reader = _HashingReader(raw)
        stream: BinaryIO = io.BufferedReader(reader, buffer_size=1 << 20)
        if path.suffix == ".gz":
            stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
        lineno = 0
        try:
            for lineno, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise MalformedFileError(path, f"line {lineno}: {exc.msg}") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise MalformedFileError(path, f"after line {lineno}: {exc}") from None
        if log is not None:
            log.add(task, path, reader.count, reader.sha.hexdigest())
