"""The memory limit of one validation or scoring run: ``RLIMIT_AS``'s soft limit, lowered
while the run lasts and restored after.

The limit is what the run may add to the address space its process already holds (its
code, its cached ground truths): N MiB above the current size, read from
``/proc/self/statm``. An allocation past it fails with ``MemoryError`` inside the run,
which the caller turns into a message naming the limit ("memory limit of N MB exceeded"),
instead of the kernel's OOM killer ending the process without a word. Only the soft limit
changes (the hard one stays), so it can be raised again; it is per process: it holds for
the API's validation processes and the worker's prefork and solo pools (a threads pool
would share one limit between its runs).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

__all__ = ["MemoryLimit", "TimeLimit", "address_space"]

log = logging.getLogger(__name__)

MiB = 1 << 20


def address_space() -> int | None:
    """This process's address space in bytes (Linux: ``/proc/self/statm``), else None."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class MemoryLimit:
    """``with MemoryLimit(mb):`` at most ``mb`` MiB more address space inside the block
    (0: no limit, or where the size cannot be read)."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.previous: tuple[int, int] | None = None

    def __enter__(self) -> MemoryLimit:
        if self.memory_mb <= 0:
            return self
        current = address_space()
        if current is None:
            log.warning("memory limits are not enforced here (no /proc/self/statm)")
            return self
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + self.memory_mb * MiB
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        self.previous = (soft, hard)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.previous is not None:
            resource.setrlimit(resource.RLIMIT_AS, self.previous)
            self.previous = None


class TimeLimit:
    """``with TimeLimit(seconds, make_error):`` the block is interrupted by ``make_error()``
    raised from a ``SIGALRM`` timer after ``seconds`` (0: no limit).

    Only in a process's main thread (where Python delivers signals): the worker's prefork
    and solo pools. Elsewhere it does nothing and the pool's own (Celery) limit is the only
    one. A scorer stuck in C code does not see the signal: the pool's hard limit kills it."""

    def __init__(self, seconds: float, make_error: Callable[[], BaseException]) -> None:
        self.seconds = seconds
        self.make_error = make_error
        self.previous: Callable[[int, FrameType | None], object] | int | None = None
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        raise self.make_error()

    def __enter__(self) -> TimeLimit:
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return self
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self.armed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            self.armed = False
