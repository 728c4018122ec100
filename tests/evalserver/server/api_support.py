"""Fixtures of the API tests: a migrated database (SQLite in the data dir, or a private
database on the machine's PostgreSQL), the tiny sample loaded as a benchmark, two teams and
an admin, and a TestClient of ``make_app``. No worker: the broker is kombu's in-memory
transport, and tests read the messages the API sent from it.

PostgreSQL: a uniquely named database is created on the shared server (``VL12_TEST_PG``,
default ``postgresql+psycopg://postgres@127.0.0.1:5432``, trust auth) for one test and
dropped after it, pass or fail; no other database is touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import h5py
import pytest
from fastapi.testclient import TestClient
from kombu import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from evalserver.app.main import make_app
from evalserver.benchmarks import load_benchmark
from evalserver.db.migrate import upgrade
from evalserver.db.models import BenchmarkPhase
from evalserver.db.session import make_engine, make_sessionmaker
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.settings import Settings
from evalserver.storage import make_storage
from evalserver.teams import create_team

PG_SERVER = os.environ.get("VL12_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
ADMIN_TOKEN = "admin-token-for-tests"
#: The board the tests submit to: the task's default phase (vqa2 minval in the sample).
TASK = "vqa2"


@contextmanager
def private_pg_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped on exit (its connections closed first)."""
    name = f"vl12_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'vl12.db'}"
    else:
        with private_pg_database() as url:
            yield url


@dataclass
class Server:
    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]
    tokens: dict[str, str]
    gt_path: Path

    def auth(self, who: str) -> dict[str, str]:
        token = ADMIN_TOKEN if who == "admin" else self.tokens[who]
        return {"Authorization": f"Bearer {token}"}

    def submit(
        self, who: str, content: bytes, name: str = "predictions.json", **form: Any
    ) -> Any:
        fields = {"task": TASK, "method_name": "m"} | {k: str(v) for k, v in form.items()}
        return self.client.post(
            "/api/v1/submissions",
            headers=self.auth(who),
            files={"file": (name, content, "application/octet-stream")},
            data=fields,
        )

    def sent(self) -> list[dict[str, Any]]:
        """The messages the API sent to the in-memory broker (consumed)."""
        out = []
        with Connection(self.settings.broker) as connection:
            queue = connection.SimpleQueue("celery")
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    out.append({"headers": message.headers, "body": message.decode()})
                    message.ack()
            finally:
                queue.close()
        return out


@pytest.fixture(scope="session")
def validation_pool() -> Iterator[ProcessPoolExecutor]:
    """One validation process for every app of the session (each app would start its own)."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def submission(gt_path: Path, seed: int) -> bytes:
    """A valid file for the test board: a uniform guess (seed: another file, another sha)."""
    return chance_submission(load_groundtruth(gt_path, TASK), seed=seed)


@contextmanager
def running_server(
    kind: str,
    data_dir: Path,
    tiny_h5: Path,
    pool: ProcessPoolExecutor | None,
    **overrides: Any,
) -> Iterator[Server]:
    with database(kind, data_dir) as url:
        broker = overrides.pop("broker_url", "memory://")
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            broker_url=broker,
            admin_token=ADMIN_TOKEN,
            **overrides,
        )
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            with sessions() as session:
                load_benchmark(session, data_dir, tiny_h5, "tiny", make_storage(settings))
                tokens = {name: create_team(session, name)[1] for name in ("alpha", "beta")}
            app = make_app(settings, pool=pool)
            with TestClient(app) as client:
                server = Server(client, settings, sessions, tokens, tiny_h5)
                if broker.startswith("memory"):
                    server.sent()  # the in-memory broker is per process: start empty
                yield server
        finally:
            engine.dispose()


def rebuilt(tiny_h5: Path, dest: Path, *, hidden: tuple[str, str] | None = None) -> Path:
    """A copy of the tiny build with another fingerprint (another build), optionally one
    split marked hidden as an organiser build marks it."""
    shutil.copy(tiny_h5, dest)
    with h5py.File(dest, "r+") as h5:
        h5.attrs["fingerprint"] = hashlib.sha256(dest.name.encode()).hexdigest()
        if hidden is not None:
            h5["tasks"][hidden[0]][hidden[1]].attrs["hidden"] = True
    return dest


def boards(sessions: sessionmaker[Session]) -> set[tuple[str, str]]:
    with sessions() as session:
        return {(b.task, b.phase) for b in session.query(BenchmarkPhase)}
