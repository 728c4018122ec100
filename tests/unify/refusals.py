"""Helpers of the hostile-input tests: run `unify build` on a corrupted raw tree and hold it
to the promise of docs/cli.md (exit 1, one line naming file, record and field, no traceback,
nothing written), and rewrite one record of a release file in place.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from unify.cli import main


def refuse(raw: Path, *args: str) -> str:
    """`unify build ARGS --raw RAW`: exit 1, one line on stderr and no traceback, nothing
    written next to the output. Returns the line."""
    out_dir = raw.parent / "out"
    out = out_dir / "unified.h5"
    result = CliRunner().invoke(main, ["build", *args, "--raw", str(raw), "--out", str(out), "-q"])
    assert isinstance(result.exception, SystemExit), f"a traceback: {result.exception!r}"
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert not out_dir.exists() or list(out_dir.iterdir()) == [], "something was written"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def accept(raw: Path, *args: str) -> Path:
    """`unify build ARGS --raw RAW` that must succeed; returns the output file (written
    apart from where ``refuse`` checks that nothing was written)."""
    out = raw.parent / "accepted" / "unified.h5"
    result = CliRunner().invoke(
        main, ["build", *args, "--raw", str(raw), "--out", str(out), "-q", "--force"]
    )
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out


def names(line: str, path: Path, record: object, field: str, *details: str) -> None:
    """The line is a record error of ``path``: record, field, then every detail."""
    head = f"error: {path}: record {record}: field {field!r}: "
    assert line.startswith(head), f"{line!r} does not start with {head!r}"
    for detail in details:
        assert detail in line, f"{detail!r} not in {line!r}"


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    """Load a whole JSON file, let ``change`` alter (or replace) the document, write it."""
    doc = json.loads(path.read_text())
    new = change(doc)
    path.write_text(json.dumps(doc if new is None else new))


def edit_jsonl(path: Path, line: int, change: Callable[[dict[str, Any]], Any]) -> None:
    """Alter record ``line`` (1-based) of a JSON Lines file, gzip-compressed or not."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        records = [json.loads(x) for x in f if x.strip()]
    change(records[line - 1])
    with opener(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def write_jsonl(path: Path, lines: list[bytes]) -> None:
    """Write raw lines (bytes, no newline) to a JSON Lines file, gzip-compressed or not."""
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
