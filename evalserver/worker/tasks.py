"""The scoring task: a message carries a submission id, the database row is the truth.

Every status change is one guarded UPDATE on the row, so a duplicate message, a redelivery
after a crash, a sweeper reset and two workers racing on one id all end in one result:

* claim: ``queued -> running`` (``attempts += 1``); zero rows changed means another worker
  has it or it is final, and the task returns without doing anything;
* finish: ``running -> scored`` or ``running -> failed`` only ``WHERE attempts = <mine>``, so
  a worker that lost its row to the sweeper (it was presumed dead) cannot overwrite the
  newer attempt's outcome.

Only transient errors (the database or broker unreachable) are retried; a scorer that raises
fails the row with its message. Ground truth is loaded once per worker process and kept per
(benchmark version, task, phase).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from evalserver.audit import with_run
from evalserver.db.models import BenchmarkVersion, Status, Submission, utcnow
from evalserver.db.session import make_engine
from evalserver.metrics import (
    GroundTruth,
    get_scorer,
    load_groundtruth,
    load_validated,
    score_validated,
)
from evalserver.metrics.result import Result
from evalserver.rlimits import MemoryLimit, TimeLimit
from evalserver.settings import Settings
from evalserver.storage import Storage, StorageError, make_storage
from evalserver.worker.celery_app import SCORE_TASK, STATS_TASK, make_celery
from evalserver.worker.lost import MemoryCgroup, ProcessLost, lost_process_request
from evalserver.worker.stats import board_stats_after_scoring, seen_of

__all__ = ["HOLD_ENV", "Outcome", "WorkerState", "make_worker_app", "score_submission"]

log = logging.getLogger("vl12.worker")

T = TypeVar("T")

#: Test hook: when set to a folder, a worker that claimed a row writes
#: ``<dir>/running-<id>`` (its pid) and waits while ``<dir>/hold`` exists, before scoring
#: (ignoring the soft time limit while ``<dir>/stuck`` exists).
HOLD_ENV = "VL12_TEST_HOLD_DIR"

#: Longest error message stored on a row (a scorer's report can list many problems).
MAX_ERROR_CHARS = 8000

#: Ground truths kept per worker process (each is one task's phase, in memory).
GT_CACHE_SIZE = 8

#: How long the final guarded UPDATE is retried while the database is unreachable: the
#: result is in hand, and losing it would cost a whole re-score.
FINISH_RETRY_S = 120.0


class Outcome:
    """What a task run did (its return value; logged, never stored: no result backend)."""

    SKIPPED = "skipped"  # not queued when we looked: another worker has it, or it is final
    SCORED = "scored"
    FAILED = "failed"
    LOST = "lost"  # scored, but the row was taken back meanwhile (sweeper): not written


def is_transient(exc: BaseException) -> bool:
    """Database, broker or storage connection trouble: worth retrying, never the
    submission's fault."""
    if isinstance(exc, OperationalError) or (isinstance(exc, StorageError) and exc.transient):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass
class WorkerState:
    """Per worker process: the engine (made after a fork, never inherited) and the cache of
    loaded ground truth."""

    settings: Settings
    host: str = field(default_factory=socket.gethostname)
    _engine: Engine | None = None
    _engine_pid: int = 0
    _cache: OrderedDict[tuple[int, str, str], GroundTruth] = field(default_factory=OrderedDict)
    _seen: OrderedDict[tuple[int, str, str], tuple[np.ndarray | None, int, np.ndarray | None]] = (
        field(default_factory=OrderedDict)
    )
    _storage: Storage | None = None
    #: The memory cgroup whose OOM kills tell a lost pool process's cause
    #: (``evalserver.worker.lost``).
    cgroup: MemoryCgroup = field(default_factory=MemoryCgroup.of_this_process)

    @property
    def storage(self) -> Storage:
        """Where the validated forms, arrays and benchmark files are (``VL12_STORAGE_URL``):
        a worker on another host needs only its URL and credentials."""
        if self._storage is None:
            self._storage = make_storage(self.settings)
        return self._storage

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._engine_pid != os.getpid():
            self._engine = make_engine(self.settings.db_url)
            self._engine_pid = os.getpid()
        return self._engine

    def worker_host(self) -> str:
        return f"{self.host}:{os.getpid()}"

    def groundtruth(self, benchmark: BenchmarkVersion, task: str, phase: str) -> GroundTruth:
        key = (benchmark.id, task, phase)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        gt = load_groundtruth(self.storage.local_path(benchmark.file_path), task, phase)
        self._cache[key] = gt
        while len(self._cache) > GT_CACHE_SIZE:
            self._cache.popitem(last=False)
        return gt

    def seen(
        self, benchmark: BenchmarkVersion, task: str, phase: str, splits: Sequence[str],
        result: Result,
    ) -> np.ndarray | None:
        """The board's seen-in-raw-training mask (``evalserver.stats.leakage``), cached like
        the ground truth: it depends on the benchmark file only, and reading every task's
        training groups costs ~0.1 s on a full-scale file, paid by every scored row before.
        The cached mask is reused only for a result with the same examples in the same
        order."""
        key = (benchmark.id, task, phase)
        ids = None if result.example_ids is None else np.asarray(result.example_ids)
        n = len(result.per_example["score"])
        cached = self._seen.get(key)
        if cached is not None:
            cached_ids, cached_n, mask = cached
            same = cached_n == n and (
                (ids is None and cached_ids is None)
                or (ids is not None and cached_ids is not None
                    and np.array_equal(ids, cached_ids))
            )
            if same:
                self._seen.move_to_end(key)
                return mask
        mask = seen_of(self.storage.local_path(benchmark.file_path), task, splits, result)
        self._seen[key] = (ids, n, mask)
        while len(self._seen) > GT_CACHE_SIZE:
            self._seen.popitem(last=False)
        return mask

    # ------------------------------------------------------------------ transitions
    def claim(self, submission_id: str) -> int | None:
        """queued -> running; the attempt number, or None when the row was not queued."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(Submission)
                .where(Submission.id == submission_id, Submission.status == Status.queued)
                .values(
                    status=Status.running,
                    attempts=Submission.attempts + 1,
                    started_at=now,
                    updated_at=now,
                    finished_at=None,
                    worker_host=self.worker_host(),
                    error=None,
                )
                .returning(Submission.attempts)
            ).first()
        return None if row is None else int(row[0])

    def finish(
        self, submission_id: str, attempt: int, *, held_by: str | None = None, **values: Any
    ) -> bool:
        """running -> final, only if this attempt still owns the row (and, with
        ``held_by``, only if that worker process is the one running it)."""
        now = utcnow()
        guard = [
            Submission.id == submission_id,
            Submission.status == Status.running,
            Submission.attempts == attempt,
        ]
        if held_by is not None:
            guard.append(Submission.worker_host == held_by)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(Submission).where(*guard).values(finished_at=now, updated_at=now, **values)
            ).rowcount
        return changed == 1

    def load(self, submission_id: str) -> tuple[Submission, BenchmarkVersion]:
        with Session(self.engine, expire_on_commit=False) as session:
            sub = session.execute(
                select(Submission).where(Submission.id == submission_id)
            ).scalar_one()
            bench = session.get_one(BenchmarkVersion, sub.benchmark_id)
            session.expunge_all()
        return sub, bench

    # ------------------------------------------------------------------ the task
    def run(self, submission_id: str) -> str:
        attempt = self.claim(submission_id)
        if attempt is None:
            log.info("submission %s is not queued: nothing to do", submission_id)
            return Outcome.SKIPPED
        log.info("submission %s: attempt %d on %s", submission_id, attempt, self.worker_host())
        sub, bench = retrying(lambda: self.load(submission_id), FINISH_RETRY_S)
        started = time.monotonic()
        try:
            hold(submission_id)
            values = self.score(sub, bench, attempt)
        except Exception as exc:  # any scorer failure is the row's outcome
            if is_transient(exc):
                raise
            message = self.describe_failure(sub, exc)
            log.warning("submission %s failed: %s", submission_id, message)
            run_log = with_run(sub.log, self.worker_host(), attempt, sub.created_at, started,
                               trace=traceback.format_exc(limit=20))
            done = retrying(
                lambda: self.finish(
                    submission_id, attempt, status=Status.failed, error=message, log=run_log
                ),
                FINISH_RETRY_S,
            )
            return Outcome.FAILED if done else Outcome.LOST
        values["log"] = with_run(sub.log, self.worker_host(), attempt, sub.created_at, started)
        done = retrying(
            lambda: self.finish(submission_id, attempt, status=Status.scored, **values),
            FINISH_RETRY_S,
        )
        if not done:
            # The sweeper took the row back (we were presumed dead); the newer attempt wins.
            try:
                self.storage.delete(values["arrays_path"])
            except StorageError as exc:  # an unreferenced file harms nobody
                log.warning("submission %s: cannot remove its dropped arrays: %s", sub.id, exc)
            log.warning("submission %s: attempt %d lost its row; result dropped", sub.id, attempt)
            return Outcome.LOST
        log.info("submission %s scored (attempt %d)", submission_id, attempt)
        board_stats_after_scoring(self, submission_id)
        return Outcome.SCORED

    def score(
        self, sub: Submission, bench: BenchmarkVersion, attempt: int, arrays_name: str = ""
    ) -> dict[str, Any]:
        """Score the saved validated form; the row's new values (arrays written first, to
        ``arrays_name`` in the submission's results folder: a re-score never overwrites the
        arrays of the result it replaces)."""
        if sub.validated_path is None:
            raise ValueError("the submission has no validated form (it was never validated)")
        scorer = get_scorer(sub.task)
        # The ground truth (the organiser's, cached) is loaded outside the limit: the limit
        # bounds what the submission costs, and HDF5 does not survive a failed malloc.
        gt = self.groundtruth(bench, sub.task, sub.phase)
        limit, _ = self.settings.score_time_limit_for(sub.task)
        # The pool's limit is the largest task's; a task with a smaller one stops here.
        own_limit = limit if limit < self.settings.score_time_limit_max_s else 0
        with TimeLimit(own_limit, SoftTimeLimitExceeded), \
                MemoryLimit(self.settings.score_memory_mb):
            with self.storage.reading(sub.validated_path) as local:
                validated = load_validated(local)
            result = score_validated(gt, validated)
            del validated
        relative = Path("results") / sub.id / (arrays_name or f"attempt-{attempt}.npz")
        with self.storage.new_file(relative.as_posix()) as target:
            result.save(target)
        return {
            "result": result.to_dict(),
            "scorer_name": scorer.metric,
            "scorer_version": result.version,
            "arrays_path": relative.as_posix(),
        }

    def describe_failure(self, sub: Submission, exc: BaseException) -> str:
        """The scorer's message, with server paths made relative to the data dir."""
        if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
            return self.time_limit_message(sub.task, sub.phase)
        if isinstance(exc, MemoryError):
            return (
                f"scoring {sub.task}, phase {sub.phase} failed: memory limit of "
                f"{self.settings.score_memory_mb} MB exceeded (VL12_SCORE_MEMORY_MB)"
            )
        text = str(exc) or type(exc).__name__
        text = text.replace(f"{self.settings.data_dir}{os.sep}", "")
        message = f"scoring {sub.task}, phase {sub.phase} failed: {text}"
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 40] + " ... (message truncated)"
        return message


    def time_limit_message(self, task: str, phase: str) -> str:
        limit, setting = self.settings.score_time_limit_for(task)
        return (
            f"scoring {task}, phase {phase} failed: time limit of "
            f"{limit:g} s exceeded ({setting}); stopped"
        )

    def fail_killed(self, submission_id: str) -> bool:
        """The pool killed the process scoring ``submission_id`` at the hard time limit
        (the scorer did not stop at the soft one: stuck in C code). Called in the worker's
        main process: the row ends ``failed`` naming the limit instead of waiting for the
        sweeper."""
        with Session(self.engine) as session:
            sub = session.get(Submission, submission_id)
            if sub is None:
                return False
            message = self.time_limit_message(sub.task, sub.phase)
        now = utcnow()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(Submission)
                .where(Submission.id == submission_id, Submission.status == Status.running)
                .values(status=Status.failed, error=message, finished_at=now, updated_at=now)
            ).rowcount
        log.warning("submission %s failed: %s", submission_id, message)
        return changed == 1

    def fail_lost(self, submission_id: str, pid: int | None, status: str,
                  oom_kills: tuple[int | None, int | None]) -> bool:
        """The pool child ``pid`` died while it ran ``submission_id`` (SIGKILL by the OOM
        killer, a crash in C code): called in the worker's main process, which saw its exit
        status. The row ends ``failed`` saying how (``evalserver.worker.lost``), only if that
        child still holds it (``worker_host`` is ``host:pid``: a row the child never claimed,
        or one another worker took meanwhile, is left alone). ``oom_kills``: the cgroup's
        OOM-kill counter when the run started and now."""
        where = f"{self.host}:{pid}" if pid else None
        with Session(self.engine) as session:
            sub = session.get(Submission, submission_id)
            if sub is None or sub.status != Status.running or where is None:
                return False
            if sub.worker_host != where:
                return False
            before, after = oom_kills
            lost = ProcessLost(
                where=where,
                status=status,
                oom_killed=before is not None and after is not None and after > before,
                cgroup_limit_mb=self.cgroup.limit_mb(),
            )
            message = lost.message(f"scoring {sub.task}, phase {sub.phase} failed")
            run_log = dict(sub.log or {})
            run_log.pop("trace", None)  # an earlier run's
            run_log["worker"] = {"host": where, "attempt": sub.attempts, "lost": status}
            attempt = sub.attempts
        changed = self.finish(submission_id, attempt, held_by=where, status=Status.failed,
                              error=message, log=run_log)
        if changed:
            log.warning("submission %s failed: %s", submission_id, message)
        return changed


def retrying(action: Callable[[], T], for_s: float) -> T:
    """``action()``, retried with backoff while it fails transiently, for ``for_s`` seconds."""
    deadline = time.monotonic() + for_s
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database unreachable (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def hold(submission_id: str) -> None:
    """The kill test's hook (``VL12_TEST_HOLD_DIR``); nothing when the variable is unset."""
    folder = os.environ.get(HOLD_ENV)
    if not folder:
        return
    marker = Path(folder) / f"running-{submission_id}"
    partial = marker.with_suffix(".tmp")
    partial.write_text(str(os.getpid()))
    os.replace(partial, marker)
    while (Path(folder) / "hold").exists():
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            # ``<dir>/stuck``: behave as a scorer stuck in C code, deaf to the soft limit.
            if not (Path(folder) / "stuck").exists():
                raise


def score_submission(task: Task, state: WorkerState, submission_id: str) -> str:
    """The task body: transient trouble before the claim is retried by Celery (the claim is
    idempotent), everything else is settled on the row."""
    try:
        return state.run(submission_id)
    except Exception as exc:
        if not is_transient(exc):
            raise
        countdown = min(2 ** task.request.retries, 30)
        log.warning("submission %s: transient error (%s), retry in %d s", submission_id, exc,
                    countdown)
        raise task.retry(exc=exc, countdown=countdown, max_retries=20) from exc


def make_worker_app(settings: Settings) -> Celery:
    """``make_celery``'s app with the scoring task registered under ``SCORE_TASK``."""
    app = make_celery(settings)
    state = WorkerState(settings)

    def settle_lost(submission_id: Any, pid: int | None, status: str,
                    oom_kills: tuple[int | None, int | None]) -> None:
        state.fail_lost(str(submission_id), pid, status, oom_kills)

    class ScoreTask(Task):
        # Its pool process killed outright (the OOM killer): the row says how, at once.
        Request = lost_process_request(state.cgroup, settle_lost)

        def on_failure(
            self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            # A hard time limit: the pool killed the child; this runs in the main process.
            if isinstance(exc, TimeLimitExceeded) and args:
                try:
                    state.fail_killed(str(args[0]))
                except Exception:  # the sweeper still recovers the row
                    log.exception("submission %s: cannot record the time limit", args[0])

    @app.task(
        name=SCORE_TASK,
        base=ScoreTask,
        bind=True,
        acks_late=True,
        soft_time_limit=settings.score_time_limit_max_s,
        time_limit=settings.score_time_limit_max_s + settings.score_kill_grace_s,
    )
    def _score(self: Task, submission_id: str) -> str:
        return score_submission(self, state, submission_id)

    @app.task(name=STATS_TASK, acks_late=True, soft_time_limit=settings.score_time_limit_max_s,
              time_limit=settings.score_time_limit_max_s + 30)
    def _stats(submission_id: str) -> None:
        board_stats_after_scoring(state, submission_id)

    from evalserver.worker.rescore import register_rescore_task

    register_rescore_task(app, state)
    return app
