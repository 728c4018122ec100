"""The scoring worker in real processes (never ``task_always_eager``): SQLite + kombu's
SQLAlchemy transport, PostgreSQL + Redis and PostgreSQL + RabbitMQ (private servers).

Checks the row is the truth: a scored row's result equals the offline score, a message sent
three times scores once, a scorer that raises fails the row with its message, and a worker
SIGKILLed while it holds a row is recovered by the sweeper (scored once, attempts = 2).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalserver.db.models import Status
from evalserver.metrics import Result, load_groundtruth, score_file
from evalserver.metrics.chance import chance_submission
from tests.evalserver.server.live import BACKENDS, Live, Services, make_live, services  # noqa: F401
from unify import tasks


def without_stats(result: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (result or {}).items() if k != "stats"}

TASK = "nlvr2"  # the smallest ground truth of the sample


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, services: Services, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    server = make_live(request.param, services, tmp_path / "data")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def bench(live: Live, tiny_h5: Path) -> Live:
    live.load_benchmark(tiny_h5)
    return live


def _submission(tiny_h5: Path, seed: int) -> bytes:
    return chance_submission(load_groundtruth(tiny_h5, TASK), seed=seed)


@pytest.mark.slow
def test_scored_once_with_the_offline_result(bench: Live, tiny_h5: Path) -> None:
    team = bench.team("alpha")
    content = _submission(tiny_h5, 1)
    first = bench.submit(team, TASK, content)
    second = bench.submit(team, TASK, _submission(tiny_h5, 2), send=False)
    for _ in range(3):  # duplicates of one message: one result, one attempt
        bench.send(second)
    bench.worker()
    try:
        rows = bench.wait([first, second], timeout=90)
    except AssertionError:
        print(bench.logs())
        raise
    offline = score_file(TASK, load_groundtruth(tiny_h5, TASK), content)
    by_id = {r.id: r for r in rows}
    row = by_id[first]
    assert row.status == Status.scored, row.error
    assert row.attempts == 1
    assert row.result["metrics"] == offline.metrics
    assert row.scorer_name == tasks.get(TASK).metric
    assert row.scorer_version == offline.version
    assert row.worker_host and row.started_at and row.finished_at
    saved = Result.load(bench.data_dir / row.arrays_path)
    assert saved.metrics == offline.metrics
    assert list(saved.per_example["score"]) == list(offline.per_example["score"])
    assert by_id[second].status == Status.scored and by_id[second].attempts == 1
    # Late duplicates of a scored row, then a new submission: the one worker takes its
    # messages in order, so once the new one is scored the duplicates were consumed.
    for _ in range(2):
        bench.send(first)
    sentinel = bench.submit(team, TASK, _submission(tiny_h5, 3))
    assert bench.wait(sentinel)[0].status == Status.scored
    again = bench.row(first)
    assert (again.attempts, again.finished_at) == (1, row.finished_at)
    # The scores are untouched; only the board statistics (the p-value against a new
    # leader) may have been recomputed meanwhile (evalserver.worker.stats).
    assert without_stats(again.result) == without_stats(row.result)


@pytest.mark.slow
def test_a_scorer_that_raises_fails_the_row_with_its_message(bench: Live, tiny_h5: Path) -> None:
    team = bench.team("beta")
    content = _submission(tiny_h5, 3)
    broken = content[: len(content) // 2]  # half a file: the validated form has problems
    sub_id = bench.submit(team, TASK, broken)
    bench.worker()
    (row,) = bench.wait(sub_id)
    assert row.status == Status.failed
    assert row.attempts == 1
    assert row.error.startswith(f"scoring {TASK}, phase {tasks.get(TASK).default_phase} failed")
    assert str(bench.data_dir) not in row.error
    assert row.result is None


@pytest.mark.slow
@pytest.mark.parametrize("live", BACKENDS, indirect=True)
def test_a_worker_killed_while_running_is_recovered(bench: Live, tiny_h5: Path) -> None:
    hold = bench.data_dir / "hold-dir"
    hold.mkdir()
    (hold / "hold").touch()
    team = bench.team("gamma")
    sub_id = bench.submit(team, TASK, _submission(tiny_h5, 4))
    first = bench.worker(env={"VL12_TEST_HOLD_DIR": str(hold)})
    marker = hold / f"running-{sub_id}"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, bench.logs()
        time.sleep(0.05)
    assert int(marker.read_text()) == first.pid  # the solo pool scores in the worker itself
    assert bench.row(sub_id).status == Status.running
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    (hold / "hold").unlink()
    bench.sweeper()
    bench.worker()
    (row,) = bench.wait(sub_id, timeout=90)
    assert row.status == Status.scored, row.error
    assert row.attempts == 2
    assert sorted(p.name for p in (bench.data_dir / "results" / sub_id).iterdir()) == [
        "attempt-2.npz"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_a_run_past_the_time_limit_fails_with_a_message(bench: Live, tiny_h5: Path) -> None:
    hold = bench.data_dir / "hold-dir"
    hold.mkdir()
    (hold / "hold").touch()  # the run never ends by itself
    sub_id = bench.submit(bench.team("delta"), TASK, _submission(tiny_h5, 5))
    bench.start("worker", "--pool", "prefork",
                env={"VL12_TEST_HOLD_DIR": str(hold), "VL12_SCORE_TIME_LIMIT_S": "1.5"})
    (row,) = bench.wait(sub_id, timeout=60)
    assert row.status == Status.failed
    assert row.error == (
        f"scoring {TASK}, phase {tasks.get(TASK).default_phase} failed: time limit of 1.5 s "
        "exceeded (VL12_SCORE_TIME_LIMIT_S); stopped"
    )
    assert row.attempts == 1
