"""The commands that run the server's processes and talk to it: ``worker``, ``sweeper``,
``serve`` (everything in one command, the embedded default), and the client's ``submit``,
``status`` and ``leaderboard``.

Heavy imports (Celery, SQLAlchemy, httpx) happen inside the commands, so ``evalserver
score`` and ``--help`` stay quick.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]


def _settings(data_dir: Path | None = None) -> Any:
    from evalserver.settings import Settings

    return Settings() if data_dir is None else Settings(data_dir=data_dir)


def _require_schema(settings: Any) -> None:
    """Refuse to run on an old schema: new code would fail later with an SQL error."""
    from evalserver.db.migrate import SchemaOutOfDate, check_current

    try:
        check_current(settings.db_url)
    except SchemaOutOfDate as exc:
        raise click.ClickException(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
    )


@click.command()
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Submissions scored at once by this worker.")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork",
              show_default=True, help="Celery execution pool (solo: in this process).")
@click.option("--loglevel", default="info", show_default=True)
def worker(concurrency: int, pool: str, loglevel: str) -> None:
    """Score queued submissions (a Celery worker; start more, on more hosts, to scale).

    Reads VL12_DATABASE_URL, VL12_BROKER_URL and VL12_DATA_DIR (the data dir must be shared
    with the API: uploads and benchmarks are read from it). Refuses an old database schema."""
    from evalserver.worker.tasks import make_worker_app

    settings = _settings()
    _require_schema(settings)
    _logging(loglevel)
    app = make_worker_app(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel.upper()}",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"vl12-{os.getpid()}@%h",
        ]
    )


@click.command()
@click.option("--once", is_flag=True, help="Sweep once and exit (cron, tests).")
@click.option("--loglevel", default="info", show_default=True)
def sweeper(once: bool, loglevel: str) -> None:
    """Re-queue submissions left queued or running past their deadline; fail those out of
    attempts (VL12_SWEEP_INTERVAL_S, VL12_QUEUED_DEADLINE_S, VL12_RUNNING_DEADLINE_S,
    VL12_MAX_ATTEMPTS). Stops on SIGTERM or Ctrl-C."""
    from evalserver.db.session import make_engine
    from evalserver.worker.sweeper import make_sender, run_forever, sweep

    settings = _settings()
    _require_schema(settings)
    _logging(loglevel)
    engine = make_engine(settings.db_url)
    try:
        if once:
            report = sweep(settings, engine, make_sender(settings))
            click.echo(
                f"re-sent {len(report.requeued)}, reset {len(report.reset)}, "
                f"failed {len(report.failed)}, unsent {len(report.unsent)}"
            )
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_forever(settings, engine, stop)
    finally:
        engine.dispose()


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the database, broker, benchmarks, uploads and results live "
              "(default: VL12_DATA_DIR, else ~/.local/share/vl12-server).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(data_dir: Path | None, host: str, port: int) -> None:
    """Run the whole server, needing no other server: SQLite database and broker in the data
    dir (unless VL12_DATABASE_URL / VL12_BROKER_URL say otherwise), its schema upgraded, the
    API, one worker and the sweeper as child processes. Ctrl-C or SIGTERM stops them all."""
    from evalserver.serve import Serve

    settings = _settings(data_dir)
    raise SystemExit(Serve(settings, host=host, port=port).run())


COMMANDS: list[click.Command] = [worker, sweeper, serve]
