"""Atomic output shared by the format writers: temp file next to the target, then rename.

Every writer goes through ``atomic_file`` (built on the build's own ``atomic_output``), so
a crash or Ctrl-C never leaves a truncated release file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson

from unify.writer import atomic_output


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """An open file (binary by default, else UTF-8 text) renamed to ``path`` on success."""
    with atomic_output(path) as tmp:
        if "b" in mode:
            with open(tmp, mode, buffering=1 << 20) as f:
                yield f
        else:
            with open(tmp, mode, encoding="utf-8", newline="") as f:
                yield f


def atomic_binary(path: Path) -> contextlib.AbstractContextManager[BinaryIO]:
    return atomic_file(path, "wb")  # type: ignore[return-value]


def dump_json(path: Path, obj: Any) -> Path:
    """Write compact JSON (as the releases are), atomically."""
    with atomic_binary(path) as f:
        f.write(orjson.dumps(obj))
    return path


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Stream JSON lines to ``path`` atomically.

    A ``.gz`` path is gzip-compressed with mtime 0 and the final file name in the header,
    so the same records always give the same bytes (fixtures and benchmarks compare them).
    Shared by the JSON Lines writers (nlvr2, snli_ve, guesswhat).
    """
    with atomic_binary(path) as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz:
                _write_lines(gz, records)
        else:
            _write_lines(raw, records)


def _write_lines(out: BinaryIO, records: Iterable[dict[str, Any]]) -> None:
    """Write in blocks of about 1 MiB: one write (and one compress call) per line is slow."""
    block: list[str] = []
    size = 0
    for rec in records:
        line = json.dumps(rec)
        block.append(line)
        size += len(line) + 1
        if size >= 1 << 20:
            out.write(("\n".join(block) + "\n").encode("utf-8"))
            block, size = [], 0
    if block:
        out.write(("\n".join(block) + "\n").encode("utf-8"))


def write_json_array(out: BinaryIO, records: Iterable[Any]) -> None:
    """Stream a JSON array, one orjson-encoded record at a time."""
    out.write(b"[")
    for i, record in enumerate(records):
        if i:
            out.write(b", ")
        out.write(orjson.dumps(record))
    out.write(b"]")
