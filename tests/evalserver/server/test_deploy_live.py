"""The production deployment as docs/deploy.md runs it, on a private PostgreSQL and Redis:
the compose file's own commands (migrate, api, worker, sweeper, cleanup) score a
submission, then the documented backup (pg_dump + ``evalserver storage copy --to``) and
restore (pg_restore + ``storage copy --from``, then ``db upgrade``); and the documented
upgrade path (everything stopped, ``evalserver db upgrade``, the API and workers started
again: a submission queued before is scored after)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.orm import Session

from evalserver.client import Client
from evalserver.db.migrate import _config, head
from evalserver.db.models import Status, Submission, Team
from evalserver.db.session import make_engine
from evalserver.metrics import Result
from tests.evalserver.server.api_support import submission
from tests.evalserver.server.live import Live, Services, _need, services
from tests.evalserver.server.test_deploy import compose, vl12_services
from tests.evalserver.services import POSTGRES_BIN, free_port, wait_for_port

__all__ = ["services"]  # a fixture used here

pytestmark = pytest.mark.slow


def _run(live: Live, argv: list[str], env: dict[str, str] | None = None,
         ok: bool = True) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "evalserver"
    done = subprocess.run(
        [sys.executable, "-m", "evalserver.cli", *argv[1:]], env=live.env | (env or {}),
        capture_output=True, text=True, timeout=120, check=False,
    )
    if ok:
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


def _start(live: Live, argv: list[str]) -> str | None:
    """A compose service's command as a process; the API's URL (bound here on loopback)."""
    args = list(argv[1:])
    if args[0] != "api":
        live.start(*args)
        return None
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    live.start(*args)
    wait_for_port(port, timeout=60)
    return f"http://127.0.0.1:{port}"


def _pg(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (pg_dump, pg_restore)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def postgres_redis(services: Services) -> Iterator[tuple[object, str]]:
    postgres = _need(services, "postgres")
    redis = _need(services, "redis")
    import redis as redis_client

    redis_client.Redis.from_url(redis.url).flushall()
    yield postgres, redis.url


def _deployment(postgres: object, broker: str, tmp_path: Path, storage: str) -> Live:
    """A fresh database and the compose file's environment, with private URLs."""
    name = f"vl12_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)  # type: ignore[attr-defined]
    db_url = postgres.url.rsplit("/", 1)[0] + f"/{name}"  # type: ignore[attr-defined]
    env = dict(compose()["services"]["api"]["environment"])
    live = Live(tmp_path / "data", db_url, broker)
    live.data_dir.mkdir()
    live.extra_env = {
        k: v for k, v in env.items()
        if k not in ("VL12_DATABASE_URL", "VL12_BROKER_URL", "VL12_DATA_DIR")
    } | {"VL12_STORAGE_URL": storage, "VL12_ADMIN_TOKEN": "admin-token"}
    return live


def test_compose_commands_then_backup_and_restore(
    postgres_redis: tuple[object, str], tiny_h5: Path, tmp_path: Path
) -> None:
    postgres, broker = postgres_redis
    files = tmp_path / "files"
    live = _deployment(postgres, broker, tmp_path, files.as_uri())
    ours = vl12_services()
    try:
        # First installation, as docs/deploy.md says.
        _run(live, ours["migrate"]["command"])
        _run(live, ["evalserver", "load", str(tiny_h5), "--name", "vl12"])
        token = _run(live, ["evalserver", "team", "create", "alpha"]).stdout.strip()
        url = _start(live, ours["api"]["command"])
        _start(live, ours["worker"]["command"])
        _start(live, ours["sweeper"]["command"])
        assert url is not None
        upload = tmp_path / "predictions.json"
        upload.write_bytes(submission(tiny_h5, seed=5))
        first = Client(url, token).submit(upload, "vqa2", None, "m", "", public=True)
        (row,) = live.wait(first["id"], timeout=90)
        assert row.status == Status.scored, live.logs()
        cleaned = _run(live, ours["cleanup"]["command"]).stdout
        assert "deleted 0 expired upload(s)" in cleaned  # 90 days of retention
        live.close()

        # Backup: the database, then the files.
        dump = tmp_path / "vl12.dump"
        subprocess.run([str(POSTGRES_BIN / "pg_dump"), "-Fc", "-d", _pg(live.database_url),
                        "-f", str(dump)], check=True, capture_output=True, timeout=120)
        backup = tmp_path / "backup-files"
        out = _run(live, ["evalserver", "storage", "copy", "--to", backup.as_uri()]).stdout
        assert "copied 4 file(s)" in out  # benchmark, upload, validated form, arrays

        # Restore into a new database and a new folder, then bring it to this release.
        restored = f"vl12_{uuid.uuid4().hex[:10]}"
        postgres.create_database(restored)  # type: ignore[attr-defined]
        restored_url = live.database_url.rsplit("/", 1)[0] + f"/{restored}"
        subprocess.run([str(POSTGRES_BIN / "pg_restore"), "--no-owner", "-d",
                        _pg(restored_url), str(dump)], check=True, capture_output=True,
                       timeout=120)
        new_files = tmp_path / "restored-files"
        restore_env = {"VL12_DATABASE_URL": restored_url, "VL12_STORAGE_URL": new_files.as_uri()}
        out = _run(live, ["evalserver", "storage", "copy", "--from", backup.as_uri()],
                   env=restore_env).stdout
        assert "copied 4 file(s)" in out
        _run(live, ours["migrate"]["command"], env=restore_env)
        engine = make_engine(restored_url)
        try:
            with Session(engine) as session:
                rows = list(session.scalars(select(Submission)))
        finally:
            engine.dispose()
        assert [(r.id, r.status) for r in rows] == [(first["id"], Status.scored)]
        arrays = Result.load(new_files / rows[0].arrays_path)
        assert arrays.metrics == rows[0].result["metrics"]
    finally:
        live.close()


def test_the_documented_upgrade_path(
    postgres_redis: tuple[object, str], tiny_h5: Path, tmp_path: Path
) -> None:
    postgres, broker = postgres_redis
    live = _deployment(postgres, broker, tmp_path, "")  # the files in the data dir
    ours = vl12_services()
    try:
        _run(live, ours["migrate"]["command"])
        live.load_benchmark(tiny_h5)
        token = live.team_token("alpha")
        # Queued before the upgrade, while every process is stopped: scored after it.
        with Session(live.engine) as session:
            team_id = session.scalars(select(Team.id).where(Team.name == "alpha")).one()
        waiting = live.submit(team_id, "vqa2", submission(tiny_h5, seed=7))
        live.dispose()

        # A database of the previous release (when there is one): new code refuses it.
        script = ScriptDirectory.from_config(_config())
        previous = script.get_revision(head()).down_revision
        if isinstance(previous, str):
            _run(live, ["evalserver", "db", "downgrade", previous])
            refused = _run(live, ["evalserver", "api", "--port", str(free_port())], ok=False)
            assert refused.returncode == 1 and "evalserver db upgrade" in refused.stderr
        # Migrate once, then start the API and the workers.
        _run(live, ours["migrate"]["command"])
        assert head() in _run(live, ["evalserver", "db", "current"]).stdout
        url = _start(live, ours["api"]["command"])
        _start(live, ours["worker"]["command"])
        assert url is not None
        (row,) = live.wait(waiting, timeout=90)
        assert row.status == Status.scored, live.logs()
        upload = tmp_path / "predictions.json"
        upload.write_bytes(submission(tiny_h5, seed=8))
        new = Client(url, token).submit(upload, "vqa2", None, "m", "", public=True)
        (row2,) = live.wait(new["id"], timeout=90)
        assert row2.status == Status.scored, live.logs()
    finally:
        live.close()
