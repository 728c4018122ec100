"""Why a scoring process vanished, in words for the submission's row.

A scoring run that dies outright (SIGKILL from the kernel's out-of-memory killer, a crash
in C code) raises nothing: the process is simply gone. The worker's main process sees its
pool child's exit status (Celery's ``WorkerLostError``: "signal 9 (SIGKILL)"), and the
kernel counts out-of-memory kills per memory cgroup (``oom_kill`` in cgroup v2's
``memory.events``, v1's ``memory.oom_control``). Reading that counter when a run starts and
again when its process is lost tells an out-of-memory kill from any other SIGKILL, and the
cgroup's own limit (``memory.max``; a container's or a systemd unit's ``MemoryMax``) is the
"memory limit of N MB" that was exceeded.

The sweeper, which only sees a row left ``running`` by a whole worker that died, uses the
``host:pid`` the worker wrote on the row: on the same host it can tell a process that is
gone from one that is alive but stuck.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import WorkerLostError
from celery.worker.request import Request

__all__ = [
    "MemoryCgroup",
    "ProcessLost",
    "describe_exit",
    "lost_process_request",
    "process_state",
]

log = logging.getLogger("vl12.worker")

#: cgroup v1 reports "no limit" as a page-rounded 2**63 - 1; anything this large is none.
UNLIMITED = 1 << 62

MiB = 1 << 20

_STATUS = re.compile(r"(signal (?P<signal>\d+)|exitcode (?P<code>-?\d+))")


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory cgroup folder of this process (v2 or v1), or ``folder=None`` where there
    is none to read (not Linux, no cgroup file system): then nothing is inferred."""

    folder: Path | None
    version: int = 2

    @classmethod
    def of_this_process(
        cls, root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")
    ) -> MemoryCgroup:
        try:
            lines = proc.read_text().splitlines()
        except OSError:
            return cls(None)
        for line in lines:  # v1 memory controller: "4:memory:/path"
            _, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if "memory" in controllers.split(","):
                return cls(_inside(root / "memory", path, "memory.oom_control"), version=1)
        for line in lines:  # v2 unified: "0::/path"
            if line.startswith("0::"):
                return cls(_inside(root, line[3:], "memory.events"), version=2)
        return cls(None)

    def oom_kills(self) -> int | None:
        """Processes of this cgroup killed by the OOM killer so far (None: unknown)."""
        if self.folder is None:
            return None
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.folder / name).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def limit_mb(self) -> int | None:
        """The cgroup's memory limit in MiB, None when it has none (or it cannot be read)."""
        if self.folder is None:
            return None
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        try:
            value = (self.folder / name).read_text().strip()
        except OSError:
            return None
        if not value.isdigit() or int(value) >= UNLIMITED:
            return None
        return int(value) // MiB


def _inside(mount: Path, path: str, probe: str) -> Path | None:
    """The cgroup's folder under ``mount``; the mount itself where the path is not visible
    (a cgroup namespace: the container sees its own cgroup as the root)."""
    folder = mount / path.lstrip("/")
    if (folder / probe).is_file():
        return folder
    if (mount / probe).is_file():
        return mount
    return None


@dataclass(frozen=True)
class ProcessLost:
    """What is known of a scoring process that died: where it ran, its exit status as the
    pool reported it, and whether the cgroup's OOM-kill counter rose meanwhile."""

    where: str  # host:pid
    status: str  # billiard's words, e.g. "Worker exited prematurely: signal 9 (SIGKILL) ..."
    oom_killed: bool = False
    cgroup_limit_mb: int | None = None

    def message(self, head: str) -> str:
        """The row's error after ``head`` ("scoring T, phase P failed"): the memory limit
        when the cgroup's OOM killer did it, else the signal or exit code, with the host
        and pid that ran it."""
        if self.oom_killed and self.cgroup_limit_mb is not None:
            return (
                f"{head}: memory limit of {self.cgroup_limit_mb} MB exceeded (the memory "
                f"limit of the worker's cgroup); the kernel's out-of-memory killer ended "
                f"the scoring process {self.where}"
            )
        if self.oom_killed:
            return (
                f"{head}: out of memory: the kernel's out-of-memory killer ended the scoring "
                f"process {self.where} (signal 9); the host had no memory left"
            )
        return f"{head}: {describe_exit(self.status)} while scoring, on {self.where}"


def describe_exit(status: str) -> str:
    """"killed by signal 9 (SIGKILL: out of memory?)", "killed by signal 11 (SIGSEGV)",
    "the scoring process exited with code 3", from the pool's report."""
    found = _STATUS.search(status)
    if found is None:
        return f"the scoring process died ({status.strip() or 'no reason given'})"
    if found["signal"] is not None:
        number = int(found["signal"])
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        if number == signal.SIGKILL:
            # Nothing but the OOM killer or an operator sends SIGKILL to a pool child.
            return f"killed by signal {number} ({name}: out of memory?)"
        return f"killed by signal {number} ({name})"
    return f"the scoring process exited with code {found['code']}"


def process_state(where: str | None) -> str | None:
    """For the sweeper: "gone" or "alive" when ``where`` (``host:pid``) names a process on
    this host, else None (another host, or no pid: nothing can be said from here)."""
    if not where or ":" not in where:
        return None
    host, _, pid = where.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:  # exists, another user's
        return "alive"
    return "alive"


#: What settles a row whose process was lost: (the task's first argument, the pool
#: child's pid, the pool's exit status in words, the OOM-kill counter at start and now).
Settle = Callable[[Any, int | None, str, tuple[int | None, int | None]], object]


def lost_process_request(cgroup: MemoryCgroup, settle: Settle) -> type[Request]:
    """A Celery request class (``Task.Request``) for the worker's main process: it outlives
    the pool child that runs the task, so when that child dies (``WorkerLostError``) it
    calls ``settle`` before Celery hands the message back to the broker."""

    class LostProcessRequest(Request):  # type: ignore[misc]
        oom_kills_at_start: int | None = None

        def on_accepted(self, pid: int, time_accepted: float) -> None:
            self.oom_kills_at_start = cgroup.oom_kills()
            super().on_accepted(pid, time_accepted)

        def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                       return_ok: bool = False) -> None:
            exc = exc_info.exception
            if isinstance(exc, ExceptionWithTraceback):
                exc = exc.exc
            if isinstance(exc, WorkerLostError) and self.args:
                try:
                    settle(self.args[0], self.worker_pid, str(exc),
                           (self.oom_kills_at_start, cgroup.oom_kills()))
                except Exception:  # the sweeper still recovers the row
                    log.exception("%s %s: cannot record how its process died", self.name,
                                  self.args[0])
            super().on_failure(exc_info, send_failed_event=send_failed_event,
                               return_ok=return_ok)

    return LostProcessRequest
