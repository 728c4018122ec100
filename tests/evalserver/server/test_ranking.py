"""Leaderboard order (spec/evalserver.md feature 9): primary in its direction, then the
other columns in declared order and direction, then the earliest submission; missing values
last; one row per (team, method), its best entry."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest

from evalserver.ranking import Entry, board_columns, rank
from unify import tasks
from unify.tasks import Column, TaskSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    """A task whose primary is declared second, then a lower-is-better column, then one
    more (any real TaskSpec, its columns replaced: the ranking reads only these)."""
    base = next(iter(tasks.all_tasks().values()))
    return dataclasses.replace(
        base,
        columns=(Column("second"), Column("main"), Column("errors", higher_is_better=False)),
        primary="main",
    )


def entry(n: int, team: int = 0, method: str = "", minutes: int = 0, **metrics: float) -> Entry:
    return Entry(
        submission_id=f"s{n:02d}",
        team_id=team if team else n,
        team=f"team{team or n}",
        method=method,
        created_at=T0 + timedelta(minutes=minutes),
        metrics=metrics,
    )


def order(spec: TaskSpec, *entries: Entry) -> list[str]:
    return [row.entry.submission_id for row in rank(entries, spec)]


def test_columns_are_the_primary_then_the_others_in_declared_order(spec: TaskSpec) -> None:
    assert [c.name for c in board_columns(spec)] == ["main", "second", "errors"]


def test_every_real_task_puts_its_primary_first() -> None:
    for task in tasks.all_tasks().values():
        columns = board_columns(task)
        assert columns[0].name == task.primary
        assert sorted(c.name for c in columns) == sorted(c.name for c in task.columns)


def test_primary_then_secondary_in_their_directions(spec: TaskSpec) -> None:
    assert order(
        spec,
        entry(1, main=50, second=1, errors=9),
        entry(2, main=60, second=0, errors=9),
        entry(3, main=50, second=2, errors=9),
        entry(4, main=50, second=2, errors=3),  # fewer errors wins the tie on both above
    ) == ["s02", "s04", "s03", "s01"]


def test_a_lower_is_better_primary_ranks_ascending(spec: TaskSpec) -> None:
    lower = dataclasses.replace(spec, primary="errors")
    assert order(lower, entry(1, errors=5), entry(2, errors=1), entry(3, errors=3)) == [
        "s02",
        "s03",
        "s01",
    ]


def test_ties_go_to_the_earliest_submission_not_the_latest(spec: TaskSpec) -> None:
    late = entry(1, minutes=10, main=70, second=1, errors=1)
    early = entry(2, minutes=5, main=70, second=1, errors=1)
    assert order(spec, late, early) == ["s02", "s01"]
    ranked = rank([late, early], spec)
    assert [r.rank for r in ranked] == [1, 2]


@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_values_rank_last_whatever_the_direction(spec: TaskSpec, missing: object) -> None:
    absent = {} if missing is None else {"main": missing, "errors": missing}
    blank = Entry("s09", 9, "team9", "", T0, absent)
    assert order(spec, blank, entry(1, main=1), entry(2, main=0.5)) == ["s01", "s02", "s09"]
    lower = dataclasses.replace(spec, primary="errors")
    assert order(lower, blank, entry(3, errors=100.0)) == ["s03", "s09"]
    row = next(r for r in rank([blank], spec))
    assert row.values == (None, None, None)


def test_one_row_per_team_and_method_its_best_entry(spec: TaskSpec) -> None:
    rows = rank(
        [
            entry(1, team=1, method="a", main=10),
            entry(2, team=1, method="a", main=30),
            entry(3, team=1, method="b", main=20),
            entry(4, team=2, method="a", main=25),
        ],
        spec,
    )
    assert [(r.rank, r.entry.submission_id) for r in rows] == [(1, "s02"), (2, "s04"), (3, "s03")]


def test_same_team_same_method_tie_keeps_the_earliest(spec: TaskSpec) -> None:
    rows = rank(
        [
            entry(1, team=1, method="a", minutes=9, main=10),
            entry(2, team=1, method="a", minutes=1, main=10),
        ],
        spec,
    )
    assert [r.entry.submission_id for r in rows] == ["s02"]
