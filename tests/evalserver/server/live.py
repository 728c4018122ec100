"""A live server for tests: real worker and sweeper processes (never ``task_always_eager``)
on a fresh data dir and database, with the embedded default (SQLite + kombu's SQLAlchemy
transport) or a private PostgreSQL with a private Redis or a RabbitMQ vhost.

Every process started here is stopped by its own pid (its process group) when the test
ends, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from evalserver.db.migrate import upgrade
from evalserver.db.models import BenchmarkVersion, Status, Submission, Team
from evalserver.db.session import make_engine
from evalserver.metrics import load_groundtruth, validate_file
from evalserver.settings import Settings
from evalserver.worker.celery_app import SCORE_TASK, make_celery
from tests.evalserver.services import (
    PrivatePostgres,
    PrivateRedis,
    free_port,
    private_postgres,
    private_rabbitmq_vhost,
    private_redis,
    wait_for_port,
)
from unify import tasks

ROOT = Path(__file__).resolve().parents[3]

#: Short clocks, so that the sweeper's work is seen within seconds.
FAST = {
    "VL12_SWEEP_INTERVAL_S": "0.5",
    "VL12_QUEUED_DEADLINE_S": "4",
    "VL12_RUNNING_DEADLINE_S": "4",
    "VL12_MAX_ATTEMPTS": "3",
}

BACKENDS = ["sqlite", "postgres-redis", "postgres-rabbitmq"]


@dataclass
class Services:
    """Private servers shared by a test session (a fresh database / broker per test)."""

    postgres: PrivatePostgres | None = None
    redis: PrivateRedis | None = None
    rabbitmq: str | None = None


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM to the child's process group (it leads one), SIGKILL after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # Whatever the leader left behind in its group (a pool child) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Live:
    data_dir: Path
    database_url: str
    broker_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    benchmark_id: int = 0
    _engine: Engine | None = None

    # ------------------------------------------------------------------ setup
    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
        env.update(
            VL12_DATA_DIR=str(self.data_dir),
            VL12_DATABASE_URL=self.database_url,
            VL12_BROKER_URL=self.broker_url,
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        return env | FAST | self.extra_env

    @property
    def settings(self) -> Settings:
        values = {k.removeprefix("VL12_").lower(): v for k, v in (FAST | self.extra_env).items()}
        return Settings(
            data_dir=self.data_dir,
            database_url=self.database_url,
            broker_url=self.broker_url,
            **values,
        )

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def load_benchmark(self, h5: Path) -> None:
        """Register the unified file as a benchmark version, as ``evalserver load`` does."""
        from evalserver.benchmarks import load_benchmark

        with Session(self.engine, expire_on_commit=False) as session:
            outcome = load_benchmark(session, self.data_dir, h5, "tiny")
            self.benchmark_id = outcome.benchmark.id

    def team_token(self, name: str) -> str:
        """A team made as ``evalserver team create`` makes it; its token."""
        from evalserver.teams import create_team

        with Session(self.engine) as session:
            return create_team(session, name)[1]

    def team(self, name: str) -> int:
        with Session(self.engine) as session:
            team = Team(name=name, token_hash=uuid.uuid4().hex * 2)
            session.add(team)
            session.commit()
            return team.id

    # ------------------------------------------------------------------ submissions
    def submit(self, team_id: int, task: str, content: bytes, send: bool = True) -> str:
        """A submission as the API makes one: validated and saved, committed, then sent."""
        sub_id = uuid.uuid4().hex
        folder = self.data_dir / "uploads" / sub_id
        folder.mkdir(parents=True)
        (folder / "upload").write_bytes(content)
        bench_file = self._benchmark_file()
        spec = tasks.get(task)
        gt = load_groundtruth(bench_file, task, spec.default_phase)
        validated = validate_file(task, gt, content)
        validated.save(folder / "validated.npz")
        with Session(self.engine) as session:
            session.add(
                Submission(
                    id=sub_id, team_id=team_id, benchmark_id=self.benchmark_id, task=task,
                    phase=spec.default_phase, file_path=f"uploads/{sub_id}/upload",
                    file_sha256=uuid.uuid4().hex * 2, file_size=len(content),
                    validated_path=f"uploads/{sub_id}/validated.npz",
                )
            )
            session.commit()
        if send:
            self.send(sub_id)
        return sub_id

    def send(self, sub_id: str) -> None:
        make_celery(self.settings).send_task(SCORE_TASK, args=[sub_id])

    def _benchmark_file(self) -> Path:
        with Session(self.engine) as session:
            bench = session.get_one(BenchmarkVersion, self.benchmark_id)
            return self.data_dir / bench.file_path

    def row(self, sub_id: str) -> Submission:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get_one(Submission, sub_id)
            session.expunge(row)
            return row

    def wait(
        self, sub_ids: list[str] | str, until: Callable[[Submission], bool] | None = None,
        timeout: float = 60,
    ) -> list[Submission]:
        """Poll until every row satisfies ``until`` (default: final); the rows."""
        ids = [sub_ids] if isinstance(sub_ids, str) else list(sub_ids)
        until = until or (lambda row: row.status.final)
        deadline = time.monotonic() + timeout
        while True:
            with Session(self.engine, expire_on_commit=False) as session:
                rows = list(session.scalars(select(Submission).where(Submission.id.in_(ids))))
                session.expunge_all()
            if len(rows) == len(ids) and all(until(r) for r in rows):
                return rows
            if time.monotonic() > deadline:
                states = sorted(f"{r.id[:8]}={r.status}/{r.attempts}" for r in rows)
                raise AssertionError(f"rows not there after {timeout} s: {states}")
            for proc in self.procs:
                if proc.poll() is not None and proc.returncode not in (0, -9):
                    raise AssertionError(f"{proc.args} exited with {proc.returncode}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ processes
    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``evalserver ARGS`` as a child in its own process group (stopped at the end)."""
        log = (self.data_dir / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "evalserver.cli", *args],
            env=self.env | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.data_dir,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("worker", "--pool", "solo", "--loglevel", "info", env=env)

    def sweeper(self) -> subprocess.Popen[bytes]:
        return self.start("sweeper")

    def api(self) -> str:
        """``evalserver api`` on a free port; its base URL once it answers."""
        port = free_port()
        self.start("api", "--port", str(port))
        wait_for_port(port, timeout=60)
        return f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.data_dir.glob("*.log"))
        )

    def dispose(self) -> None:
        """Drop the test's own pooled connections (before a database restart)."""
        if self._engine is not None:
            self._engine.dispose()

    def close(self) -> None:
        for proc in self.procs:  # all asked at once, then each waited for
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            stop_group(proc)
        self.procs.clear()
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Started lazily, on the first test that needs each, by ``live_for``."""
    from contextlib import ExitStack

    stack = ExitStack()
    found = Services()
    found.stack = stack  # type: ignore[attr-defined]
    try:
        yield found
    finally:
        stack.close()


def _need(services: Services, kind: str) -> Any:
    stack = services.stack  # type: ignore[attr-defined]
    if kind == "postgres" and services.postgres is None:
        services.postgres = stack.enter_context(private_postgres())
    if kind == "redis" and services.redis is None:
        services.redis = stack.enter_context(private_redis())
    if kind == "rabbitmq" and services.rabbitmq is None:
        services.rabbitmq = stack.enter_context(private_rabbitmq_vhost())
    return getattr(services, kind)


def make_live(backend: str, services: Services, data_dir: Path) -> Live:
    """A fresh database and broker for one test, schema upgraded."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        live = Live(data_dir, f"sqlite:///{data_dir / 'vl12.db'}",
                    f"sqla+sqlite:///{data_dir / 'broker.db'}")
    else:
        postgres = _need(services, "postgres")
        name = f"vl12_{uuid.uuid4().hex[:10]}"
        postgres.create_database(name)
        database_url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
        if backend == "postgres-redis":
            redis = _need(services, "redis")
            import redis as redis_client

            redis_client.Redis.from_url(redis.url).flushall()
            broker = redis.url
        elif backend == "postgres-rabbitmq":
            broker = _need(services, "rabbitmq")
        else:
            raise ValueError(backend)
        live = Live(data_dir, database_url, broker)
    upgrade(live.database_url)
    return live


def rows_status(rows: list[Submission]) -> list[Status]:
    return [r.status for r in rows]
