"""Faults that really happen, each in real processes (API, workers, sweeper, private
PostgreSQL and Redis started by the test and stopped by pid):

* the broker down during an upload: accepted (queued), scored once it is back (the sweeper
  re-sends what the API could not);
* the database restarted between upload and scoring, even while a worker holds a row:
  scored, once, by the same attempt;
* 50 concurrent uploads from 5 teams, two workers racing: each scored exactly once.
(A worker SIGKILLed mid-score and a scorer that raises are in test_worker.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from evalserver.db.models import Status
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from tests.evalserver.server.live import Live, Services, make_live, services  # noqa: F401

TASK = "nlvr2"


@pytest.fixture
def live(request: pytest.FixtureRequest, services: Services, tmp_path: Path,  # noqa: F811
         tiny_h5: Path) -> Iterator[Live]:
    server = make_live(request.param, services, tmp_path / "data")
    try:
        server.load_benchmark(tiny_h5)
        yield server
    finally:
        server.close()


def upload(url: str, token: str, content: bytes, method: str = "m") -> dict:
    response = httpx.post(
        f"{url}/api/v1/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"task": TASK, "method_name": method},
        files={"file": ("predictions.json", content, "application/json")},
        timeout=120,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def files(tiny_h5: Path, count: int, first_seed: int = 0) -> list[bytes]:
    gt = load_groundtruth(tiny_h5, TASK)
    return [chance_submission(gt, seed=first_seed + i) for i in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize("live", ["postgres-redis"], indirect=True)
def test_broker_down_during_upload(live: Live, services: Services, tiny_h5: Path) -> None:  # noqa: F811
    url = live.api()
    token = live.team_token("alpha")
    live.sweeper()
    assert services.redis is not None
    services.redis.stop()
    try:
        row = upload(url, token, files(tiny_h5, 1)[0])  # the API must not fail nor hang
        assert row["status"] == "queued"
        time.sleep(1)
        assert live.row(row["id"]).status == Status.queued
    finally:
        # Same port (the URL the processes know); no persistence: any message is gone, so
        # the score below comes from the sweeper re-sending the queued row.
        services.redis.start()
    live.worker()
    (scored,) = live.wait(row["id"], timeout=90)
    assert scored.status == Status.scored, scored.error
    assert scored.attempts == 1


@pytest.mark.slow
@pytest.mark.parametrize("live", ["postgres-redis"], indirect=True)
def test_database_restarted_between_upload_and_scoring(
    live: Live, services: Services, tiny_h5: Path  # noqa: F811
) -> None:
    hold = live.data_dir / "hold-dir"
    hold.mkdir()
    url = live.api()
    token = live.team_token("alpha")
    live.worker(env={"VL12_TEST_HOLD_DIR": str(hold)})
    first, second, third = files(tiny_h5, 3)
    warm = upload(url, token, first)  # the worker's connections exist before the restart
    assert live.wait(warm["id"])[0].status == Status.scored
    (hold / "hold").touch()
    held = upload(url, token, second)
    marker = hold / f"running-{held['id']}"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, live.logs()
        time.sleep(0.05)
    assert services.postgres is not None
    live.dispose()  # our own connections, as any client's, are cut by the restart
    services.postgres.stop()
    services.postgres.start()
    (hold / "hold").unlink()
    after = upload(url, token, third)  # the API reconnects too
    rows = {r.id: r for r in live.wait([held["id"], after["id"]], timeout=90)}
    assert rows[held["id"]].status == Status.scored, rows[held["id"]].error
    assert rows[held["id"]].attempts == 1
    assert rows[after["id"]].status == Status.scored


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite", "postgres-redis"], indirect=True)
def test_50_concurrent_uploads_from_5_teams_are_each_scored_once(
    live: Live, tiny_h5: Path
) -> None:
    url = live.api()
    tokens = [live.team_token(f"team-{i}") for i in range(5)]
    live.worker()
    live.worker()
    contents = files(tiny_h5, 10)
    jobs = [(tokens[t], contents[i]) for t in range(5) for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        rows = list(pool.map(lambda job: upload(url, job[0], job[1]), jobs))
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == 50
    done = live.wait(ids, timeout=150)
    assert {r.status for r in done} == {Status.scored}
    assert {r.attempts for r in done} == {1}
    for row in done:
        assert [p.name for p in (live.data_dir / "results" / row.id).iterdir()] == [
            "attempt-1.npz"
        ]
    # A repeated upload is the same submission, not a second score.
    again = upload(url, tokens[0], contents[0])
    assert again["id"] in ids and again["duplicate"] is True
