"""Atomic JSON output shared by the format writers."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson


def dump_json(path: Path, obj: Any) -> Path:
    """Write compact JSON (as the releases are) via a temp file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(obj))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Stream JSON lines to a temp file next to ``path``, then rename it over ``path``.

    A ``.gz`` path is gzip-compressed with mtime 0 and the final file name in the header,
    so the same records always give the same bytes (fixtures and benchmarks compare them).
    Shared by the JSON Lines writers (nlvr2, snli_ve, guesswhat).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz:
                    _write_lines(gz, records)
            else:
                _write_lines(raw, records)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


@contextlib.contextmanager
def atomic_binary(path: Path) -> Iterator[BinaryIO]:
    """A binary file written under a temporary name, renamed into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_array(out: BinaryIO, records: Iterable[Any]) -> None:
    """Stream a JSON array, one orjson-encoded record at a time."""
    out.write(b"[")
    for i, record in enumerate(records):
        if i:
            out.write(b", ")
        out.write(orjson.dumps(record))
    out.write(b"]")
