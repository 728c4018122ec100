"""What the pages show, computed from the database: a task's ranked board (the API's
ranking, ``evalserver.ranking.rank``) with each row's stored statistics, and the
benchmark-wide 12-in-1 view that joins the task boards by (team, method).

Pure data: the templates only format it. Private entries are filtered before ranking, as in
the API, so a hidden better entry never moves a public one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from evalserver.app.deps import Viewer
from evalserver.db.models import BenchmarkPhase, BenchmarkVersion, Submission
from evalserver.ranking import Entry, RankedRow, board_columns, rank
from evalserver.submissions import visible_submissions
from unify import tasks
from unify.tasks import GROUPS, Column, TaskSpec

__all__ = [
    "BenchmarkBoard",
    "BenchmarkRow",
    "TaskBoard",
    "benchmark_board",
    "leaderboard_phase",
    "task_board",
]


def _entry(row: Submission) -> Entry:
    return Entry(
        submission_id=row.id,
        team_id=row.team_id,
        team=row.team.name,
        method=row.method_name,
        created_at=row.created_at,
        metrics=(row.result or {}).get("metrics") or {},
        is_public=row.is_public,
        is_baseline=row.is_baseline,
        extra={"result": row.result or {}},
    )


def stats_of(row: RankedRow) -> dict[str, Any]:
    """The statistics the worker stored with the result (``evalserver.worker.stats``)."""
    return dict(((row.entry.extra or {}).get("result") or {}).get("stats") or {})


@dataclass
class TaskBoard:
    board: BenchmarkPhase
    spec: TaskSpec
    columns: tuple[Column, ...]
    rows: list[RankedRow]


def task_board(session: Session, viewer: Viewer, board: BenchmarkPhase) -> TaskBoard:
    spec = tasks.get(board.task)
    rows = rank((_entry(r) for r in visible_submissions(
            session, board, admin=viewer.admin, team_id=viewer.team.id if viewer.team else None
        )), spec)
    return TaskBoard(board, spec, board_columns(spec), rows)


def leaderboard_phase(bench: BenchmarkVersion, spec: TaskSpec) -> BenchmarkPhase | None:
    """The board of ``spec`` that the benchmark view shows: the task's default phase."""
    for phase in bench.phases:
        if phase.task == spec.name and phase.phase == spec.default_phase:
            return phase
    return None


@dataclass
class BenchmarkRow:
    team: str
    team_id: int
    method: str
    baseline: bool
    public: bool
    #: task -> (primary value, its interval half-width or None, submission id)
    cells: dict[str, tuple[float, float | None, str]] = field(default_factory=dict)
    average: float | None = None
    groups: dict[str, float | None] = field(default_factory=dict)
    complete: bool = False
    rank: int = 0


@dataclass
class BenchmarkBoard:
    bench: BenchmarkVersion
    #: (spec, the board shown, its primary column), in the declared task order.
    tasks: list[tuple[TaskSpec, BenchmarkPhase, Column]]
    #: group name -> its tasks on this benchmark (only groups with tasks).
    groups: dict[str, list[str]]
    rows: list[BenchmarkRow]
    sort: str
    descending: bool


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def sort_keys(board_tasks: Sequence[str], groups: Sequence[str]) -> list[str]:
    """Every column the benchmark view can be sorted by."""
    return ["average", *(f"group:{g}" for g in groups), *board_tasks, "team", "method"]


def benchmark_board(
    session: Session, viewer: Viewer, bench: BenchmarkVersion, sort: str = "average",
    descending: bool | None = None,
) -> BenchmarkBoard:
    """One row per (team, method) with the primary metric of each task's leaderboard phase
    (its best entry by the task's ranking), the 12-in-1 average over the tasks and the
    average per TaskSpec group. Rows missing a task keep their averages (over fewer tasks)
    but rank after every complete row, whatever the sort column."""
    shown: list[tuple[TaskSpec, BenchmarkPhase, Column]] = []
    for name in tasks.task_names():
        spec = tasks.get(name)
        board = leaderboard_phase(bench, spec)
        if board is not None:
            shown.append((spec, board, spec.column(spec.primary)))
    groups: dict[str, list[str]] = {}
    for group in GROUPS:
        members = [spec.name for spec, _, _ in shown if spec.group == group]
        if members:
            groups[group] = members
    rows: dict[tuple[int, str], BenchmarkRow] = {}
    for spec, board, _ in shown:
        for ranked in task_board(session, viewer, board).rows:
            value = ranked.values[0]
            if value is None:
                continue
            entry = ranked.entry
            row = rows.setdefault(
                (entry.team_id, entry.method),
                BenchmarkRow(entry.team, entry.team_id, entry.method, False, True),
            )
            row.baseline = row.baseline or entry.is_baseline
            row.public = row.public and entry.is_public
            half = stats_of(ranked).get("half_width")
            row.cells[spec.name] = (value, half, entry.submission_id)
    names = [spec.name for spec, _, _ in shown]
    for row in rows.values():
        row.complete = len(row.cells) == len(names)
        row.average = _mean([row.cells[n][0] for n in names if n in row.cells])
        for group, members in groups.items():
            row.groups[group] = _mean([row.cells[n][0] for n in members if n in row.cells])
    keys = sort_keys(names, list(groups))
    if sort not in keys:
        sort = "average"
    text_sort = sort in ("team", "method")
    if descending is None:
        descending = not text_sort
    ordered = _order(list(rows.values()), sort, descending, shown)
    for i, row in enumerate(ordered, start=1):
        row.rank = i
    return BenchmarkBoard(bench, shown, groups, ordered, sort, descending)


def _order(
    rows: list[BenchmarkRow], sort: str, descending: bool,
    shown: Sequence[tuple[TaskSpec, BenchmarkPhase, Column]],
) -> list[BenchmarkRow]:
    """Complete rows first; within them and within the partial rows, the sort column in the
    asked direction (a task column's "descending" means best first, whatever its metric's
    direction), missing values last; ties by team and method, so the order is total.
    Stable sorts, from the least significant key up."""
    ordered = sorted(rows, key=lambda r: (r.team.casefold(), r.method.casefold(), r.team_id))
    if sort in ("team", "method"):
        ordered.sort(key=lambda r: (r.team if sort == "team" else r.method).casefold(),
                     reverse=descending)
    else:
        column = next((c for s, _, c in shown if s.name == sort), None)
        best_first = descending
        if column is not None and not column.higher_is_better:
            best_first = not descending

        def value(row: BenchmarkRow) -> float | None:
            if sort == "average":
                return row.average
            if sort.startswith("group:"):
                return row.groups.get(sort.removeprefix("group:"))
            cell = row.cells.get(sort)
            return None if cell is None else cell[0]

        present = [r for r in ordered if value(r) is not None]
        present.sort(key=lambda r: value(r) or 0.0, reverse=best_first)
        ordered = present + [r for r in ordered if value(r) is None]
    ordered.sort(key=lambda r: not r.complete)
    return ordered
