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
from typing import Any, NoReturn

import click

__all__ = ["COMMANDS"]


def _settings(data_dir: Path | None = None) -> Any:
    from evalserver.settings import Settings

    return Settings() if data_dir is None else Settings(data_dir=data_dir)


def _require_schema(settings: Any) -> None:
    """Refuse to run on an old schema: new code would fail later with an SQL error."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from evalserver.db.migrate import SchemaOutOfDate, check_current

    try:
        check_current(settings.db_url)
    except SchemaOutOfDate as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        where = make_url(settings.db_url).render_as_string(hide_password=True)
        reason = " ".join(str(exc.orig or exc).split())
        raise click.ClickException(f"cannot reach the database {where}: {reason}") from None


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
    from sqlalchemy.exc import SQLAlchemyError

    from evalserver.serve import Serve

    settings = _settings(data_dir)
    try:
        status = Serve(settings, host=host, port=port).run()
    except (OSError, SQLAlchemyError) as exc:  # an unusable data dir or database
        raise click.ClickException(f"cannot start in {settings.data_dir}: {exc}") from None
    raise SystemExit(status)


# --------------------------------------------------------------------------- the client


def _client_options(function: Any) -> Any:
    function = click.option("--token", default=None,
                            help="The team's API token (default: VL12_TOKEN).")(function)
    return click.option("--url", default=None,
                        help="The server (default: VL12_URL, else http://127.0.0.1:8000).")(
        function
    )


def _client(url: str | None, token: str | None) -> Any:
    from evalserver.client import Client
    from evalserver.settings import ClientSettings

    settings = ClientSettings()
    if token is None and settings.token is not None:
        token = settings.token.get_secret_value()
    return Client(url or settings.url, token or None)


def _api_error(exc: Any) -> NoReturn:
    """The server's refusal, with a rejected file's whole report; exit 1."""
    click.echo(f"error: {exc}", err=True)
    report = getattr(exc, "report", None)
    if isinstance(report, dict):
        for problem in report.get("problems", []):
            click.echo(f"  {problem.get('text') or problem.get('message')}", err=True)
    raise SystemExit(1)


@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--task", required=True, help="The task (see `evalserver score --help`).")
@click.option("--phase", default=None, help="Leaderboard phase (default: the task's default).")
@click.option("--method", "method", default="", help="Method name shown on the leaderboard.")
@click.option("--description", default="", help="A short description of the method.")
@click.option("--private", is_flag=True, help="Only your team (and the admin) see the entry.")
@click.option("--wait", is_flag=True, help="Wait until it is scored (exit 1 if it fails).")
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
@_client_options
def submit(
    file: Path, task: str, phase: str | None, method: str, description: str, private: bool,
    wait: bool, as_json: bool, url: str | None, token: str | None,
) -> None:
    """Upload a prediction FILE (any official format, gzip accepted) for --task.

    Exit 0 when accepted (with --wait: when scored); 1 when rejected (the validator's whole
    report is printed) or failed; 2 on a usage error."""
    import json
    import sys

    from evalserver.client import ApiError, format_status
    from unify import tasks

    if task not in tasks.task_names():
        raise click.BadParameter(
            f"unknown task {task!r}; choose one of {', '.join(tasks.task_names())}",
            param_hint="--task",
        )
    client = _client(url, token)
    if client.token is None:
        raise click.UsageError("a team token is needed: --token or VL12_TOKEN")
    try:
        row = client.submit(file, task, phase, method, description, public=not private,
                            progress=sys.stderr.isatty())
        if wait and row["status"] not in ("scored", "failed", "cancelled"):
            click.echo(f"submission {row['id']} queued; waiting for its score", err=True)
            row = client.wait(row["id"])
    except ApiError as exc:
        _api_error(exc)
    click.echo(json.dumps(row, indent=2) if as_json else format_status(row))
    if row["status"] in ("failed", "cancelled"):
        raise SystemExit(1)


@click.command()
@click.argument("submission_id")
@click.option("--wait", is_flag=True, help="Wait until it is final.")
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
@_client_options
def status(submission_id: str, wait: bool, as_json: bool, url: str | None,
           token: str | None) -> None:
    """A submission's status, metrics or error (exit 1 when it failed)."""
    import json

    from evalserver.client import ApiError, format_status

    client = _client(url, token)
    try:
        row = client.wait(submission_id) if wait else client.get(submission_id)
    except ApiError as exc:
        _api_error(exc)
    click.echo(json.dumps(row, indent=2) if as_json else format_status(row))
    if row["status"] in ("failed", "cancelled"):
        raise SystemExit(1)


@click.command()
@click.option("--task", required=True, help="The task.")
@click.option("--phase", default=None, help="Leaderboard phase (default: the task's default).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, as the server exports it.")
@click.option("--json", "as_json", is_flag=True, help="The server's JSON.")
@_client_options
def leaderboard(task: str, phase: str | None, as_csv: bool, as_json: bool, url: str | None,
                token: str | None) -> None:
    """The leaderboard of (--task, --phase): a table, --csv or --json. With a token, your
    team's private entries are included."""
    import json

    from evalserver.client import ApiError, format_leaderboard

    if as_csv and as_json:
        raise click.UsageError("--csv and --json exclude each other")
    client = _client(url, token)
    try:
        board = client.leaderboard(task, phase, csv=as_csv)
    except ApiError as exc:
        _api_error(exc)
    if as_csv:
        click.echo(board, nl=False)
    else:
        click.echo(json.dumps(board, indent=2) if as_json else format_leaderboard(board))


COMMANDS: list[click.Command] = [worker, sweeper, serve, submit, status, leaderboard]
