"""Validating an upload in a child process with a memory limit and a time limit.

A participant's file is parsed by the task's validator, which is bounded (``Limits``) but
still costs a small multiple of the file's size; one hostile or huge file must not take
the API down. So validation never runs in the API's process: it runs in a pool of
``spawn``ed processes, each validation under an address-space limit (``RLIMIT_AS``: what
it may add to the process, ``evalserver.rlimits``) and a timer (``ITIMER_REAL``) that
interrupts it.

* past the memory limit the validator's allocation fails (``MemoryError``) inside the
  child, which answers "over the memory limit" and lives on; a child killed outright (by
  the kernel) breaks the pool, which the API replaces (503);
* past the time limit the child's timer interrupts the validator; a validator stuck in C
  code past the timer plus ``KILL_GRACE_S`` has its pool's processes killed from the API's
  side (and the pool replaced).

Either way the caller gets ``OverLimit`` with a message naming the limit and its setting,
and nothing is stored. The API's own memory does not grow with the upload: it only streams
the body to disk (``evalserver.app.upload``).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalserver.metrics import GroundTruth, Limits, load_groundtruth, validate_file
from evalserver.rlimits import MemoryLimit
from evalserver.settings import Settings

__all__ = [
    "KILL_GRACE_S",
    "OverLimit",
    "ValidationLimits",
    "make_pool",
    "run_validation",
    "validate_in_child",
    "validate_stored",
]

#: How long after its own timer a validation may still run before the API kills its pool
#: (the timer cannot interrupt a long C call).
KILL_GRACE_S = 30.0

#: Ground truths one validation process keeps (a few leaderboards are hot at a time).
_GT_CACHE = 4


class OverLimit(Exception):
    """Validating the file passed the memory or time limit (413; nothing stored).
    ``pool_killed``: the pool's processes were killed (the caller replaces the pool)."""

    def __init__(self, message: str, pool_killed: bool = False) -> None:
        super().__init__(message)
        self.pool_killed = pool_killed


class _TimeUp(BaseException):
    """Raised in the child by its timer (a BaseException: a validator's ``except
    Exception`` must not swallow it)."""


@dataclass(frozen=True)
class ValidationLimits:
    """What one validation may use: the validator's ``Limits`` (bytes as stored and after
    gunzip) and the child's memory and time."""

    max_bytes: int = 1 << 30
    max_decompressed_bytes: int = 2 << 30
    memory_mb: int = 6144
    time_limit_s: float = 300.0

    @classmethod
    def of(cls, settings: Settings) -> ValidationLimits:
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_decompressed_bytes=settings.max_decompressed_bytes,
            memory_mb=settings.validation_memory_mb,
            time_limit_s=settings.validation_time_limit_s,
        )

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_bytes, max_decompressed_bytes=self.max_decompressed_bytes)

    def memory_message(self) -> str:
        return (
            f"validating this file needed more memory than the server's limit of "
            f"{self.memory_mb} MB (VL12_VALIDATION_MEMORY_MB); nothing was stored"
        )

    def time_message(self) -> str:
        return (
            f"validating this file took longer than the server's limit of "
            f"{self.time_limit_s:g} s (VL12_VALIDATION_TIME_LIMIT_S); nothing was stored"
        )


# --------------------------------------------------------------------------- the child


def make_pool(processes: int) -> ProcessPoolExecutor:
    """The validation processes (``spawn``: a fork of a threaded server is unsafe)."""
    return ProcessPoolExecutor(
        max_workers=processes, mp_context=multiprocessing.get_context("spawn")
    )


@functools.lru_cache(maxsize=_GT_CACHE)
def _groundtruth(benchmark_file: str, task: str, phase: str) -> GroundTruth:
    # A benchmark file is named by its fingerprint and never rewritten: the path is the key.
    return load_groundtruth(benchmark_file, task, phase)


def validate_stored(
    benchmark_file: str,
    task: str,
    phase: str,
    upload: str,
    validated_out: str,
    limits: Limits | int,
) -> dict[str, Any]:
    """Validate ``upload`` and, when it is good, save its validated form to
    ``validated_out``. Returns a picklable report: ``ok``, ``total``, ``problems`` (each as
    text and as fields) and what it was checked against. ``limits``: the validator's
    bounds (an int: ``Limits.max_bytes`` alone)."""
    if isinstance(limits, int):
        limits = Limits(max_bytes=limits)
    gt = _groundtruth(benchmark_file, task, phase)
    validated = validate_file(task, gt, upload, limits=limits)
    against = f"{task}, phase {phase} ({', '.join(validated.splits)})"
    if validated.ok:
        validated.save(validated_out)
        return {"ok": True, "total": 0, "problems": [], "against": against}
    problems = validated.listing()
    return {
        "ok": False,
        "total": validated.total,
        "against": against,
        "message": f"{validated.total} problem(s) for {against}; the file was not stored",
        "problems": [
            {
                "text": str(p),
                "message": p.message,
                "location": p.location,
                "id": p.id,
                "id_field": p.id_field,
            }
            for p in problems
        ],
    }


def _time_up(signum: int, frame: Any) -> None:
    raise _TimeUp


def validate_in_child(
    benchmark_file: str,
    task: str,
    phase: str,
    upload: str,
    validated_out: str,
    limits: ValidationLimits,
) -> dict[str, Any]:
    """``validate_stored`` under the time limit (this process's timer), answering
    ``{"over": "memory"}`` or ``{"over": "time"}`` instead of raising when a limit is
    passed; a half-written validated form is removed."""
    # The ground truth (the organiser's, cached) is loaded outside both limits: they bound
    # what the upload costs, HDF5 does not survive a failed malloc, and a timer that fires
    # inside h5py would leave the process's cached ground truth half-loaded.
    _groundtruth(benchmark_file, task, phase)
    previous = signal.signal(signal.SIGALRM, _time_up)
    signal.setitimer(signal.ITIMER_REAL, limits.time_limit_s)
    over: str | None = None
    try:
        with MemoryLimit(limits.memory_mb):
            return validate_stored(
                benchmark_file, task, phase, upload, validated_out, limits.limits
            )
    except MemoryError:
        over = "memory"
    except _TimeUp:
        over = "time"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    Path(validated_out).unlink(missing_ok=True)
    return {"ok": False, "over": over}


# --------------------------------------------------------------------------- the API side


def _kill_processes(pool: Executor) -> None:
    """Kill a process pool's processes (its validator is stuck past the timer): the pool
    is broken from then on and must be replaced (``Services.discard_pool``)."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()


def _wait(future: Future[dict[str, Any]], pool: Executor, limits: ValidationLimits) -> None:
    """Wait for ``future``; kill the pool once it has run past the time limit plus
    ``KILL_GRACE_S`` (counted from when it left the queue: uploads may wait their turn)."""
    started: float | None = None
    backstop = limits.time_limit_s + KILL_GRACE_S
    while True:
        try:
            future.exception(timeout=0.5)
            return
        except TimeoutError:
            pass
        if started is None and future.running():
            started = time.monotonic()
        if started is not None and time.monotonic() - started > backstop:
            _kill_processes(pool)
            raise OverLimit(limits.time_message(), pool_killed=True)


def run_validation(
    pool: Executor,
    limits: ValidationLimits,
    benchmark_file: str,
    task: str,
    phase: str,
    upload: str,
    validated_out: str,
) -> dict[str, Any]:
    """Validate in ``pool`` (blocking; run it off the event loop): the report, or
    ``OverLimit`` naming the limit. A pool whose process died raises ``BrokenProcessPool``
    (the caller replaces it)."""
    future = pool.submit(
        validate_in_child, benchmark_file, task, phase, upload, validated_out, limits
    )
    _wait(future, pool, limits)
    report = future.result()
    if report.get("over") == "memory":
        raise OverLimit(limits.memory_message())
    if report.get("over") == "time":
        raise OverLimit(limits.time_message())
    return report
