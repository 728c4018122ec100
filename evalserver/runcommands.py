"""The commands that run the server's processes and talk to it: ``worker``, ``sweeper``,
``serve`` (everything in one command, the embedded default), ``demo`` (the README's main
job: ``serve`` with two real entries, ``evalserver.demo``), and the client's ``submit``,
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


@click.command()
@click.argument("unified", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The server's data dir (made if missing); the demo team's token is kept "
              "in DATA_DIR/demo/team.token.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="The baseline's run folder (trained once, kept).")
@click.option("--name", default=None, help="Benchmark name (default: UNIFIED's stem).")
@click.option("--time-budget", default="75s", show_default=True,
              help="The baseline's training time (90s, 10m, 1h).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def demo(unified: Path, data_dir: Path, run_dir: Path, name: str | None, time_budget: str,
         host: str, port: int) -> None:
    """Serve UNIFIED's leaderboard with two entries: the reference baseline (a short
    multi-task run, marked as a baseline) and chance level, submitted through the API by a
    demo team. UNIFIED must hold the answers its leaderboards score (a build with
    --organiser). Then prints the leaderboard's URL and serves until Ctrl-C or SIGTERM.

    Running it again trains, predicts and submits nothing twice: an entry already on a
    leaderboard is kept, a finished run is reused (see docs/server.md)."""
    from sqlalchemy.exc import SQLAlchemyError

    from evalserver.demo import Demo, DemoError

    settings = _settings(data_dir)
    job = Demo(unified, settings, run_dir, name or unified.stem, time_budget, host, port)
    try:
        status = job.run()
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"cannot run the demo in {settings.data_dir}: {exc}") from None
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        raise SystemExit(130) from None
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
@click.argument("file", required=False,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dir", "folder", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Submit a bundle instead of FILE: every file of this folder, "
              "one per task, named TASK.PHASE.EXT or TASK.EXT (what `baseline predict` writes).")
@click.option("--task", default=None, help="The task of FILE (see `evalserver score --help`).")
@click.option("--phase", default=None, help="Leaderboard phase (default: the task's default; "
              "with --dir: for the files whose name gives none).")
@click.option("--benchmark", default=None, help="Benchmark name (default: the newest loaded).")
@click.option("--method", "method", default="", help="Method name shown on the leaderboard.")
@click.option("--description", default="", help="A short description of the method.")
@click.option("--private", is_flag=True, help="Only your team (and the admin) see the entry.")
@click.option("--wait", is_flag=True, help="Wait until it is scored (exit 1 if it fails).")
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
@_client_options
def submit(
    file: Path | None, folder: Path | None, task: str | None, phase: str | None,
    benchmark: str | None, method: str, description: str, private: bool, wait: bool,
    as_json: bool, url: str | None, token: str | None,
) -> None:
    """Upload a prediction FILE (any official format, gzip accepted) for --task, or with
    --dir DIR a bundle: one file per task, each file's task (and phase) read from its name.

    Exit 0 when accepted (with --wait: when scored); 1 when rejected (the validator's whole
    report is printed) or failed, with --dir when any file was; 2 on a usage error."""
    import json
    import sys

    from evalserver.client import ApiError, format_status
    from unify import tasks

    if folder is not None:
        if file is not None or task is not None:
            raise click.UsageError("--dir submits every file of DIR: give no FILE nor --task")
        _submit_bundle(folder, phase, benchmark, method, description, private, wait, as_json,
                       url, token)
        return
    if file is None or task is None:
        raise click.UsageError("give FILE and --task, or --dir DIR")
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
                            progress=sys.stderr.isatty(), benchmark=benchmark)
        if wait and row["status"] not in ("scored", "failed", "cancelled"):
            click.echo(f"submission {row['id']} queued; waiting for its score", err=True)
            row = client.wait(row["id"])
    except ApiError as exc:
        _api_error(exc)
    click.echo(json.dumps(row, indent=2) if as_json else format_status(row))
    if row["status"] in ("failed", "cancelled"):
        raise SystemExit(1)


def bundle_files(folder: Path, phase: str | None) -> list[tuple[Path, str, str | None]]:
    """``(file, task, phase)`` of every visible file of ``folder``, sorted by name; the
    phase from the name, else ``phase`` (None: the task's default). One UsageError naming
    every file whose name is not understood (nothing is uploaded then): a typo must not
    leave half a bundle on the server."""
    from evalserver.prediction_files import task_phase_of
    from unify import tasks

    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    if not files:
        raise click.UsageError(f"{folder}: no prediction file in this folder")
    found: list[tuple[Path, str, str | None]] = []
    problems: list[str] = []
    for path in files:
        try:
            task, named = task_phase_of(str(path))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if named is not None and phase is not None and named != phase:
            problems.append(f"{path}: its name says phase {named!r}, --phase says {phase!r}")
            continue
        found.append((path, task, named or phase))
    seen: dict[tuple[str, str], Path] = {}
    for path, task, chosen in found:
        key = (task, chosen or tasks.get(task).default_phase)
        if key in seen:
            problems.append(f"{path}: {task}, phase {key[1]}, again (also {seen[key].name})")
        seen[key] = path
    if problems:
        raise click.UsageError("nothing was submitted:\n  " + "\n  ".join(problems))
    return found


def _submit_bundle(
    folder: Path, phase: str | None, benchmark: str | None, method: str, description: str,
    private: bool, wait: bool, as_json: bool, url: str | None, token: str | None,
) -> None:
    """Every file of ``folder`` as its own submission, reported file by file; exit 1 when
    any was rejected or (with ``wait``) failed."""
    import json
    import sys

    from evalserver.client import ApiError, format_status

    found = bundle_files(folder, phase)
    client = _client(url, token)
    if client.token is None:
        raise click.UsageError("a team token is needed: --token or VL12_TOKEN")
    rows: dict[Path, dict[str, Any]] = {}
    errors: dict[Path, ApiError] = {}
    for path, task, chosen in found:
        try:
            rows[path] = client.submit(path, task, chosen, method, description,
                                       public=not private, progress=sys.stderr.isatty(),
                                       benchmark=benchmark)
        except ApiError as exc:
            if exc.status is None:  # the server is unreachable: the next file fares no better
                _api_error(exc)
            errors[path] = exc
    if wait:
        pending = [p for p, r in rows.items() if r["status"] not in ("scored", "failed",
                                                                       "cancelled")]
        if pending:
            click.echo(f"{len(pending)} submission(s) queued; waiting for their scores", err=True)
        for path in pending:
            try:
                rows[path] = client.wait(rows[path]["id"])
            except ApiError as exc:
                errors[path] = exc
                del rows[path]
    failed = bool(errors) or any(r["status"] in ("failed", "cancelled") for r in rows.values())
    if as_json:
        click.echo(json.dumps(
            [{"file": str(p), "submission": rows.get(p),
              "error": None if p not in errors else str(errors[p]),
              "report": None if p not in errors else errors[p].report}
             for p, _, _ in found], indent=2))
    else:
        for path, _, _ in found:
            if path in rows:
                click.echo(f"{path}:")
                click.echo("  " + format_status(rows[path]).replace("\n", "\n  "))
            else:
                click.echo(f"{path}: rejected: {errors[path]}")
                report = errors[path].report
                if isinstance(report, dict):
                    for problem in report.get("problems", []):
                        click.echo(f"    {problem.get('text') or problem.get('message')}")
        done = sum(p in rows and rows[p]["status"] not in ("failed", "cancelled")
                   for p, _, _ in found)
        click.echo(f"{done} of {len(found)} file(s) accepted"
                   + (" and scored" if wait else ""), err=True)
    if failed:
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


COMMANDS: list[click.Command] = [worker, sweeper, serve, demo, submit, status, leaderboard]
