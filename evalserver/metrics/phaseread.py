"""The columns of a phase read as one: its splits' rows in phase order, ids typed.

A leaderboard phase is one split or several scored together from one prediction file
(``TaskSpec.phases``). A metric's ``groundtruth(uf, task, splits)`` reads its columns here:
plain columns are concatenated, ragged ones get their offsets shifted, and every missing
piece is a ``unify.errors.SchemaError`` naming the file, task, split and column (through
``columns``). Nothing here knows a metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalserver.metrics.columns import column, ragged, split_view
from evalserver.metrics.predictions import id_array
from unify.errors import SchemaError
from unify.reader import RaggedColumn, SplitView, UnifiedFile

__all__ = ["PhaseColumns", "read_phase"]


class PhaseColumns:
    """The split views of one phase of one task, read column by column."""

    def __init__(self, uf: UnifiedFile, task: str, splits: Sequence[str]) -> None:
        if not splits:
            raise SchemaError(f"{uf.path}: no split named for task {task!r}")
        self.file = uf
        self.task = task
        self.views: list[SplitView] = [split_view(uf, task, s) for s in splits]
        for view in self.views:
            n = len(column(view, "id"))
            if n != view.num_examples:
                raise SchemaError(
                    f"{uf.path}: {task}/{view.name}: num_examples={view.num_examples} but {n} ids"
                )

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views)

    @property
    def where(self) -> str:
        """``file: task/split+split`` for messages."""
        return f"{self.file.path}: {self.task}/{'+'.join(self.splits)}"

    def one_split(self, metric: str) -> SplitView:
        """The only split, for a metric whose ground truth cannot span several (retrieval
        ranks within one split's candidates)."""
        if len(self.views) != 1:
            raise SchemaError(
                f"{self.where}: the {metric} scorer reads one split per phase, "
                f"not {len(self.views)}"
            )
        return self.views[0]

    def has(self, name: str) -> bool:
        """Every split of the phase has the column ``name``."""
        return all(name in v.group for v in self.views)

    def column(self, name: str) -> np.ndarray:
        """A plain column over the phase (strings as ``str`` objects)."""
        parts = [column(v, name) for v in self.views]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def strings(self, name: str) -> list[str]:
        return self.column(name).tolist()

    def ids(self, kind: type) -> np.ndarray:
        """Example ids as ``id_array`` types them (int64, or unicode never cast)."""
        raw = self.column("id")
        return id_array(raw.tolist() if raw.dtype == object else raw, kind)

    def ragged(self, name: str) -> RaggedColumn:
        """A ragged column over the phase, offsets shifted split by split."""
        parts = [ragged(v, name) for v in self.views]
        if len(parts) == 1:
            return parts[0]
        offsets = [np.zeros(1, dtype=np.int64)]
        for part in parts:
            offsets.append(part.offsets[1:] + offsets[-1][-1])
        values = {key: np.concatenate([p.values[key] for p in parts]) for key in parts[0].values}
        return RaggedColumn(np.concatenate(offsets), values)

    def split_of_rows(self) -> list[str]:
        """The split of every row, in phase order."""
        return [v.name for v in self.views for _ in range(v.num_examples)]


def read_phase(uf: UnifiedFile, task: str, splits: Sequence[str]) -> PhaseColumns:
    return PhaseColumns(uf, task, splits)
