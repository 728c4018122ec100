"""Resource bounds on reading a participant's prediction file.

The server runs the prediction parsers on uploads from the public, so every parser is
bounded: bytes read, bytes after decompression (and the compression ratio), JSON nesting
and value count, rows against the ground truth's size, string lengths. ``Limits`` holds
the bounds (options with documented defaults, docs/metrics.md "Limits"); it is passed
explicitly (``validate_file(..., limits=Limits(max_bytes=...))``, ``evalserver score
--max-bytes ...``), never read from a global. ``Expected`` is what the ground truth of the
phase allows (how many ids a file may name); ``Bounds`` puts the two together for the
parsers.

The defaults fit the largest legitimate file, a COCO 5k retrieval score matrix (25,010 x
5,000 float32 is about 477 MiB; float64 twice that), and stop a hostile one before it costs
more than a small multiple of its size on disk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sized
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Bounds", "Expected", "Limits", "format_size", "parse_size"]

GiB = 1 << 30


def _option(default: Any, help: str, *, size: bool = False) -> Any:
    """A field with its CLI help (``evalserver score --max-...``) and whether it is bytes."""
    return field(default=default, metadata={"help": help, "size": size})


@dataclass(frozen=True)
class Limits:
    """Bounds on reading one prediction file (every field is an option of ``evalserver
    score``: ``max_bytes`` is ``--max-bytes``)."""

    max_bytes: int = _option(
        GiB,
        "Largest file accepted, as stored (compressed or not). Default 1 GiB: a COCO 5k "
        "score matrix in float64.",
        size=True,
    )
    max_decompressed_bytes: int = _option(
        GiB,
        "Largest content after gunzip, and largest total of the arrays read from an NPZ "
        "(their declared sizes, checked before reading).",
        size=True,
    )
    max_expansion: int = _option(
        200,
        "Largest gzip expansion: decompressed bytes per stored byte (text compresses 5-15x; "
        "a compression bomb about 1000x).",
    )
    max_depth: int = _option(
        32, "Deepest JSON nesting (the formats need 3; extra keys may nest a little)."
    )
    max_values: int = _option(
        1 << 25,
        "Most values in a file: JSON values (numbers, strings, arrays, objects) or CSV "
        "lines (a parsed value costs about 50 bytes of memory).",
    )
    max_values_per_row: int = _option(
        8,
        "With a ground truth, most JSON values per accepted row besides a ranked list's "
        "ids (a record of the formats holds 3 to 7; extra keys count).",
    )
    max_rows_per_example: float = _option(
        2.0,
        "Most rows (records, lines, score-matrix rows and columns) per id of the ground "
        "truth, plus --extra-rows; more is refused before the rows are read.",
    )
    extra_rows: int = _option(100, "Rows allowed beyond --max-rows-per-example x ids.")
    max_string_chars: int = _option(
        1024, "Longest string value kept (an answer, a label), in characters."
    )
    max_id_chars: int = _option(256, "Longest string id, in characters.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) not in (int, float) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"Limits.{f.name} must be a positive number, got {value!r}")
        for f in fields(self):
            if f.type == "int" and type(getattr(self, f.name)) is not int:
                raise ValueError(f"Limits.{f.name} must be an integer")

    def decompressed_limit(self, stored: int) -> int:
        """Bytes a gzip stream of ``stored`` bytes may expand to."""
        return min(self.max_decompressed_bytes, self.max_expansion * max(stored, 1))

    @classmethod
    def options(cls) -> list[tuple[str, Any, str, bool]]:
        """(field name, default, help, is a byte size) of every bound, for the CLI."""
        return [(f.name, f.default, f.metadata["help"], f.metadata["size"]) for f in fields(cls)]


@dataclass(frozen=True)
class Expected:
    """What the ground truth of one phase allows a file to hold.

    ``rows``: distinct ids a valid file may name (questions, captions, ...); ``columns``:
    candidate images of a retrieval split (score-matrix columns, ranked-list length);
    ``id_chars``: the longest string id (a longer one cannot match; it is refused before it
    widens the id array of every row).
    """

    rows: int
    columns: int | None = None
    id_chars: int | None = None

    @classmethod
    def of_ids(cls, ids: Sized, *, columns: int | None = None) -> Expected:
        """From the ids a file may name (numbers or strings)."""
        import numpy as np

        array = np.asarray(ids)
        id_chars = None
        if array.dtype.kind == "U":
            id_chars = array.dtype.itemsize // 4
        elif array.dtype == object and len(array):
            id_chars = max(len(str(i)) for i in array)
        return cls(len(array), columns, id_chars)


@dataclass(frozen=True)
class Bounds:
    """``Limits`` resolved against the ground truth (``expected`` None: no ground truth,
    only the absolute limits apply)."""

    limits: Limits = field(default_factory=Limits)
    expected: Expected | None = None

    def rows_for(self, n: int) -> int:
        return int(n * self.limits.max_rows_per_example) + self.limits.extra_rows

    @property
    def max_rows(self) -> int | None:
        return None if self.expected is None else self.rows_for(self.expected.rows)

    @property
    def max_columns(self) -> int | None:
        if self.expected is None or self.expected.columns is None:
            return None
        return self.rows_for(self.expected.columns)

    @property
    def max_json_values(self) -> int:
        """Values a JSON file may hold: ``max_values``, and with a ground truth at most
        ``max_values_per_row`` per accepted row (plus the columns a ranked list names)."""
        rows = self.max_rows
        if rows is None:
            return self.limits.max_values
        per_row = self.limits.max_values_per_row + (self.max_columns or 0)
        return min(self.limits.max_values, rows * per_row)

    @property
    def max_id_chars(self) -> int:
        return self.limits.max_id_chars

    @property
    def matchable_id_chars(self) -> int | None:
        """Longest string id that can match the ground truth (None: unknown)."""
        return None if self.expected is None else self.expected.id_chars

    def too_many_rows(self, count: int, unit: str, *, exact: bool = True) -> str | None:
        """None, or why ``count`` rows (``unit``: "records", "lines", ...) are refused."""
        limit = self.max_rows
        if limit is None or count <= limit:
            return None
        assert self.expected is not None
        about = "" if exact else "at least "
        return (
            f"the file holds {about}{count:,} {unit}, but the ground truth has "
            f"{self.expected.rows:,} ids: more than {limit:,} rows "
            f"({self.limits.max_rows_per_example:g} per id + {self.limits.extra_rows}, "
            f"Limits.max_rows_per_example) are refused before they are read; is this the "
            f"file of another split or task?"
        )


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"1G"`` -> 1073741824: bytes, or K/M/G/T (powers of 1024; ``MiB``, ``MB`` alike)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 1G, 1048576)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return value


def format_size(n: int) -> str:
    """``1073741824`` -> ``"1 GiB"``; exact figures under 1 KiB."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:,} bytes"
