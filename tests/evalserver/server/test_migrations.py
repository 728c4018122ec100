"""Migrations: upgrade from empty, downgrade, upgrade again (SQLite and a private PostgreSQL
database); the migrated schema is exactly the ORM models'; the schema check names
``evalserver db upgrade``; and a built wheel, installed away from this checkout, upgrades an
empty database by itself (the scripts ship in the package, no alembic.ini)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from evalserver.db import migrate
from evalserver.db.models import Base
from evalserver.db.session import make_engine
from tests.evalserver.server.api_support import database

REPO = Path(__file__).resolve().parents[3]
TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert migrate.current(db_url) is None
    with pytest.raises(migrate.SchemaOutOfDate, match="evalserver db upgrade"):
        migrate.check_current(db_url)

    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert tables(db_url) == TABLES
    assert schema_diff(db_url) == []  # the migrations make exactly the models' schema
    migrate.check_current(db_url)
    migrate.upgrade(db_url)  # again: nothing to do
    assert migrate.current(db_url) == migrate.head()

    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None and tables(db_url) == set()
    with pytest.raises(migrate.SchemaOutOfDate, match="evalserver db upgrade"):
        migrate.check_current(db_url)

    migrate.upgrade(db_url)
    assert tables(db_url) == TABLES and schema_diff(db_url) == []


def test_a_schema_of_unknown_newer_code_is_refused_by_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    engine.dispose()
    with pytest.raises(migrate.SchemaOutOfDate, match=r"f00d.*evalserver db upgrade"):
        migrate.check_current(url)


def test_upgrade_makes_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'vl12.db'}"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()


def _source_copy(dest: Path) -> Path:
    """The files a wheel is built from (building in the checkout would write build/ and
    *.egg-info there)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("unify", "evalserver", "baselines", "migrations"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


@pytest.mark.slow
def test_a_built_wheel_upgrades_an_empty_database(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = wheels.glob("vl12-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "migrations/env.py" in names
    assert any(n.startswith("migrations/versions/0001") for n in names)

    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    shutil.rmtree(source)  # nothing but the installed copy is left to find
    url = f"sqlite:///{tmp_path / 'data' / 'vl12.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    env |= {"PYTHONPATH": str(site), "VL12_DATABASE_URL": url}
    script = (
        "import sys, migrations, evalserver.db.migrate as m\n"
        f"assert migrations.__file__.startswith({str(site)!r}), migrations.__file__\n"
        f"assert m.__file__.startswith({str(site)!r}), m.__file__\n"
        "from evalserver.cli import main\n"
        "sys.argv = ['evalserver', 'db', 'upgrade']\n"
        "main()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "upgraded from empty to" in run.stdout
    assert migrate.current(url) == migrate.head()
    assert tables(url) == TABLES
