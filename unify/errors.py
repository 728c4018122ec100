"""Errors that reach the user as one clear message and an exit code.

Every problem with raw input must name the file, and where possible the record and the
field, so that a user holding a 5 GB release can find the bad byte. The CLI maps
``DataError`` to exit code 1; usage errors are click's (exit code 2).
"""

from __future__ import annotations

from pathlib import Path


class Vl12Error(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class DataError(Vl12Error):
    """The raw input (or a unified file) is missing, malformed or inconsistent."""


class MissingRawFilesError(DataError):
    """Required raw files are absent; the message lists each with where to get it."""

    def __init__(self, missing: list[tuple[str, Path, str]]) -> None:
        self.missing = missing
        lines = ["required raw files are missing:"]
        for task, path, url in missing:
            lines.append(f"  {task}: {path}  (download: {url})")
        super().__init__("\n".join(lines))


class MalformedFileError(DataError):
    """A raw file cannot be parsed at all (bad JSON, bad gzip, bad pickle...)."""

    def __init__(self, path: Path | str, detail: str, position: int | None = None) -> None:
        self.path = Path(path)
        self.position = position
        where = f" at byte {position}" if position is not None else ""
        super().__init__(f"{path}: malformed file{where}: {detail}")


#: Longest record name or detail a message quotes: a hostile file's 8,000-character value
#: must not become an 8,000-character error line.
MAX_QUOTED = 300


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class RecordError(DataError):
    """One record of a raw file lacks a field or has a field of the wrong type."""

    def __init__(self, path: Path | str, record: object, field: str, detail: str) -> None:
        self.path = Path(path)
        self.record = record
        self.field = field
        super().__init__(
            f"{path}: record {clip(str(record), 120)}: field {clip(field, 120)!r}: {clip(detail)}"
        )


class SchemaError(DataError):
    """A unified file is not one this version can read."""


class LimitError(DataError):
    """A raw file exceeds a resource bound of the build (``unify.rawio.RawLimits``).

    The message names the file, what was exceeded and the ``unify build`` option that
    raises the bound, for the rare genuine file that needs it.
    """

    def __init__(self, path: Path | str, detail: str, option: str, value: object) -> None:
        self.path = Path(path)
        self.option = option
        super().__init__(
            f"{path}: refused: {detail} (limit {option} {value}; raise it if the file is genuine)"
        )
