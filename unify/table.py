"""In-memory columns of one split, as converters produce them and the writer stores them.

Converters build plain Python lists (fast to append to) and hand them over as a
``SplitTable``; the writer turns them into HDF5 datasets. Ragged fields (a variable number
of answers, boxes, dialogue turns per example) are flat values plus offsets, the layout
h5py's documentation recommends, so readers slice them without per-row objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unify.schema import Role


@dataclass
class Ragged:
    """Flat value arrays sharing one offsets array (length = examples + 1)."""

    offsets: np.ndarray
    values: dict[str, Any]

    @classmethod
    def from_lists(
        cls, dtypes: dict[str, Any] | None = None, **lists: Sequence[Sequence[Any]]
    ) -> Ragged:
        """Build from per-example lists; all named lists must have equal lengths per row.

        Values named in ``dtypes`` become numpy arrays of that dtype; the others stay
        Python lists (strings).
        """
        dtypes = dtypes or {}
        names = list(lists)
        if not names:
            raise ValueError("a ragged field needs at least one value list")
        first = lists[names[0]]
        lengths = np.fromiter((len(row) for row in first), dtype=np.int64, count=len(first))
        offsets = np.zeros(len(first) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values: dict[str, Any] = {}
        for name in names:
            rows = lists[name]
            if len(rows) != len(first):
                raise ValueError(f"ragged value {name!r} has {len(rows)} rows, not {len(first)}")
            flat = [item for row in rows for item in row]
            if len(flat) != offsets[-1]:
                raise ValueError(f"ragged value {name!r} rows differ in length from {names[0]!r}")
            values[name] = np.asarray(flat, dtype=dtypes[name]) if name in dtypes else flat
        return cls(offsets, values)

    def __len__(self) -> int:
        return len(self.offsets) - 1


Column = Any  # list[str] | list[int] | np.ndarray | Ragged


@dataclass
class SplitTable:
    """Columns of one split. ``image`` holds image keys (strings, or tuples for pairs).

    ``arrays`` are split-level arrays of any length that describe the split as a whole
    rather than one example each (retrieval ``candidates``: the split's images in release
    order). They are written next to the columns and named in the split's ``split_arrays``
    attribute so readers never mistake them for columns; names in ``image_arrays`` hold
    image keys and are stored as /images row indices. ``take`` selects columns only.
    """

    name: str
    role: Role
    columns: dict[str, Column] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Column] = field(default_factory=dict)
    image_arrays: frozenset[str] = frozenset()

    @property
    def num_examples(self) -> int:
        return len(self.columns["id"]) if "id" in self.columns else 0

    def check_lengths(self) -> None:
        """All columns must have one row per example; a converter bug otherwise."""
        n = self.num_examples
        for name, col in self.columns.items():
            if len(col) != n:
                raise ValueError(f"split {self.name}: column {name} has {len(col)} rows, not {n}")
        clash = sorted(set(self.arrays) & set(self.columns))
        if clash:
            raise ValueError(f"split {self.name}: {clash} are both columns and split arrays")
        stray = sorted(self.image_arrays - set(self.arrays))
        if stray:
            raise ValueError(f"split {self.name}: image arrays {stray} are not split arrays")

    def take(self, rows: np.ndarray) -> dict[str, Column]:
        """The columns restricted to ``rows`` (used by hold-outs and cleaning)."""
        out: dict[str, Column] = {}
        for name, col in self.columns.items():
            out[name] = take_column(col, rows)
        return out


def take_column(col: Column, rows: np.ndarray) -> Column:
    """Select rows of a plain or ragged column, keeping its kind."""
    if isinstance(col, Ragged):
        starts, ends = col.offsets[rows], col.offsets[rows + 1]
        lengths = ends - starts
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Old flat position of new position j in row r: j + (starts[r] - offsets[r]).
        flat_idx = np.arange(offsets[-1], dtype=np.int64) + np.repeat(
            starts - offsets[:-1], lengths
        )
        values = {}
        for name, vals in col.values.items():
            if isinstance(vals, np.ndarray):
                values[name] = vals[flat_idx]
            else:
                values[name] = [vals[i] for i in flat_idx]
        return Ragged(offsets, values)
    if isinstance(col, np.ndarray):
        return col[rows]
    return [col[i] for i in rows]


@dataclass
class TaskTable:
    """Everything a converter produces for one task."""

    name: str
    attrs: dict[str, Any]
    splits: list[SplitTable]
    report: dict[str, Any] = field(default_factory=dict)
