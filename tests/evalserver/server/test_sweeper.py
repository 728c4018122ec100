"""One sweep, in process, on rows set up by hand: what is re-sent, reset or failed, and that
every change is guarded (a row that moved meanwhile is left alone)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from evalserver.db.migrate import upgrade
from evalserver.db.models import BenchmarkVersion, Status, Submission, Team, utcnow
from evalserver.db.session import make_engine
from evalserver.settings import Settings
from evalserver.worker.sweeper import sweep


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = Settings(
        data_dir=tmp_path, queued_deadline_s=60, running_deadline_s=600, max_attempts=3
    )
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with Session(engine) as session:
        session.add(Team(id=1, name="t", token_hash="0" * 64))
        session.add(
            BenchmarkVersion(id=1, name="b", version=1, fingerprint="f" * 64, file_path="x.h5",
                             schema_version="1.2")
        )
        session.commit()
    try:
        yield settings, engine
    finally:
        engine.dispose()


def _row(engine: Engine, status: Status, age_s: float, attempts: int = 0) -> str:
    sub_id = uuid.uuid4().hex
    when = utcnow() - timedelta(seconds=age_s)
    with Session(engine) as session:
        session.add(
            Submission(
                id=sub_id, team_id=1, benchmark_id=1, task="nlvr2", phase="test1",
                file_path="u", file_sha256=sub_id * 2, file_size=1, status=status,
                attempts=attempts, updated_at=when, started_at=when, worker_host="h:1",
            )
        )
        session.commit()
    return sub_id


def _get(engine: Engine, sub_id: str) -> Submission:
    with Session(engine, expire_on_commit=False) as session:
        return session.get_one(Submission, sub_id)


def test_stale_rows_are_resent_reset_or_failed(setup: tuple[Settings, Engine]) -> None:
    settings, engine = setup
    fresh_queued = _row(engine, Status.queued, 5)
    stale_queued = _row(engine, Status.queued, 120)
    fresh_running = _row(engine, Status.running, 30, attempts=1)
    stale_running = _row(engine, Status.running, 900, attempts=1)
    exhausted = _row(engine, Status.running, 900, attempts=3)
    scored = _row(engine, Status.scored, 10_000, attempts=1)
    sent: list[str] = []

    report = sweep(settings, engine, sent.append)

    assert report.requeued == [stale_queued]
    assert report.reset == [stale_running]
    assert report.failed == [exhausted]
    assert sorted(sent) == sorted([stale_queued, stale_running])
    assert _get(engine, fresh_queued).status == Status.queued
    assert _get(engine, fresh_running).status == Status.running
    assert _get(engine, scored).status == Status.scored
    reset = _get(engine, stale_running)
    assert (reset.status, reset.attempts, reset.worker_host) == (Status.queued, 1, None)
    failed = _get(engine, exhausted)
    assert failed.status == Status.failed
    assert "gave up after 3 attempt(s)" in failed.error and "h:1" in failed.error
    # The clocks restarted: a second sweep right away changes nothing.
    assert not sweep(settings, engine, sent.append)
    assert len(sent) == 2


def test_a_broker_that_refuses_leaves_the_row_for_the_next_sweep(
    setup: tuple[Settings, Engine],
) -> None:
    settings, engine = setup
    stale = _row(engine, Status.queued, 120)

    def down(_: str) -> None:
        raise ConnectionRefusedError("broker down")

    report = sweep(settings, engine, down)
    assert report.unsent == [stale] and not report.requeued
    sent: list[str] = []
    assert sweep(settings, engine, sent.append).requeued == [stale]
    assert sent == [stale]


def test_a_row_claimed_while_being_resent_is_left_alone(
    setup: tuple[Settings, Engine],
) -> None:
    """A worker claims the row between the sweeper's send and its clock update: the update
    (guarded on ``queued``) must not touch the running row."""
    settings, engine = setup
    sub_id = _row(engine, Status.queued, 120)
    claimed_at = utcnow()

    def worker_claims(sent_id: str) -> None:
        with Session(engine) as session:
            row = session.get_one(Submission, sent_id)
            row.status, row.attempts, row.updated_at = Status.running, 1, claimed_at
            session.commit()

    sweep(settings, engine, worker_claims, now=claimed_at + timedelta(hours=1))
    row = _get(engine, sub_id)
    assert (row.status, row.attempts) == (Status.running, 1)
    assert row.updated_at.replace(tzinfo=None) == claimed_at.replace(tzinfo=None)
