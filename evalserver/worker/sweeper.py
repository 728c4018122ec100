"""The sweeper: nothing stays queued or running forever.

A message can be lost (the broker was down at upload time, kombu's SQLAlchemy transport
never returns the message of a hard-killed worker) and a worker can die mid-score. The row
is the truth, so one sweep looks only at rows:

* ``queued`` for longer than ``queued_deadline_s`` since its last enqueue: enqueued again
  (a duplicate message is harmless: the worker's claim is guarded);
* ``running`` for longer than ``running_deadline_s``: presumed lost, set back to ``queued``
  and enqueued, unless it already used ``max_attempts``: then ``failed`` with a message
  that says so. Each lost run is noted in the row's log (``lost_runs``: the worker's
  ``host:pid`` and, when that is this host, whether the process is gone, as after the
  OOM killer or a crash, or alive but stuck), and the final message names them all.

(A pool child that dies while its worker lives is settled at once by the worker itself,
``evalserver.worker.lost``; what reaches the sweeper is a whole worker that died or hangs.)

Every change is a guarded UPDATE (the row must still be in the state and attempt we saw),
so a sweeper racing a worker, or two sweepers, change nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from evalserver.db.models import Status, Submission, utcnow
from evalserver.settings import Settings
from evalserver.worker.celery_app import SCORE_TASK, make_celery
from evalserver.worker.lost import process_state
from evalserver.worker.rescore import make_rescore_sender, queue_stale, sweep_rescores

__all__ = ["SweepReport", "make_sender", "run_forever", "sweep"]

log = logging.getLogger("vl12.sweeper")

#: Rows looked at per state and sweep: a backlog is worked through over several sweeps.
BATCH = 500

Sender = Callable[[str], None]


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)  # queued too long: sent again
    reset: list[str] = field(default_factory=list)  # running too long: queued and sent
    failed: list[str] = field(default_factory=list)  # out of attempts
    unsent: list[str] = field(default_factory=list)  # the broker refused: next sweep

    def __bool__(self) -> bool:
        return bool(self.requeued or self.reset or self.failed or self.unsent)


def make_sender(settings: Settings) -> Sender:
    """Send the scoring task by name, giving up quickly when the broker is down (the row
    stays queued and the next sweep tries again)."""
    app = make_celery(settings)
    policy = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}

    def send(submission_id: str) -> None:
        app.send_task(SCORE_TASK, args=[submission_id], retry=True, retry_policy=policy)

    return send


def sweep(
    settings: Settings, engine: Engine, send: Sender, now: datetime | None = None
) -> SweepReport:
    """One pass over stuck rows (see the module's docstring)."""
    now = utcnow() if now is None else now
    report = SweepReport()
    queued_cutoff = now - timedelta(seconds=settings.queued_deadline_s)
    running_cutoff = now - timedelta(seconds=settings.running_deadline_s)

    with engine.connect() as conn:
        stale_queued = conn.execute(
            select(Submission.id)
            .where(Submission.status == Status.queued, Submission.updated_at < queued_cutoff)
            .order_by(Submission.updated_at)
            .limit(BATCH)
        ).scalars().all()
        stale_running = conn.execute(
            select(Submission.id, Submission.attempts, Submission.worker_host, Submission.log)
            .where(Submission.status == Status.running, Submission.updated_at < running_cutoff)
            .order_by(Submission.updated_at)
            .limit(BATCH)
        ).all()

    for submission_id in stale_queued:
        if not _send(send, submission_id, report):
            continue
        with engine.begin() as conn:  # restart its clock, if still untouched
            conn.execute(
                update(Submission)
                .where(
                    Submission.id == submission_id,
                    Submission.status == Status.queued,
                    Submission.updated_at < queued_cutoff,
                )
                .values(updated_at=now)
            )
        report.requeued.append(submission_id)

    for submission_id, attempts, host, run_log in stale_running:
        guard = (
            Submission.id == submission_id,
            Submission.status == Status.running,
            Submission.attempts == attempts,
        )
        new_log = with_lost_run(run_log, attempts, host, now)
        if attempts >= settings.max_attempts:
            message = (
                f"gave up after {attempts} attempt(s): each time the worker stopped answering "
                f"for more than {settings.running_deadline_s:g} s "
                f"({lost_runs_text(new_log)}); the sweeper does not retry it again"
            )
            with engine.begin() as conn:
                done = conn.execute(
                    update(Submission)
                    .where(*guard)
                    .values(status=Status.failed, error=message, finished_at=now, updated_at=now,
                            log=new_log)
                ).rowcount
            if done:
                log.warning("submission %s failed: %s", submission_id, message)
                report.failed.append(submission_id)
            continue
        with engine.begin() as conn:
            done = conn.execute(
                update(Submission)
                .where(*guard)
                .values(status=Status.queued, updated_at=now, worker_host=None, log=new_log)
            ).rowcount
        if done:
            log.warning(
                "submission %s: running on %s past %g s (attempt %d); queued again",
                submission_id, host, settings.running_deadline_s, attempts,
            )
            report.reset.append(submission_id)
            _send(send, submission_id, report)
    return report


def with_lost_run(
    run_log: dict[str, Any] | None, attempt: int, where: str | None, now: datetime
) -> dict[str, Any]:
    """The row's log with this lost run added to ``lost_runs``: where it ran and, when that
    was this host, whether its process is gone or alive."""
    out = dict(run_log or {})
    runs = list(out.get("lost_runs") or [])
    runs.append({
        "attempt": attempt,
        "worker": where,
        "process": process_state(where),
        "at": now.isoformat(),
    })
    out["lost_runs"] = runs[-20:]
    return out


_STATES = {
    "gone": "its process is gone: killed, e.g. by the kernel's out-of-memory killer, or crashed",
    "alive": "its process is alive but stopped answering: stuck?",
}


def lost_runs_text(run_log: dict[str, Any]) -> str:
    """"on h:12 (its process is gone: ...), on h:14 (...)": each lost run, oldest first."""
    parts = []
    for run in run_log.get("lost_runs") or []:
        where = run.get("worker") or "an unknown worker"
        state = _STATES.get(run.get("process") or "")
        parts.append(f"on {where} ({state})" if state else f"on {where}")
    return ", ".join(parts)


def _send(send: Sender, submission_id: str, report: SweepReport) -> bool:
    try:
        send(submission_id)
    except Exception as exc:  # any broker trouble: the row stays queued
        log.warning("could not enqueue %s (%s); the next sweep tries again", submission_id, exc)
        report.unsent.append(submission_id)
        return False
    return True


def run_forever(settings: Settings, engine: Engine, stop: threading.Event) -> None:
    """Sweep every ``sweep_interval_s`` until ``stop`` is set; a database that is down is
    logged and tried again at the next interval."""
    send = make_sender(settings)
    send_rescore = make_rescore_sender(make_celery(settings))
    log.info("sweeper: every %g s (queued %g s, running %g s, %d attempts)",
             settings.sweep_interval_s, settings.queued_deadline_s,
             settings.running_deadline_s, settings.max_attempts)
    while not stop.is_set():
        try:
            report = sweep(settings, engine, send)
            if report:
                log.info("sweep: %d re-sent, %d reset, %d failed, %d unsent",
                         len(report.requeued), len(report.reset), len(report.failed),
                         len(report.unsent))
            rescores = sweep_rescores(settings, engine, send_rescore)
            rescores.stale = queue_stale(engine, send_rescore)
            if rescores:
                log.info("re-scores: %d re-sent, %d reset, %d failed, %d queued for a new "
                         "scorer version", len(rescores.resent), len(rescores.reset),
                         len(rescores.failed), len(rescores.stale))
        except Exception as exc:  # a sweeper must outlive a database restart
            log.warning("sweep failed (%s); next in %g s", exc, settings.sweep_interval_s)
        stop.wait(settings.sweep_interval_s)
