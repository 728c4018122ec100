"""The admin's audit log: every admin action (hide, cancel, baseline, re-score, a team's
token revoked or rotated), from the API or the command line, is one row of ``audit_log``
written in the same transaction as the action, so an action is never without its record.

The actor names the channel: ``admin (api)`` for the admin token, ``admin (cli USER@HOST)``
for an operator command, ``sweeper`` for a re-score it started by itself.
"""

from __future__ import annotations

import getpass
import socket
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evalserver.db.models import AuditEntry, utcnow

__all__ = ["API_ADMIN", "cli_actor", "entries", "record", "visible_log", "with_run"]

#: Keys of a submission's ``log`` only the admin sees (a trace names server internals).
ADMIN_ONLY = ("trace",)

API_ADMIN = "admin (api)"


def cli_actor() -> str:
    """Who runs an operator command: the user and host (the shell's user, not a secret)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return f"admin (cli {user}@{socket.gethostname()})"[:200]


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    submission_id: str | None = None,
    team_id: int | None = None,
    **detail: Any,
) -> AuditEntry:
    """Add one entry to ``session`` (committed with the action by the caller)."""
    entry = AuditEntry(
        actor=actor[:200],
        action=action,
        submission_id=submission_id,
        team_id=team_id,
        detail=detail or None,
    )
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    submission_id: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest entries first, optionally of one submission or one action."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if submission_id is not None:
        query = query.where(AuditEntry.submission_id == submission_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query))


# --------------------------------------------------------------------------- a submission's log


def with_run(
    log: dict[str, Any] | None,
    host: str,
    attempt: int,
    created_at: datetime,
    started: float,
    trace: str | None = None,
) -> dict[str, Any]:
    """A submission's ``log`` with its latest scoring run: the worker host, attempt and
    timings (waited in the queue, scoring), and the error's trace when it failed."""
    out = dict(log or {})
    out["worker"] = {
        "host": host,
        "attempt": attempt,
        "queued_s": round((utcnow() - created_at).total_seconds() - (time.monotonic() - started),
                          3),
        "score_s": round(time.monotonic() - started, 3),
    }
    out.pop("trace", None)
    if trace is not None:
        out["trace"] = trace[-16000:]
    return out


def visible_log(log: dict[str, Any] | None, admin: bool) -> dict[str, Any]:
    """What a viewer of a submission's log sees: all of it for the admin, no trace for its
    team."""
    out = dict(log or {})
    if not admin:
        for key in ADMIN_ONLY:
            out.pop(key, None)
    return out
