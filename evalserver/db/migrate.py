"""Schema migrations (Alembic), configured in code: the scripts live in the top-level
``migrations`` package, so an installed wheel upgrades a database as well as a checkout does,
with no ``alembic.ini`` on disk.

``check_current`` is what ``evalserver api``, ``worker`` and ``sweeper`` call before they
start: a process running new code on an old schema would fail later, on some request, with
an SQL error that names no cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, make_url, text

import migrations
from evalserver.db.session import make_engine

__all__ = [
    "SchemaOutOfDate",
    "check_current",
    "current",
    "downgrade",
    "head",
    "script_location",
    "upgrade",
]

#: Key of the PostgreSQL advisory lock held while migrating, so that two processes started
#: together (``serve`` and a second host's ``db upgrade``) do not both run one revision.
_LOCK_KEY = 0x766C3132  # "vl12"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the schema this code expects."""


def script_location() -> Path:
    return Path(migrations.__file__).resolve().parent


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships its revisions
        raise RuntimeError(f"no migration scripts under {script_location()}")
    return revision


def _sqlite_file(db_url: str) -> Path | None:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database)
    return None


def _ensure_sqlite_folder(db_url: str) -> None:
    path = _sqlite_file(db_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def _migrating(db_url: str) -> Iterator[Connection]:
    _ensure_sqlite_folder(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            yield connection
    finally:
        engine.dispose()


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (creating it from empty if need be)."""
    with _migrating(db_url) as connection:
        command.upgrade(_config(connection), revision)


def downgrade(db_url: str, revision: str) -> None:
    """Take the database back to ``revision`` (``base`` drops every table of the server)."""
    with _migrating(db_url) as connection:
        command.downgrade(_config(connection), revision)


def current(db_url: str) -> str | None:
    """The database's revision; None for an empty (never upgraded) database."""
    path = _sqlite_file(db_url)
    if path is not None and not path.exists():
        return None  # asking must not create an empty database file
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def check_current(db_url: str) -> None:
    """Raise SchemaOutOfDate unless the database is at this code's newest revision."""
    have = current(db_url)
    want = head()
    if have == want:
        return
    if have is None:
        state = "has no schema yet"
    else:
        known = ScriptDirectory.from_config(_config()).get_revision(have) if _known(have) else None
        state = (
            f"is at revision {have}, older than this code's {want}"
            if known is not None
            else f"is at revision {have}, which this code does not know (newer code "
            "migrated it?)"
        )
    raise SchemaOutOfDate(
        f"the database {_safe_url(db_url)} {state}: run `evalserver db upgrade` first"
    )


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown ids
        return False


def _safe_url(db_url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(db_url).render_as_string(hide_password=True)
