"""Re-scoring: a scored submission scored again (its scorer's version changed, or the admin
asked), in the background, keeping the old result as history.

A re-score is a row of ``rescores``: the job and, once done, the history entry. It moves
like a submission, by guarded UPDATEs, so duplicate messages, a redelivery and two workers
racing on one id still end in one outcome:

* claim: ``queued -> running`` (``attempts += 1``) only ``WHERE status = 'queued'``;
* finish, in ONE transaction: the submission's current result is read, the re-score row
  goes ``running -> done`` (only ``WHERE attempts = <mine>``) recording that result as the
  old one and the new one, and the submission gets the new result only ``WHERE status =
  'scored'`` and its arrays are still the ones read. Either both change or neither.

The submission stays ``scored`` (and on its leaderboards, with its old result) while it is
re-scored; the new arrays go to ``results/<id>/rescore-<n>-<attempt>.npz``, so the old
result's arrays are kept. A submission that is no longer scored when a worker takes the job
(cancelled, failed) is ``skipped``; a scorer that raises fails the re-score with its message
and leaves the submission as it was. The sweeper re-sends re-scores stuck queued or running
(``sweep_rescores``) and queues one for every scored submission whose scorer's version
changed (``queue_stale``).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery, Task
from celery.exceptions import TimeLimitExceeded
from sqlalchemy import Engine, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from evalserver import audit
from evalserver.db.models import (
    BenchmarkVersion,
    Rescore,
    RescoreStatus,
    Status,
    Submission,
    utcnow,
)
from evalserver.metrics import get_scorer
from evalserver.settings import Settings
from evalserver.storage import StorageError
from evalserver.worker.lost import ProcessLost, lost_process_request
from evalserver.worker.stats import board_stats_after_scoring
from evalserver.worker.tasks import (
    FINISH_RETRY_S,
    Outcome,
    WorkerState,
    hold,
    is_transient,
    retrying,
)
from unify import tasks

__all__ = [
    "RESCORE_TASK",
    "RescoreSweep",
    "current_version",
    "queue_stale",
    "register_rescore_task",
    "request_rescore",
    "run_rescore",
    "select_rescorable",
    "send_rescore",
    "stale_reason",
    "sweep_rescores",
]

log = logging.getLogger("vl12.rescore")

#: Sent by name (the API and the sweeper never import the task itself).
RESCORE_TASK = "vl12.rescore_submission"

PENDING = (RescoreStatus.queued, RescoreStatus.running)

Sender = Callable[[int], None]


def current_version(task: str) -> str:
    """The version the worker's scorer of ``task`` reports now (its default rule)."""
    return get_scorer(task).version


def stale_reason(version: str) -> str:
    """The reason of an automatic re-score: one per (submission, new scorer version)."""
    return f"scorer version changed to {version}"


# --------------------------------------------------------------------------- requests


def request_rescore(
    session: Session, sub: Submission, requested_by: str, reason: str
) -> tuple[Rescore | None, bool]:
    """Queue a re-score of ``sub`` (committed; the caller sends ``RESCORE_TASK`` with its id
    after). (job, created): a submission already being re-scored gets its pending job back
    (created False); one that is not scored gets (None, False). Recorded in the audit log."""
    if sub.status != Status.scored:
        return None, False
    pending = session.scalars(
        select(Rescore).where(Rescore.submission_id == sub.id, Rescore.status.in_(PENDING))
    ).first()
    if pending is not None:
        return pending, False
    job = Rescore(
        submission_id=sub.id,
        benchmark_id=sub.benchmark_id,
        requested_by=requested_by[:200],
        reason=reason[:500],
        status=RescoreStatus.queued,
    )
    session.add(job)
    session.flush()
    audit.record(session, requested_by, "rescore", submission_id=sub.id, reason=reason,
                 rescore_id=job.id)
    session.commit()
    return job, True


def select_rescorable(
    session: Session,
    *,
    ids: list[str] | None = None,
    task: str | None = None,
    phase: str | None = None,
    benchmark: str | None = None,
    stale: bool = False,
) -> list[Submission]:
    """The scored submissions a bulk request names: by id, task, phase, benchmark name, and
    (``stale``) only those scored by another version than their scorer's current one."""
    query = select(Submission).where(Submission.status == Status.scored).order_by(
        Submission.created_at, Submission.id
    )
    if ids:
        query = query.where(Submission.id.in_(ids))
    if task is not None:
        query = query.where(Submission.task == task)
    if phase is not None:
        query = query.where(Submission.phase == phase)
    if benchmark is not None:
        query = query.join(BenchmarkVersion).where(BenchmarkVersion.name == benchmark)
    if stale:  # by SQL, one clause per task (the versions are this code's)
        query = query.where(
            or_(
                *(
                    and_(
                        Submission.task == name,
                        Submission.scorer_version.is_distinct_from(current_version(name)),
                    )
                    for name in tasks.task_names()
                )
            )
        )
    return list(session.scalars(query))


# --------------------------------------------------------------------------- the task


class _Changed(Exception):
    """The submission changed under a re-score's final write: roll the transaction back."""


@dataclass
class Rescorer:
    """The worker side: claim, score, finish (see the module's docstring)."""

    state: WorkerState

    @property
    def engine(self) -> Engine:
        return self.state.engine

    def claim(self, rescore_id: int) -> int | None:
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(Rescore)
                .where(Rescore.id == rescore_id, Rescore.status == RescoreStatus.queued)
                .values(
                    status=RescoreStatus.running,
                    attempts=Rescore.attempts + 1,
                    started_at=now,
                    updated_at=now,
                    worker_host=self.state.worker_host(),
                    error=None,
                )
                .returning(Rescore.attempts)
            ).first()
        return None if row is None else int(row[0])

    def load(self, rescore_id: int) -> tuple[Rescore, Submission, BenchmarkVersion]:
        with Session(self.engine, expire_on_commit=False) as session:
            job = session.get_one(Rescore, rescore_id)
            sub = session.get_one(Submission, job.submission_id)
            bench = session.get_one(BenchmarkVersion, job.benchmark_id)
            session.expunge_all()
        return job, sub, bench

    def settle(self, rescore_id: int, attempt: int, **values: Any) -> bool:
        """running -> a final state without touching the submission (failed, skipped)."""
        now = utcnow()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(Rescore)
                .where(
                    Rescore.id == rescore_id,
                    Rescore.status == RescoreStatus.running,
                    Rescore.attempts == attempt,
                )
                .values(finished_at=now, updated_at=now, **values)
            ).rowcount
        return changed == 1

    def finish(self, job: Rescore, attempt: int, values: dict[str, Any]) -> str:
        """The swap, in one transaction: history gets the old result, the row the new one.
        A submission changed by someone else between the read and the write undoes both
        (the re-score stays running; the sweeper gives it another attempt)."""
        try:
            return self._swap(job, attempt, values)
        except _Changed:
            log.warning("re-score %d: submission %s changed meanwhile; not written", job.id,
                        job.submission_id)
            return Outcome.LOST

    def _swap(self, job: Rescore, attempt: int, values: dict[str, Any]) -> str:
        now = utcnow()
        with self.engine.begin() as conn:
            current = conn.execute(
                select(
                    Submission.status,
                    Submission.result,
                    Submission.scorer_name,
                    Submission.scorer_version,
                    Submission.arrays_path,
                ).where(Submission.id == job.submission_id)
            ).one()
            guard = (
                Rescore.id == job.id,
                Rescore.status == RescoreStatus.running,
                Rescore.attempts == attempt,
            )
            if current.status != Status.scored:
                conn.execute(
                    update(Rescore).where(*guard).values(
                        status=RescoreStatus.skipped, finished_at=now, updated_at=now,
                        error=f"the submission became {current.status.value} meanwhile: "
                        "not re-scored",
                    )
                )
                return Outcome.SKIPPED
            changed = conn.execute(
                update(Rescore).where(*guard).values(
                    status=RescoreStatus.done,
                    finished_at=now,
                    updated_at=now,
                    old_scorer_name=current.scorer_name,
                    old_scorer_version=current.scorer_version,
                    old_result=current.result,
                    old_arrays_path=current.arrays_path,
                    new_scorer_version=values["scorer_version"],
                    new_result=values["result"],
                )
            ).rowcount
            if changed != 1:
                return Outcome.LOST  # the sweeper gave this job to a newer attempt
            swapped = conn.execute(
                update(Submission)
                .where(
                    Submission.id == job.submission_id,
                    Submission.status == Status.scored,
                    Submission.arrays_path.is_not_distinct_from(current.arrays_path),
                )
                .values(
                    result=values["result"],
                    scorer_name=values["scorer_name"],
                    scorer_version=values["scorer_version"],
                    arrays_path=values["arrays_path"],
                    updated_at=now,
                )
            ).rowcount
            if swapped != 1:  # changed between our read and write: undo both
                raise _Changed
        return Outcome.SCORED

    def run(self, rescore_id: int) -> str:
        attempt = self.claim(rescore_id)
        if attempt is None:
            log.info("re-score %d is not queued: nothing to do", rescore_id)
            return Outcome.SKIPPED
        job, sub, bench = retrying(lambda: self.load(rescore_id), FINISH_RETRY_S)
        if sub.status != Status.scored:
            retrying(
                lambda: self.settle(
                    rescore_id, attempt, status=RescoreStatus.skipped,
                    error=f"the submission is {sub.status.value}: not re-scored",
                ),
                FINISH_RETRY_S,
            )
            return Outcome.SKIPPED
        name = f"rescore-{rescore_id}-{attempt}.npz"
        try:
            hold(f"rescore-{rescore_id}")
            started = time.monotonic()
            values = self.state.score(sub, bench, attempt, arrays_name=name)
        except Exception as exc:
            if is_transient(exc):
                raise
            message = self.state.describe_failure(sub, exc)
            log.warning("re-score %d of %s failed: %s", rescore_id, sub.id, message)
            retrying(
                lambda: self.settle(
                    rescore_id, attempt, status=RescoreStatus.failed,
                    error=f"{message}\n{traceback.format_exc(limit=20)}"[:16000],
                ),
                FINISH_RETRY_S,
            )
            return Outcome.FAILED
        outcome = retrying(lambda: self.finish(job, attempt, values), FINISH_RETRY_S)
        if outcome != Outcome.SCORED:
            try:
                self.state.storage.delete(values["arrays_path"])
            except StorageError as exc:  # an unreferenced file harms nobody
                log.warning("re-score %d: cannot remove its dropped arrays: %s", rescore_id, exc)
        log.info("re-score %d of %s: %s in %.2f s", rescore_id, sub.id, outcome,
                 time.monotonic() - started)
        if outcome == Outcome.SCORED:  # a new result: the board's statistics follow
            board_stats_after_scoring(self.state, sub.id)
        return outcome


def run_rescore(task: Task, state: WorkerState, rescore_id: int) -> str:
    """The task body: transient trouble is a Celery retry (the claim is idempotent)."""
    try:
        return Rescorer(state).run(rescore_id)
    except Exception as exc:
        if not is_transient(exc):
            raise
        countdown = min(2 ** task.request.retries, 30)
        raise task.retry(exc=exc, countdown=countdown, max_retries=20) from exc


def register_rescore_task(app: Celery, state: WorkerState) -> None:
    """Register ``RESCORE_TASK`` on a worker's app (the same limits as scoring; a pool
    process killed outright fails the job saying how, as for scoring)."""
    settings = state.settings

    def settle_lost(rescore_id: Any, pid: int | None, status: str,
                    oom_kills: tuple[int | None, int | None]) -> None:
        fail_lost(state, int(rescore_id), pid, status, oom_kills)

    class RescoreTask(Task):
        Request = lost_process_request(state.cgroup, settle_lost)

        def on_failure(
            self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            # A hard time limit: the pool killed the child; this runs in the main process.
            if isinstance(exc, TimeLimitExceeded) and args:
                try:
                    fail_killed(state, int(args[0]))
                except Exception:  # the sweeper still recovers the job
                    log.exception("re-score %s: cannot record the time limit", args[0])

    @app.task(
        name=RESCORE_TASK,
        base=RescoreTask,
        bind=True,
        acks_late=True,
        soft_time_limit=settings.score_time_limit_max_s,
        time_limit=settings.score_time_limit_max_s + settings.score_kill_grace_s,
    )
    def _rescore(self: Task, rescore_id: int) -> str:
        return run_rescore(self, state, rescore_id)


def fail_killed(state: WorkerState, rescore_id: int) -> None:
    """A re-score killed past the time limit fails with the limit named (the submission
    keeps its result)."""
    now = utcnow()
    with state.engine.begin() as conn:
        task = conn.execute(
            select(Submission.task)
            .join(Rescore, Rescore.submission_id == Submission.id)
            .where(Rescore.id == rescore_id)
        ).scalar()
        if task is None:
            limit, setting = state.settings.score_time_limit_s, "VL12_SCORE_TIME_LIMIT_S"
        else:
            limit, setting = state.settings.score_time_limit_for(task)
        conn.execute(
            update(Rescore)
            .where(Rescore.id == rescore_id, Rescore.status == RescoreStatus.running)
            .values(
                status=RescoreStatus.failed, finished_at=now, updated_at=now,
                error=f"re-scoring failed: time limit of {limit:g} s exceeded "
                f"({setting}); stopped",
            )
        )


def fail_lost(state: WorkerState, rescore_id: int, pid: int | None, status: str,
              oom_kills: tuple[int | None, int | None]) -> bool:
    """The pool child ``pid`` died while it re-scored (``evalserver.worker.lost``): the job
    fails saying how, if that child still holds it; the submission keeps its result."""
    if not pid:
        return False
    where = f"{state.host}:{pid}"
    before, after = oom_kills
    lost = ProcessLost(
        where=where, status=status,
        oom_killed=before is not None and after is not None and after > before,
        cgroup_limit_mb=state.cgroup.limit_mb(),
    )
    message = lost.message("re-scoring failed")
    now = utcnow()
    with state.engine.begin() as conn:
        changed = conn.execute(
            update(Rescore)
            .where(Rescore.id == rescore_id, Rescore.status == RescoreStatus.running,
                   Rescore.worker_host == where)
            .values(status=RescoreStatus.failed, finished_at=now, updated_at=now, error=message)
        ).rowcount
    if changed:
        log.warning("re-score %s failed: %s", rescore_id, message)
    return changed == 1


# --------------------------------------------------------------------------- sweeping


def make_rescore_sender(celery: Celery) -> Sender:
    def send(rescore_id: int) -> None:
        celery.send_task(RESCORE_TASK, args=[rescore_id], retry=False)

    return send


@dataclass
class RescoreSweep:
    resent: list[int] = field(default_factory=list)
    reset: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # new jobs for a changed scorer version

    def __bool__(self) -> bool:
        return bool(self.resent or self.reset or self.failed or self.stale)


def sweep_rescores(
    settings: Settings, engine: Engine, send: Sender, now: datetime | None = None
) -> RescoreSweep:
    """Re-scores stuck queued are sent again; stuck running are queued again (or failed
    after ``max_attempts``), each by a guarded UPDATE, as the submission sweep does."""
    now = utcnow() if now is None else now
    report = RescoreSweep()
    queued_cutoff = now - timedelta(seconds=settings.queued_deadline_s)
    running_cutoff = now - timedelta(seconds=settings.running_deadline_s)
    with engine.connect() as conn:
        stuck = conn.execute(
            select(Rescore.id, Rescore.status, Rescore.attempts).where(
                (and_(Rescore.status == RescoreStatus.queued, Rescore.updated_at < queued_cutoff))
                | (
                    and_(
                        Rescore.status == RescoreStatus.running,
                        Rescore.updated_at < running_cutoff,
                    )
                )
            )
        ).all()
    for rescore_id, status, attempts in stuck:
        guard = (Rescore.id == rescore_id, Rescore.status == status, Rescore.attempts == attempts)
        if status == RescoreStatus.running and attempts >= settings.max_attempts:
            values: dict[str, Any] = {
                "status": RescoreStatus.failed,
                "finished_at": now,
                "error": f"gave up after {attempts} attempt(s): the worker stopped answering",
            }
            target = report.failed
        else:
            values = {"status": RescoreStatus.queued, "worker_host": None}
            target = report.reset if status == RescoreStatus.running else report.resent
        with engine.begin() as conn:
            if not conn.execute(update(Rescore).where(*guard).values(updated_at=now, **values)
                                ).rowcount:
                continue
        target.append(rescore_id)
        if values["status"] == RescoreStatus.queued:
            try:
                send(rescore_id)
            except Exception as exc:  # the broker is down: the next sweep tries again
                log.warning("could not send re-score %d (%s)", rescore_id, exc)
    return report


def queue_stale(engine: Engine, send: Sender, limit: int = 500) -> list[int]:
    """A re-score for each scored submission whose scorer's version is not the one this
    code reports, once per (submission, version): a worker still running the old scorer
    cannot make it loop. Requested by ``sweeper``; at most ``limit`` per call (a backlog
    is worked through over several sweeps), found by one query per task."""
    made: list[int] = []
    with Session(engine) as session:
        for task in tasks.task_names():
            version = current_version(task)
            reason = stale_reason(version)
            tried = exists().where(
                Rescore.submission_id == Submission.id, Rescore.reason == reason
            )
            rows = session.scalars(
                select(Submission)
                .where(
                    Submission.task == task,
                    Submission.status == Status.scored,
                    Submission.scorer_version.is_distinct_from(version),
                    ~tried,
                )
                .order_by(Submission.created_at, Submission.id)
                .limit(limit - len(made))
            )
            for sub in list(rows):
                job, created = request_rescore(session, sub, "sweeper", reason)
                if job is not None and created:
                    made.append(job.id)
            if len(made) >= limit:
                break
    for rescore_id in made:
        try:
            send(rescore_id)
        except Exception as exc:
            log.warning("could not send re-score %d (%s); the sweep re-sends it", rescore_id, exc)
    return made


def send_rescore(celery: Celery, rescore_id: int) -> bool:
    """Send a committed re-score to the workers; False (logged) when the broker is down: it
    stays queued and the sweeper sends it again."""
    try:
        celery.send_task(RESCORE_TASK, args=[rescore_id], retry=False)
    except Exception as exc:  # any broker or connection failure
        log.warning("re-score %d stays queued: the broker refused it (%s)", rescore_id, exc)
        return False
    return True
