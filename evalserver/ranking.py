"""Leaderboard ranking: deterministic, and the same for JSON, CSV and the pages to come.

Order (spec/evalserver.md, feature 9): the primary column in its direction, then the task's
other columns in their declared order and directions, then the EARLIEST submission (a later
tie does not overtake), then the submission id (two uploads in the same microsecond still
have one order). A missing value (absent column, NaN) ranks after every present value in
its column, whatever the direction: "N/A" is never first. One row per (team, method): the
team's best entry under this same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from unify.tasks import Column, TaskSpec

__all__ = ["Entry", "RankedRow", "board_columns", "rank"]


@dataclass(frozen=True)
class Entry:
    """One scored submission as the ranking sees it."""

    submission_id: str
    team_id: int
    team: str
    method: str
    created_at: datetime
    metrics: Mapping[str, Any]
    is_public: bool = True
    is_baseline: bool = False
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RankedRow:
    rank: int
    entry: Entry
    #: One value per board column (None: missing), in ``board_columns`` order.
    values: tuple[float | None, ...]


def board_columns(spec: TaskSpec) -> tuple[Column, ...]:
    """The primary column first, then the others in declared order."""
    primary = spec.column(spec.primary)
    return (primary, *(c for c in spec.columns if c.name != spec.primary))


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _key(entry: Entry, columns: Sequence[Column]) -> tuple[Any, ...]:
    parts: list[Any] = []
    for column in columns:
        value = _value(entry.metrics, column.name)
        if value is None:
            parts.append((1, 0.0))
        else:
            parts.append((0, -value if column.higher_is_better else value))
    return (*parts, entry.created_at, entry.submission_id)


def rank(entries: Iterable[Entry], spec: TaskSpec) -> list[RankedRow]:
    """Best entry per (team, method), ranked; ranks are 1, 2, 3 ... (the order is total)."""
    columns = board_columns(spec)
    ordered = sorted(entries, key=lambda e: _key(e, columns))
    seen: set[tuple[int, str]] = set()
    rows: list[RankedRow] = []
    for entry in ordered:
        who = (entry.team_id, entry.method)
        if who in seen:
            continue
        seen.add(who)
        values = tuple(_value(entry.metrics, c.name) for c in columns)
        rows.append(RankedRow(len(rows) + 1, entry, values))
    return rows
