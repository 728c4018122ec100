"""Leaderboards per (task, phase), as JSON or CSV, and the benchmarks they belong to."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from evalserver.app.deps import DbSession, Viewer, get_viewer
from evalserver.app.schemas import (
    BenchmarkOut,
    BenchmarkRef,
    BoardColumn,
    LeaderboardOut,
    LeaderboardRow,
    PhaseOut,
    TaskOut,
)
from evalserver.csvexport import csv_text, fixed, text_cell
from evalserver.db.models import BenchmarkPhase, BenchmarkVersion
from evalserver.ranking import Entry, board_columns, rank
from evalserver.submissions import BoardNotFound, find_board, visible_submissions
from unify import tasks
from unify.tasks import TaskSpec

router = APIRouter(tags=["leaderboards"])


def _columns(spec: TaskSpec) -> list[BoardColumn]:
    return [
        BoardColumn(
            name=c.name,
            higher_is_better=c.higher_is_better,
            precision=c.precision,
            primary=c.name == spec.primary,
            description=c.description,
        )
        for c in board_columns(spec)
    ]


def leaderboard(session: DbSession, viewer: Viewer, board: BenchmarkPhase) -> LeaderboardOut:
    """The ranked board as this viewer may see it: private entries only for their team and
    the admin (filtered before ranking: a hidden better entry never moves a public one)."""
    spec = tasks.get(board.task)
    entries = [
        Entry(
            submission_id=row.id,
            team_id=row.team_id,
            team=row.team.name,
            method=row.method_name,
            created_at=row.created_at,
            metrics=(row.result or {}).get("metrics") or {},
            is_public=row.is_public,
            is_baseline=row.is_baseline,
            extra={
                "paper_url": row.paper_url,
                "code_url": row.code_url,
                "stats": (row.result or {}).get("stats"),
            },
        )
        for row in visible_submissions(
            session, board, admin=viewer.admin, team_id=viewer.team.id if viewer.team else None
        )
    ]
    ranked = rank(entries, spec)
    names = [c.name for c in board_columns(spec)]
    rows = [
        LeaderboardRow(
            rank=r.rank,
            team=r.entry.team,
            method_name=r.entry.method,
            metrics=dict(zip(names, r.values, strict=True)),
            created_at=r.entry.created_at,
            public=r.entry.is_public,
            baseline=r.entry.is_baseline,
            paper_url=(r.entry.extra or {}).get("paper_url", ""),
            code_url=(r.entry.extra or {}).get("code_url", ""),
            submission_id=r.entry.submission_id if viewer.owns(r.entry.team_id) else None,
            stats=(r.entry.extra or {}).get("stats"),
        )
        for r in ranked
    ]
    return LeaderboardOut(
        benchmark=BenchmarkRef.of(board.benchmark),
        task=board.task,
        phase=board.phase,
        splits=list(board.splits),
        hidden=board.hidden,
        columns=_columns(spec),
        rows=rows,
    )


def to_csv(board: LeaderboardOut) -> str:
    """One line per row: rank, team, method, the columns at their declared precision
    (empty when missing), then baseline, public and the submission time. Team and method
    names are made safe for spreadsheets (``evalserver.csvexport``); numbers stay numbers."""
    names = [c.name for c in board.columns]
    return csv_text(
        ["rank", "team", "method", *names, "baseline", "public", "submitted_at"],
        (
            [
                row.rank,
                text_cell(row.team),
                text_cell(row.method_name),
                *(fixed(row.metrics[c.name], c.precision) for c in board.columns),
                row.baseline,
                row.public,
                row.created_at.isoformat(),
            ]
            for row in board.rows
        ),
    )


@router.get(
    "/leaderboards/{task}",
    response_model=LeaderboardOut,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv."},
        404: {"description": "No loaded benchmark has this (task, phase)."},
    },
)
def get_leaderboard(
    task: str,
    session: DbSession,
    viewer: Annotated[Viewer, Depends(get_viewer)],
    phase: str | None = None,
    benchmark: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    format: Literal["json", "csv"] = "json",
) -> LeaderboardOut | Response:
    """The leaderboard of (task, phase) of a benchmark version (default: the newest loaded
    one with this board). Ranking: the primary column in its direction, then the task's
    other columns in declared order, then the earliest submission; missing values last; one
    row per (team, method), its best entry."""
    try:
        board = find_board(session, task, phase, benchmark, version)
    except BoardNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    out = leaderboard(session, viewer, board)
    if format == "csv":
        name = f"{out.benchmark.name}-v{out.benchmark.version}-{task}-{out.phase}.csv"
        return Response(
            to_csv(out),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return out


@router.get("/benchmarks", response_model=list[BenchmarkOut])
def list_benchmarks(session: DbSession) -> list[BenchmarkOut]:
    """Every loaded benchmark version (newest first) with its tasks, their columns and
    their phases (which are hidden). Never the ground truth, nor where the file is."""
    versions = session.scalars(
        select(BenchmarkVersion)
        .options(selectinload(BenchmarkVersion.phases))
        .order_by(BenchmarkVersion.id.desc())
    )
    out = []
    for bench in versions:
        by_task: dict[str, list[BenchmarkPhase]] = {}
        for phase in bench.phases:
            by_task.setdefault(phase.task, []).append(phase)
        task_list = []
        for name in tasks.task_names():  # the declared order of tasks
            if name not in by_task:
                continue
            spec = tasks.get(name)
            order = {p: i for i, p in enumerate(spec.phase_names)}
            phases = sorted(by_task[name], key=lambda p: order.get(p.phase, len(order)))
            task_list.append(
                TaskOut(
                    task=name,
                    title=spec.title,
                    primary=spec.primary,
                    columns=_columns(spec),
                    phases=[
                        PhaseOut(
                            phase=p.phase,
                            splits=list(p.splits),
                            hidden=p.hidden,
                            num_examples=p.num_examples,
                            default=p.phase == spec.default_phase,
                        )
                        for p in phases
                    ],
                )
            )
        out.append(
            BenchmarkOut(
                name=bench.name,
                version=bench.version,
                fingerprint=bench.fingerprint,
                schema_version=bench.schema_version,
                loaded_at=bench.loaded_at,
                tasks=task_list,
            )
        )
    return out
