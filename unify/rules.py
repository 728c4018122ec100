"""Field rules of the raw releases, declared once per task and checked on whole columns.

A converter's fast path only checks types while it reads records into columns; what a
value must *be* (a size above 0, a box with a non-negative width, an id seen once, a label
of the release, text HDF5 can store, an image id that agrees with the entry holding it) is
declared next to the converter's field mapping as a tuple of rules and checked here on the
columns of one raw file, with numpy or one C-level pass per column, so the checks cost a
small fraction of the parse. Only a violation takes a slow path, to find the first bad row
and raise one ``RecordError``: file, record (its id), field and value.

Each rule also describes itself in one line (``describe``): docs/raw-layout.md lists the
rules of every task, and a test holds the list equal to the declarations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from unify.errors import DataError, RecordError
from unify.rawio import text_detail, unstorable
from unify.table import Ragged

#: No image of the twelve releases is anywhere near this wide or high; a size or a box
#: coordinate beyond it is a corrupt number (and would not fit the stored int32/float32).
MAX_PIXELS = 100_000
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64 = np.iinfo(np.int64)

Columns = Mapping[str, Any]


def _rows(column: Any) -> tuple[Any, np.ndarray | None]:
    """(flat values, offsets or None) of a plain or ragged column."""
    if isinstance(column, Ragged):
        (values,) = column.values.values()
        return values, column.offsets
    return column, None


def _record(ids: Sequence[Any], flat_index: int, offsets: np.ndarray | None) -> Any:
    row = flat_index if offsets is None else int(np.searchsorted(offsets, flat_index, "right")) - 1
    value = ids[row]
    return value.item() if isinstance(value, np.generic) else value


def _field(name: str, flat_index: int, offsets: np.ndarray | None) -> str:
    if offsets is None:
        return name
    row = int(np.searchsorted(offsets, flat_index, "right")) - 1
    return f"{name}[{flat_index - int(offsets[row])}]"


@dataclass(frozen=True)
class Rule:
    """One declared property of one field (a column the converter built from a file)."""

    field: str
    kind: ClassVar[str] = ""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        raise NotImplementedError

    def fail(
        self, path: Path | str, ids: Sequence[Any], column: Any, index: int, detail: str
    ) -> RecordError:
        _, offsets = _rows(column)
        return RecordError(
            path, _record(ids, index, offsets), _field(self.field, index, offsets), detail
        )


@dataclass(frozen=True)
class Text(Rule):
    """Text HDF5 can store: no NUL character, no lone surrogate."""

    def describe(self) -> str:
        return f"`{self.field}`: text without NUL or lone surrogates"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        if not len(values):
            return
        if text_clean(values):
            return
        for i, value in enumerate(values):
            what = unstorable(value)
            if what is not None:
                raise self.fail(path, ids, columns[self.field], i, text_detail(what))


def text_clean(values: Any) -> bool:
    """True when no string of ``values`` (any iterable of str) holds text HDF5 refuses:
    one join and one C-level scan, for the fast path."""
    joined = "\x1f".join(values)
    return "\x00" not in joined and (joined.isascii() or _utf8(joined))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class NonEmpty(Rule):
    """A string id that is never empty (an empty id cannot be scored or looked up)."""

    def describe(self) -> str:
        return f"`{self.field}`: never empty"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        if not len(values):
            return
        joined = "\x1f".join(values)  # an empty value leaves two separators side by side
        if (
            "\x1f\x1f" in joined
            or joined.startswith("\x1f")
            or joined.endswith("\x1f")
            or not joined
        ):
            index = next((i for i, v in enumerate(values) if not v), None)
            if index is not None:
                raise self.fail(path, ids, columns[self.field], index, "empty")


@dataclass(frozen=True)
class Digits(Rule):
    """A string id made of ASCII digits only (compared as an integer somewhere)."""

    def describe(self) -> str:
        return f"`{self.field}`: ASCII digits only"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        joined = "".join(values)
        if joined.isascii() and (joined.isdigit() or not joined):
            return
        for i, value in enumerate(values):
            if value and not (value.isascii() and value.isdigit()):
                raise self.fail(
                    path, ids, columns[self.field], i, f"expected ASCII digits, got {value!r:.60}"
                )


@dataclass(frozen=True)
class Unique(Rule):
    """Every value at most once in the file (an id the release treats as an id)."""

    what: str = "id"

    def describe(self) -> str:
        return f"`{self.field}`: unique in the file"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        if isinstance(values, np.ndarray) and values.dtype != object:
            if len(values) < 2:
                return
            ordered = np.sort(values, kind="stable")
            if not (ordered[1:] == ordered[:-1]).any():
                return
            order = np.argsort(values, kind="stable")  # slow path: which row repeats first
            same = np.flatnonzero(values[order][1:] == values[order][:-1])
            second = int(order[same + 1].min())
        else:
            if len(set(values)) == len(values):
                return
            seen: set[Any] = set()
            second = next(i for i, v in enumerate(values) if v in seen or seen.add(v))
        value = values[second]
        value = value.item() if isinstance(value, np.generic) else value
        raise self.fail(path, ids, columns[self.field], second, f"duplicate {self.what} {value!r}")


@dataclass(frozen=True)
class Range(Rule):
    """Numbers within [low, high] (and finite)."""

    low: float
    high: float

    def describe(self) -> str:
        return f"`{self.field}`: {_bound(self.low)} to {_bound(self.high)}"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        arr = np.asarray(values)
        if not arr.size:
            return
        with np.errstate(invalid="ignore"):
            bad = ~((arr >= self.low) & (arr <= self.high))
        if bad.any():
            index = int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
            value = arr[index].tolist()
            raise self.fail(
                path,
                ids,
                columns[self.field],
                index,
                f"{value!r:.60} is outside {self.low:g}..{self.high:g}",
            )


def _bound(value: float) -> str:
    """A range bound as the docs write it (the int64/int32 maxima by name)."""
    named = {INT64.max: "2**63-1", int(np.iinfo(np.int32).max): "2**31-1"}
    return named.get(value, f"{value:g}")


@dataclass(frozen=True)
class Boxes(Rule):
    """[x, y, w, h] boxes: finite, w and h not negative, everything within ±MAX_PIXELS
    (so a float32 column never holds an overflowed inf)."""

    def describe(self) -> str:
        return f"`{self.field}`: boxes [x, y, w, h], finite, w, h >= 0, within ±{MAX_PIXELS} px"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        boxes = np.asarray(values, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return
        with np.errstate(invalid="ignore"):
            ok = (np.abs(boxes) <= MAX_PIXELS).all(axis=1) & (boxes[:, 2:] >= 0).all(axis=1)
        if ok.all():
            return
        index = int(np.flatnonzero(~ok)[0])
        box = boxes[index].tolist()
        if not np.isfinite(boxes[index]).all() or (np.abs(boxes[index]) > FLOAT32_MAX).any():
            detail = f"{box} is not finite (or overflows float32)"
        elif (boxes[index, 2:] < 0).any():
            detail = f"{box} has a negative width or height"
        else:
            detail = f"{box} reaches beyond ±{MAX_PIXELS} px"
        raise self.fail(path, ids, columns[self.field], index, detail)


@dataclass(frozen=True)
class Allowed(Rule):
    """One of the release's values (labels, statuses, types)."""

    values: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"`{self.field}`: one of {', '.join(repr(v) for v in self.values)}"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        values, _ = _rows(columns[self.field])
        allowed = set(self.values)
        if set(values) <= allowed:
            return
        index = next(i for i, v in enumerate(values) if v not in allowed)
        raise self.fail(
            path,
            ids,
            columns[self.field],
            index,
            f"{values[index]!r:.60} is not one of {', '.join(map(repr, self.values))}",
        )


@dataclass(frozen=True)
class Count(Rule):
    """A list of exactly ``n`` items per record."""

    n: int = 0

    def describe(self) -> str:
        return f"`{self.field}`: exactly {self.n} per record"

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        column = columns[self.field]
        lengths = np.diff(column.offsets)
        bad = np.flatnonzero(lengths != self.n)
        if len(bad):
            row = int(bad[0])
            value = ids[row]
            raise RecordError(
                path,
                value.item() if isinstance(value, np.generic) else value,
                self.field,
                f"{int(lengths[row])} items, expected exactly {self.n}",
            )


@dataclass(frozen=True)
class Same(Rule):
    """Equal to another field of the same record (a reference that must agree)."""

    other: str = ""
    note: str = ""

    def describe(self) -> str:
        return f"`{self.field}`: equal to `{self.other}`" + (f" ({self.note})" if self.note else "")

    def check(self, path: Path | str, ids: Sequence[Any], columns: Columns) -> None:
        a, b = np.asarray(columns[self.field]), np.asarray(columns[self.other])
        bad = np.flatnonzero(a != b)
        if len(bad):
            index = int(bad[0])
            raise self.fail(
                path,
                ids,
                columns[self.field],
                index,
                f"{a[index].tolist()!r:.60} differs from {self.other} {b[index].tolist()!r:.60}",
            )


#: A declared rule: a ``Rule`` checked on columns, or the one-line description of a rule
#: the converter checks inline on its fast path (where a column would cost more).
Declared = Rule | str


def check(
    path: Path | str, ids: Sequence[Any], columns: Columns, rules: Sequence[Declared]
) -> None:
    """Apply ``rules`` to the columns read from ``path``; ``ids`` names the records.
    Rules on fields absent from ``columns``, and inline rules, are skipped."""
    for rule in rules:
        if isinstance(rule, Rule) and rule.field in columns:
            rule.check(path, ids, columns)


def require_records(path: Path | str, count: int, what: str) -> None:
    """A raw file the build reads must hold records: an empty or mistyped one would
    silently become an empty split."""
    if count == 0:
        raise DataError(f"{path}: holds no {what}; an empty file or the wrong file?")


def int_array(
    values: Sequence[Any],
    dtype: Any,
    path: Path | str,
    field: str,
    ids: Sequence[Any],
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """``np.asarray(values, dtype)`` for integer columns; a value that does not fit the
    stored type is a record error instead of numpy's OverflowError. ``offsets``: the
    values are the flat values of a ragged field (records named through them)."""
    try:
        return np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError):
        info = np.iinfo(dtype)
        for i, value in enumerate(values):
            if not (isinstance(value, int) and info.min <= value <= info.max):
                raise RecordError(
                    path,
                    _record(ids, i, offsets),
                    _field(field, i, offsets),
                    f"{value!r:.60} does not fit {np.dtype(dtype).name} ({info.min}..{info.max})",
                ) from None
        raise


def describe(rules: Sequence[Declared]) -> list[str]:
    return [rule if isinstance(rule, str) else rule.describe() for rule in rules]


def markdown(declared: Mapping[str, Mapping[str, Sequence[Declared]]]) -> str:
    """The rules of every task as docs/raw-layout.md lists them (tasks with the same rules
    share a heading); a test holds the page equal to this."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for task, parts in declared.items():
        key = tuple((part, tuple(describe(rules))) for part, rules in parts.items())
        groups.setdefault(key, []).append(task)
    lines: list[str] = []
    for key, tasks in groups.items():
        lines += [f"### {', '.join(tasks)}", ""]
        for part, rules in key:
            lines.append(f"- {part}:")
            lines += [f"  - {rule}" for rule in rules]
        lines.append("")
    return "\n".join(lines)
