"""Quotas and scoring limits with real processes: ``evalserver api`` and a worker.

A team limited to 8 submissions at once sends 50 at the same moment: exactly 8 are
accepted (the check is atomic with the insert), the 42 others are 429 naming the limit,
and exactly the accepted ones are scored. A scoring run past its memory limit fails its
row with a message naming the limit; a scoring process SIGKILLed mid-score (as the
kernel's OOM killer does) fails its row naming the signal and the host, and the worker
scores on.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from evalserver.db.models import Status, Submission
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from tests.evalserver.server.live import Live, Services, make_live, services  # noqa: F401
from unify import tasks

TASK = "nlvr2"  # the smallest ground truth of the sample
UPLOADS = 50
AT_ONCE = 8


@pytest.fixture
def live(request: pytest.FixtureRequest, services: Services, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    server = make_live(request.param, services, tmp_path / "data")
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite", "postgres-redis"], indirect=True)
def test_fifty_uploads_at_once_with_a_limit_of_eight(live: Live, tiny_h5: Path) -> None:
    live.load_benchmark(tiny_h5)
    token = live.team_token("alpha")
    live.extra_env["VL12_MAX_CONCURRENT"] = str(AT_ONCE)
    live.extra_env["VL12_VALIDATION_PROCESSES"] = "1"
    url = live.api()
    gt = load_groundtruth(tiny_h5, TASK)
    files = [chance_submission(gt, seed=seed) for seed in range(UPLOADS)]

    def upload(content: bytes) -> httpx.Response:
        return httpx.post(
            f"{url}/api/v1/submissions",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("p.json", content)},
            data={"task": TASK},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=UPLOADS) as threads:
        answers = list(threads.map(upload, files))
    codes = [a.status_code for a in answers]
    assert sorted(set(codes)) == [201, 429], [a.text for a in answers if a.status_code >= 400]
    accepted = [a.json()["id"] for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code == 429]
    assert (len(accepted), len(refused)) == (AT_ONCE, UPLOADS - AT_ONCE)
    for answer in refused:
        assert f"limit of {AT_ONCE} at once" in answer.json()["detail"]
        assert int(answer.headers["Retry-After"]) > 0
    live.worker()
    rows = live.wait(accepted, timeout=120)
    assert all(r.status == Status.scored for r in rows), [r.error for r in rows]
    with live.engine.connect() as conn:
        ids = set(conn.execute(select(Submission.id)).scalars())
    assert ids == set(accepted)  # nothing of the refused ones
    folders = {p.name for p in (live.data_dir / "uploads").iterdir()}
    assert folders == set(accepted)
    # Places are free again.
    assert upload(chance_submission(gt, seed=UPLOADS)).status_code == 201


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_a_run_past_the_memory_limit_fails_naming_it(live: Live, tiny_h5: Path) -> None:
    live.load_benchmark(tiny_h5)
    sub_id = live.submit(live.team("alpha"), TASK, chance_submission(
        load_groundtruth(tiny_h5, TASK), seed=1), send=False)
    # A submission whose validated form takes 32 MiB to load (an extra array), against a
    # limit of 1 MB; the tiny sample's own forms fit in what the worker already holds.
    form = live.data_dir / live.row(sub_id).validated_path
    with np.load(form) as saved:
        arrays = dict(saved)
    arrays["predictions__padding"] = np.zeros(32 << 20, np.uint8)
    with form.open("wb") as out:
        np.savez_compressed(out, **arrays)
    live.send(sub_id)
    live.worker(env={"VL12_SCORE_MEMORY_MB": "1"})
    (row,) = live.wait(sub_id, timeout=60)
    assert row.status == Status.failed and row.attempts == 1
    assert row.error == (
        f"scoring {TASK}, phase {tasks.get(TASK).default_phase} failed: memory limit of 1 MB "
        "exceeded (VL12_SCORE_MEMORY_MB)"
    ), live.logs()
    # The limit ends with the run: the same worker scores the next submission.
    ok = live.submit(live.team("beta"), TASK, chance_submission(
        load_groundtruth(tiny_h5, TASK), seed=2))
    live.worker(env={"VL12_SCORE_MEMORY_MB": "512"})
    (row,) = live.wait(ok, timeout=60)
    assert row.status == Status.scored, row.error


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_a_run_killed_at_the_hard_time_limit_fails_naming_it(live: Live, tiny_h5: Path) -> None:
    live.load_benchmark(tiny_h5)
    hold = live.data_dir / "hold-dir"
    hold.mkdir()
    (hold / "hold").touch()  # the run never ends by itself ...
    (hold / "stuck").touch()  # ... and ignores the soft limit, as a scorer stuck in C code
    sub_id = live.submit(live.team("alpha"), TASK, chance_submission(
        load_groundtruth(tiny_h5, TASK), seed=1))
    live.start("worker", "--pool", "prefork", "--loglevel", "info", env={
        "VL12_TEST_HOLD_DIR": str(hold),
        "VL12_SCORE_TIME_LIMIT_S": "1",
        "VL12_SCORE_KILL_GRACE_S": "1",
    })
    (row,) = live.wait(sub_id, timeout=60)
    assert row.status == Status.failed and row.attempts == 1, live.logs()
    assert row.error == (
        f"scoring {TASK}, phase {tasks.get(TASK).default_phase} failed: time limit of 1 s "
        "exceeded (VL12_SCORE_TIME_LIMIT_S); stopped"
    )
    assert "Hard time limit" in live.logs()


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite", "postgres-redis"], indirect=True)
def test_a_scoring_process_killed_mid_score_fails_naming_the_signal(
    live: Live, tiny_h5: Path
) -> None:
    live.load_benchmark(tiny_h5)
    gt = load_groundtruth(tiny_h5, TASK)
    hold = live.data_dir / "hold-dir"
    hold.mkdir()
    (hold / "hold").touch()
    sub_id = live.submit(live.team("alpha"), TASK, chance_submission(gt, seed=1))
    worker = live.start("worker", "--pool", "prefork", "--loglevel", "info",
                        env={"VL12_TEST_HOLD_DIR": str(hold)})
    marker = hold / f"running-{sub_id}"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, live.logs()
        time.sleep(0.05)
    child = int(marker.read_text())
    assert child != worker.pid  # a pool process scores, its worker watches
    os.kill(child, signal.SIGKILL)  # as the kernel's OOM killer does
    (row,) = live.wait(sub_id, timeout=60)
    where = f"{socket.gethostname()}:{child}"
    assert (row.status, row.attempts) == (Status.failed, 1), live.logs()
    assert row.error == (
        f"scoring {TASK}, phase {tasks.get(TASK).default_phase} failed: killed by signal 9 "
        f"(SIGKILL: out of memory?) while scoring, on {where}"
    ), live.logs()
    assert row.log["worker"]["host"] == where and "signal 9" in row.log["worker"]["lost"]
    # The worker lives on with a new pool process; the killed run's message, handed back
    # to the broker, changes nothing (the row is final).
    (hold / "hold").unlink()
    ok = live.submit(live.team("beta"), TASK, chance_submission(gt, seed=2))
    (scored,) = live.wait(ok, timeout=60)
    assert scored.status == Status.scored, scored.error
    assert worker.poll() is None
    again = live.row(sub_id)
    assert (again.status, again.attempts, again.error) == (Status.failed, 1, row.error)
