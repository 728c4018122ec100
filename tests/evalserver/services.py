"""Private servers for the live tests: a ``redis-server``, a PostgreSQL cluster and a
RabbitMQ virtual host, each started on a free port (or a fresh vhost) inside the test and
stopped by its own pid. The machine's shared services are never stopped or reconfigured:
the fault tests stop and restart these private ones.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PrivatePostgres",
    "PrivateRedis",
    "free_port",
    "private_postgres",
    "private_rabbitmq_vhost",
    "private_redis",
    "wait_for_port",
]

POSTGRES_BIN = Path(os.environ.get("VL12_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


def stop_pid(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10) -> None:
    """Stop one process we started (by its pid): ``sig``, then SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --------------------------------------------------------------------------- redis


@dataclass
class PrivateRedis:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (needed by the live broker tests)")
    folder = Path(tempfile.mkdtemp(prefix="vl12-redis-"))
    server = PrivateRedis(free_port(), folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- postgres


def _as_postgres(*args: str) -> list[str]:
    """A command run as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return list(args)


@dataclass
class PrivatePostgres:
    port: int
    folder: Path  # data dir + socket dir, owned by postgres
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/vl12"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            _as_postgres(
                str(POSTGRES_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        deadline = time.monotonic() + 30
        while self._psql("SELECT 1", "postgres").returncode != 0:  # accepting, not recovering
            if time.monotonic() > deadline:
                raise TimeoutError("the private PostgreSQL did not accept queries")
            time.sleep(0.1)

    def _psql(self, sql: str, db: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(POSTGRES_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", db, "-Atc", sql],
            capture_output=True,
            check=False,
        )

    def create_database(self, name: str = "vl12") -> None:
        result = self._psql(f'CREATE DATABASE "{name}"', "postgres")
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode())

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by its pid), waiting for it to end."""
        pid = self.postmaster_pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throwaway cluster (initdb as postgres, trust auth) with an empty database ``vl12``."""
    if not (POSTGRES_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL is not installed under {POSTGRES_BIN} (VL12_PG_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="vl12-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PrivatePostgres(free_port(), folder)
    try:
        subprocess.run(
            _as_postgres(str(POSTGRES_BIN / "initdb"), "-D", str(server.data), "-A", "trust",
                         "-U", "postgres", "--no-sync", "-E", "UTF8"),
            check=True,
            capture_output=True,
        )
        server.start()
        server.create_database()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- rabbitmq


@contextmanager
def private_rabbitmq_vhost(host: str = "127.0.0.1", port: int = 5672) -> Iterator[str]:
    """A fresh virtual host on the machine's RabbitMQ (the server itself is shared and is
    never stopped), deleted afterwards; yields its ``amqp://`` URL."""
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl is not installed (needed by the RabbitMQ tests)")
    vhost = f"vl12-test-{uuid.uuid4().hex[:12]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True,
                   timeout=60)
    try:
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True, capture_output=True, timeout=60,
        )
        yield f"amqp://guest:guest@{host}:{port}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60,
                       check=False)
