"""Revision 0002 on a database holding 0001's data: existing submissions come through the
upgrade (not hidden, no log yet) and through the downgrade again (SQLite's batch mode
copies the table; PostgreSQL alters it in place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from evalserver.db import migrate
from evalserver.db.session import make_engine
from tests.evalserver.server.api_support import database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


ROWS_0001 = [
    "INSERT INTO teams (id, name, token_hash, created_at) VALUES "
    "(1, 'a<b>''; --', 'h', '2026-01-01 00:00:00+00')",
    "INSERT INTO benchmark_versions (id, name, version, fingerprint, file_path, schema_version,"
    " loaded_at) VALUES (1, 'tiny', 1, 'f', 'benchmarks/f.h5', '1', '2026-01-01 00:00:00+00')",
    "INSERT INTO submissions (id, team_id, benchmark_id, task, phase, file_path, file_sha256,"
    " file_size, original_name, method_name, description, paper_url, code_url, is_public,"
    " is_baseline, status, attempts, created_at, updated_at) VALUES ('s1', 1, 1, 'nlvr2',"
    " 'test1', 'uploads/s1/upload', 'x', 3, '', 'm', '', '', '', true, false, 'scored', 1,"
    " '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')",
]


def test_0002_keeps_existing_rows_both_ways(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for statement in ROWS_0001:
                conn.execute(text(statement))
        migrate.upgrade(db_url, "0002")
        assert migrate.current(db_url) == "0002"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT id, is_hidden, log FROM submissions")).one()
            assert (row.id, bool(row.is_hidden), row.log) == ("s1", False, None)
            assert conn.execute(text("SELECT count(*) FROM rescores")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 0
        engine.dispose()
        migrate.downgrade(db_url, "0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, status FROM submissions")).one() == (
                "s1", "scored")
            name = conn.execute(text("SELECT name FROM teams")).scalar()
            assert name == "a<b>'; --"
    finally:
        engine.dispose()
