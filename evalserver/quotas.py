"""Per-team quotas: submissions per day and in total per leaderboard, and at once.

Quotas are counts over existing rows, so they need no table of their own and cannot drift
from the truth. Only rows that use the server's scoring count: ``queued``, ``running`` and
``scored``. A rejected file is never stored, and a ``failed`` or ``cancelled`` run gives its
place back (spec/evalserver.md: quotas that count failed runs are a known complaint).

* per day: a team's counted submissions to one (benchmark version, task, phase) created in
  the last 24 hours (a rolling window: ``Retry-After`` says when the oldest of them leaves
  it);
* in total: the same without the window (no ``Retry-After``: waiting does not help);
* at once: the team's ``queued`` and ``running`` submissions, every board together.

A refusal is ``QuotaExceeded`` (429), naming the limit and its setting. The check runs
twice: before validation (a refused upload costs no validation) and after it, with the
team's row locked until the insert commits (``lock_team``), so that uploads racing for the
last place cannot both take it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.orm import Session

from evalserver.db.models import BenchmarkPhase, Status, Submission, Team, utcnow
from evalserver.settings import Settings

__all__ = ["CONCURRENT_RETRY_S", "COUNTED", "QuotaExceeded", "Quotas", "lock_team"]

#: The statuses that use a quota.
COUNTED = (Status.queued, Status.running, Status.scored)
ACTIVE = (Status.queued, Status.running)
DAY = timedelta(hours=24)
#: ``Retry-After`` when the team has too many submissions at once: a scoring run of the
#: sample takes a second, a full-scale phase a few.
CONCURRENT_RETRY_S = 10


class QuotaExceeded(Exception):
    """A quota is used up (429). ``retry_after``: seconds until a place frees, or None
    when waiting does not help (the total)."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def lock_team(session: Session, team_id: int) -> None:
    """Hold the team's row until the transaction ends: on PostgreSQL a row lock (the
    team's other uploads wait, other teams do not), on SQLite the database's write lock.
    Checks made after it and the insert that follows are atomic for this team."""
    session.execute(update(Team).where(Team.id == team_id).values(id=Team.id))


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """``COUNT(*) FILTER (WHERE condition)``, spelled so that SQLite and PostgreSQL agree."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _board_name(board: BenchmarkPhase) -> str:
    bench = board.benchmark
    return f"{board.task}, phase {board.phase} of {bench.name} version {bench.version}"


@dataclass(frozen=True)
class Quotas:
    """The limits (0: none)."""

    per_day: int = 0
    total: int = 0
    concurrent: int = 0

    @property
    def active(self) -> bool:
        return bool(self.per_day or self.total or self.concurrent)

    @classmethod
    def of(cls, settings: Settings) -> Quotas:
        return cls(settings.quota_per_day, settings.quota_total, settings.max_concurrent)

    def check_concurrent(self, session: Session, team_id: int) -> None:
        """Raise ``QuotaExceeded`` if ``team_id`` has its limit of submissions at once (the
        API asks this before it reads an upload's body, too: it needs no board)."""
        if not self.concurrent:
            return
        active = session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.team_id == team_id, Submission.status.in_(ACTIVE))
        )
        if (active or 0) >= self.concurrent:
            raise self._too_many_at_once(active)

    def _too_many_at_once(self, active: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"your team has {active} submission(s) queued or running, the server's "
            f"limit of {self.concurrent} at once (VL12_MAX_CONCURRENT); send this "
            "one again when one of them is finished",
            CONCURRENT_RETRY_S,
        )

    def check(
        self, session: Session, team_id: int, board: BenchmarkPhase, now: datetime | None = None
    ) -> None:
        """Raise ``QuotaExceeded`` if one more submission of ``team_id`` to ``board`` would
        pass a limit."""
        now = utcnow() if now is None else now
        if not self.active:
            return
        since = now - DAY
        on_board = and_(
            Submission.on_board(board.benchmark_id, board.task, board.phase),
            Submission.status.in_(COUNTED),
        )
        # One pass over the team's rows (index ix_submissions_team_created) for the three
        # counts: this runs twice per upload, so it must not cost a query per limit.
        active, used, recent = session.execute(
            select(
                _count_where(Submission.status.in_(ACTIVE)),
                _count_where(on_board),
                _count_where(and_(on_board, Submission.created_at > since)),
            ).where(Submission.team_id == team_id)
        ).one()
        if self.concurrent and (active or 0) >= self.concurrent:
            raise self._too_many_at_once(active)
        if self.total and (used or 0) >= self.total:
            raise QuotaExceeded(
                f"your team has used its {self.total} submission(s) in total for "
                f"{_board_name(board)} (VL12_QUOTA_TOTAL; failed and cancelled runs "
                "do not count)",
                None,
            )
        if self.per_day and (recent or 0) >= self.per_day:
            # The place frees when the per_day-th newest leaves the window.
            oldest_counted = session.scalar(
                select(Submission.created_at)
                .where(Submission.team_id == team_id, on_board, Submission.created_at > since)
                .order_by(Submission.created_at.desc())
                .offset(self.per_day - 1)
                .limit(1)
            )
            frees = (oldest_counted or now) + DAY
            wait = max(1, math.ceil((frees - now).total_seconds()))
            raise QuotaExceeded(
                f"your team has used its {self.per_day} submission(s) per 24 hours for "
                f"{_board_name(board)} (VL12_QUOTA_PER_DAY; failed and cancelled runs do "
                f"not count); the next is possible in {wait} s",
                wait,
            )
