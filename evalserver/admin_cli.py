"""The server's operator commands: ``evalserver db upgrade|downgrade|current``, ``load``,
``team create|revoke|rotate|list``, ``admin rotate-token|token-status``, ``rescore``,
``audit`` and ``api``. They read the
same ``VL12_*`` settings as the server.

Every failure is one message and exit 1 (2 for usage), never a traceback: a database that
cannot be reached, a schema out of date (naming ``evalserver db upgrade``), a unified file
that cannot be loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from evalserver.text import printable

if TYPE_CHECKING:
    from evalserver.settings import Settings

__all__ = ["admin", "api", "audit_log", "db", "load", "rescore", "team"]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(1)


def _where(url: str) -> str:
    from sqlalchemy import make_url  # here, not at the top: `evalserver score` stays light

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _database(url: str) -> Iterator[None]:
    """Database errors as one line naming the database (its password hidden)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"database {_where(url)}: {reason}")


def data_dir_option(function: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="The server's data dir (default: $VL12_DATA_DIR, else ~/.local/share/vl12-server).",
    )(function)


def _settings(data_dir: Path | None) -> Settings:
    from evalserver.settings import Settings

    return Settings() if data_dir is None else Settings(data_dir=data_dir)


def require_current_schema(settings: Settings) -> None:
    """Exit 1 naming ``evalserver db upgrade`` unless the schema is this code's."""
    from evalserver.db.migrate import SchemaOutOfDate, check_current

    with _database(settings.db_url):
        try:
            check_current(settings.db_url)
        except SchemaOutOfDate as exc:
            _fail(str(exc))


# --------------------------------------------------------------------------- db


@click.group()
def db() -> None:
    """The database schema (Alembic migrations shipped with vl12)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@data_dir_option
def upgrade(revision: str, data_dir: Path | None) -> None:
    """Create or upgrade the database ($VL12_DATABASE_URL, default SQLite in the data dir)."""
    from evalserver.db import migrate

    settings = _settings(data_dir)
    with _database(settings.db_url):
        before = migrate.current(settings.db_url)
        migrate.upgrade(settings.db_url, revision)
        after = migrate.current(settings.db_url)
    if before == after:
        click.echo(f"database {_where(settings.db_url)} is at {after}: nothing to do")
    else:
        where = _where(settings.db_url)
        click.echo(f"database {where} upgraded from {before or 'empty'} to {after}")


@db.command()
@click.argument("revision")
@data_dir_option
def downgrade(revision: str, data_dir: Path | None) -> None:
    """Take the database back to REVISION (``base``: drop every table of the server)."""
    from evalserver.db import migrate

    settings = _settings(data_dir)
    with _database(settings.db_url):
        before = migrate.current(settings.db_url)
        migrate.downgrade(settings.db_url, revision)
        after = migrate.current(settings.db_url)
    click.echo(
        f"database {_where(settings.db_url)} downgraded from {before or 'empty'} "
        f"to {after or 'empty'}"
    )


@db.command()
@data_dir_option
def current(data_dir: Path | None) -> None:
    """Print the database's revision and this code's newest."""
    from evalserver.db import migrate

    settings = _settings(data_dir)
    with _database(settings.db_url):
        have = migrate.current(settings.db_url)
    want = migrate.head()
    state = "up to date" if have == want else "run `evalserver db upgrade`"
    click.echo(f"{have or 'empty'} (this code: {want}; {state})")


# --------------------------------------------------------------------------- load


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", default=None, help="Benchmark name (default: the file's stem).")
@data_dir_option
def load(file: Path, name: str | None, data_dir: Path | None) -> None:
    """Register a benchmark version from a private unified FILE (copied into the data dir).

    The same fingerprint again is a no-op; another build under the same name becomes the
    next version."""
    from evalserver.benchmarks import BenchmarkError, load_benchmark
    from evalserver.db.session import make_engine, make_sessionmaker
    from evalserver.storage import StorageError, make_storage

    settings = _settings(data_dir)
    require_current_schema(settings)
    try:
        storage = make_storage(settings)
    except StorageError as exc:
        _fail(str(exc))
    engine = make_engine(settings.db_url)
    try:
        with _database(settings.db_url), make_sessionmaker(engine)() as session:
            try:
                outcome = load_benchmark(session, settings.data_dir, file, name, storage)
            except BenchmarkError as exc:
                _fail(str(exc))
            bench = outcome.benchmark
            label = f"{bench.name} version {bench.version} (fingerprint {bench.fingerprint[:12]})"
            if not outcome.created:
                click.echo(f"{file}: already loaded as {label}: nothing to do")
                return
            phases = bench.phases
            hidden = sum(p.hidden for p in phases)
            tasks_ = sorted({p.task for p in phases})
            click.echo(
                f"{file}: loaded as {label}: {len(tasks_)} task(s), {len(phases)} "
                f"leaderboard(s), {hidden} hidden"
            )
            for (task, phase), why in sorted(outcome.skipped.items()):
                click.echo(f"  skipped {task}/{phase}: {why}")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- team


@click.group()
def team() -> None:
    """Teams and their API tokens."""


@team.command("create")
@click.argument("name")
@data_dir_option
def team_create(name: str, data_dir: Path | None) -> None:
    """Make team NAME and print its token on stdout (shown once: only its hash is kept)."""
    from evalserver.db.session import make_engine, make_sessionmaker
    from evalserver.teams import TeamError, create_team

    settings = _settings(data_dir)
    require_current_schema(settings)
    engine = make_engine(settings.db_url)
    try:
        with _database(settings.db_url), make_sessionmaker(engine)() as session:
            try:
                made, token = create_team(session, name)
            except TeamError as exc:
                _fail(str(exc))
            click.echo(
                f"team {made.name!r} created (id {made.id}); its token follows, shown once:",
                err=True,
            )
            click.echo(token)
    finally:
        engine.dispose()


@contextmanager
def _session(data_dir: Path | None) -> Iterator[Any]:
    """A session on the server's database (schema checked; errors as one line)."""
    from evalserver.db.session import make_engine, make_sessionmaker

    settings = _settings(data_dir)
    require_current_schema(settings)
    engine = make_engine(settings.db_url)
    try:
        with _database(settings.db_url), make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


@team.command("revoke")
@click.argument("name")
@data_dir_option
def team_revoke(name: str, data_dir: Path | None) -> None:
    """Refuse team NAME's token from now on (NAME or its id; its entries stay). `team rotate`
    gives it a new one."""
    from evalserver import audit
    from evalserver.teams import TeamError, find_team, revoke_team

    with _session(data_dir) as session:
        try:
            found = find_team(session, name)
        except TeamError as exc:
            _fail(str(exc))
        audit.record(session, audit.cli_actor(), "revoke token", team_id=found.id)
        if not revoke_team(session, found):
            session.rollback()
            click.echo(f"team {found.name!r} (id {found.id}) was revoked already: nothing to do")
            return
        click.echo(f"team {found.name!r} (id {found.id}): token revoked")


@team.command("rotate")
@click.argument("name")
@data_dir_option
def team_rotate(name: str, data_dir: Path | None) -> None:
    """Give team NAME a new token (printed on stdout, shown once); the old one stops working
    at once. Also lifts a revocation."""
    from evalserver import audit
    from evalserver.teams import TeamError, find_team, rotate_token

    with _session(data_dir) as session:
        try:
            found = find_team(session, name)
        except TeamError as exc:
            _fail(str(exc))
        audit.record(session, audit.cli_actor(), "rotate token", team_id=found.id,
                     was_revoked=found.revoked_at is not None)
        token = rotate_token(session, found)
        click.echo(
            f"team {found.name!r} (id {found.id}): new token follows, shown once; the old one "
            "no longer works:",
            err=True,
        )
        click.echo(token)


@team.command("list")
@data_dir_option
def team_list(data_dir: Path | None) -> None:
    """The teams: id, name (escaped: control characters shown as \\x..), created, revoked."""
    from sqlalchemy import select

    from evalserver.db.models import Team

    with _session(data_dir) as session:
        for found in session.scalars(select(Team).order_by(Team.id)):
            revoked = f"revoked {found.revoked_at:%Y-%m-%d %H:%M}" if found.revoked_at else ""
            click.echo(f"{found.id}\t{printable(found.name)}\t{found.created_at:%Y-%m-%d %H:%M}"
                       f"\t{revoked}".rstrip())


# --------------------------------------------------------------------------- admin


@click.group()
def admin() -> None:
    """The admin token."""


@admin.command("rotate-token")
@data_dir_option
def admin_rotate_token(data_dir: Path | None) -> None:
    """Make a new admin token (printed on stdout, shown once; only its hash is kept). The
    previous one, and VL12_ADMIN_TOKEN, stop working at once in every API process: no
    restart. Run it again if the token is lost."""
    from evalserver import audit
    from evalserver.admin_token import rotate_admin_token

    with _session(data_dir) as session:
        token = rotate_admin_token(session, audit.cli_actor())
        click.echo(
            "new admin token follows, shown once; the previous one (and VL12_ADMIN_TOKEN) "
            "no longer works:",
            err=True,
        )
        click.echo(token)


@admin.command("token-status")
@data_dir_option
def admin_token_status(data_dir: Path | None) -> None:
    """Which admin token is in force: the rotated one (when and by whom), VL12_ADMIN_TOKEN,
    or none. Never the token."""
    from evalserver.admin_token import admin_token_source

    settings = _settings(data_dir)
    with _session(data_dir) as session:
        click.echo(admin_token_source(session, settings.admin_token))


# --------------------------------------------------------------------------- rescore


@click.command()
@click.argument("ids", nargs=-1)
@click.option("--task", default=None, help="Only this task's submissions.")
@click.option("--phase", default=None, help="Only this phase's.")
@click.option("--benchmark", default=None, help="Only this benchmark name's.")
@click.option("--stale", is_flag=True,
              help="Only those scored by another version than their scorer's current one.")
@click.option("--reason", default="requested by the admin", show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would be re-scored; queue nothing.")
@data_dir_option
def rescore(
    ids: tuple[str, ...],
    task: str | None,
    phase: str | None,
    benchmark: str | None,
    stale: bool,
    reason: str,
    dry_run: bool,
    data_dir: Path | None,
) -> None:
    """Re-score scored submissions in the background (IDS, or all that the filters select;
    at least one of them). The workers do it; each keeps its current result until the new
    one replaces it, the old one staying as history. Recorded in the audit log."""
    from evalserver import audit
    from evalserver.worker.celery_app import make_celery
    from evalserver.worker.rescore import request_rescore, select_rescorable, send_rescore

    if not (ids or task or phase or benchmark or stale):
        click.echo("name submission IDS or a filter (--task, --phase, --benchmark, --stale)",
                   err=True)
        raise SystemExit(2)
    settings = _settings(data_dir)
    with _session(data_dir) as session:
        rows = select_rescorable(session, ids=list(ids) or None, task=task, phase=phase,
                                 benchmark=benchmark, stale=stale)
        missing = set(ids) - {r.id for r in rows}
        for sub_id in sorted(missing):
            click.echo(f"{sub_id}: no scored submission with this id: not re-scored", err=True)
        if dry_run:
            for row in rows:
                click.echo(f"{row.id}  {row.task}/{row.phase}  scored by "
                           f"{row.scorer_name} {row.scorer_version}")
            click.echo(f"{len(rows)} submission(s) would be re-scored", err=True)
            return
        celery = make_celery(settings)
        queued = pending = 0
        actor = audit.cli_actor()
        for row in rows:
            job, created = request_rescore(session, row, actor, reason)
            if job is None:
                continue
            if created:
                queued += 1
                sent = send_rescore(celery, job.id)
                note = "" if sent else " (the broker is down: the sweeper sends it)"
                click.echo(f"{row.id}: re-score {job.id} queued{note}")
            else:
                pending += 1
                click.echo(f"{row.id}: re-score {job.id} is {job.status.value} already")
        click.echo(f"{queued} re-score(s) queued, {pending} pending already", err=True)
    if missing:
        raise SystemExit(1)


# --------------------------------------------------------------------------- audit


@click.command("audit")
@click.option("--submission", "submission_id", default=None, help="Only this submission's.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@data_dir_option
def audit_log(submission_id: str | None, limit: int, data_dir: Path | None) -> None:
    """The audit log, newest first: every admin action, who, when, on what."""
    import json

    from evalserver import audit

    with _session(data_dir) as session:
        for entry in audit.entries(session, submission_id=submission_id, limit=limit):
            target = entry.submission_id or (f"team {entry.team_id}" if entry.team_id else "")
            detail = json.dumps(entry.detail, ensure_ascii=True) if entry.detail else ""
            click.echo(f"{entry.at:%Y-%m-%d %H:%M:%S}  {printable(entry.actor)}  "
                       f"{entry.action}  {target}  {detail}".rstrip())


# --------------------------------------------------------------------------- api


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@data_dir_option
def api(host: str, port: int, data_dir: Path | None) -> None:
    """Run the API alone (workers and the sweeper run separately); refuses an old schema."""
    import uvicorn

    settings = _settings(data_dir)
    require_current_schema(settings)
    if data_dir is not None:
        os.environ["VL12_DATA_DIR"] = str(data_dir)  # for uvicorn's factory, in this process
    click.echo(f"vl12 API on http://{host}:{port}/api/v1 (OpenAPI: http://{host}:{port}/docs)")
    uvicorn.run("evalserver.app.main:create_app", factory=True, host=host, port=port)
