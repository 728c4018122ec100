"""``evalserver serve``: the whole server in one command, needing no other server.

It upgrades its own database, then runs the API (uvicorn), one worker and the sweeper as
child processes, each leading its own process group; on Ctrl-C or SIGTERM it stops the API
first (no new uploads), then the worker (a warm shutdown: the running submission finishes,
or stays ``running`` and the sweeper re-queues it at the next start), then the sweeper,
killing any group still alive after a grace period. On Linux each child also gets
``PR_SET_PDEATHSIG``, so even a SIGKILLed ``serve`` leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evalserver.settings import Settings

__all__ = ["Child", "Serve"]

#: Seconds each process group gets to stop after SIGTERM before SIGKILL.
GRACE_S = 20.0


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when ``serve`` dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        # Their output is log: on serve's stderr, so stdout carries only the URL line.
        self.proc = subprocess.Popen(
            self.argv, env=env, stdout=sys.stderr, start_new_session=True,
            preexec_fn=_die_with_parent(),
        )

    def stop(self, grace: float) -> int | None:
        """SIGTERM to the child (it stops its own children: a worker's warm shutdown ends
        its pool), wait, then SIGKILL its whole process group: after ``grace``, or at once
        for anything it left behind."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                print(f"{self.name} (pid {proc.pid}) did not stop in {grace:g} s: killed",
                      file=sys.stderr)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # anything it left in its group
        return proc.returncode


def _cannot_bind(host: str, port: int) -> str | None:
    """Why the API could not listen there (None: it can), checked before anything starts:
    otherwise another program on the port would answer for us."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Serve:
    settings: Settings
    host: str = "127.0.0.1"
    port: int = 8000
    children: list[Child] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The children read the same settings from the environment."""
        env = dict(os.environ)
        env["VL12_DATA_DIR"] = str(self.settings.data_dir)
        env["VL12_DATABASE_URL"] = self.settings.db_url
        env["VL12_BROKER_URL"] = self.settings.broker
        return env

    def plan(self) -> list[Child]:
        python = sys.executable
        return [
            Child("api", [python, "-m", "uvicorn", "--factory", "evalserver.app.main:create_app",
                          "--host", self.host, "--port", str(self.port), "--no-access-log"]),
            Child("worker", [python, "-m", "evalserver.cli", "worker"]),
            Child("sweeper", [python, "-m", "evalserver.cli", "sweeper"]),
        ]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def dead(self) -> list[Child]:
        """The children that have ended (any of them ending stops ``serve``)."""
        return [c for c in self.children if c.proc is not None and c.proc.poll() is not None]

    def run(self, on_ready: Callable[[threading.Event], None] | None = None) -> int:
        """Until Ctrl-C, SIGTERM or a child's death; the exit status.

        ``on_ready(stop)`` runs once the API answers (``evalserver demo`` submits its entries
        there), in this thread, with the event a signal sets: it returns early when set. An
        exception it raises stops every child, then propagates."""
        from evalserver.db.migrate import upgrade

        problem = _cannot_bind(self.host, self.port)
        if problem is not None:
            print(f"cannot serve on {self.url}: {problem} (choose another --port)",
                  file=sys.stderr)
            return 1
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        upgrade(self.settings.db_url)
        stop = threading.Event()
        reason: list[str] = []

        def on_signal(signum: int, _frame: object) -> None:
            reason.append(signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.children = self.plan()
        status = 0
        try:
            env = self.env()
            for child in self.children:
                child.start(env)
            if self._wait_for_api(stop):
                print(f"vl12 evaluation server: {self.url}  (data dir {self.settings.data_dir})",
                      flush=True)
                if on_ready is not None:
                    on_ready(stop)
            while not stop.is_set():
                dead = self.dead()
                if dead:
                    names = ", ".join(f"{c.name} (exit {c.proc.returncode})" for c in dead
                                      if c.proc is not None)
                    print(f"stopping: {names} ended", file=sys.stderr, flush=True)
                    status = 1
                    break
                stop.wait(0.2)
        finally:
            if reason:
                print(f"stopping ({reason[0]})", file=sys.stderr, flush=True)
            for child in self.children:  # API first: no new uploads while the rest stop
                child.stop(GRACE_S)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return status

    def _wait_for_api(self, stop: threading.Event, timeout: float = 60.0) -> bool:
        """True once the API accepts connections (so the printed URL works at once)."""
        api = self.children[0]
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if api.proc is not None and api.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                stop.wait(0.1)
        return False
