"""The scoring task's transitions in process (no broker): the claim, the finish guard, the
ground-truth cache, and which errors count as transient."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from evalserver.db.models import Status, Submission
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.worker.tasks import Outcome, WorkerState, is_transient
from tests.evalserver.server.live import Live

TASK = "nlvr2"


def _queued(live: Live, tiny_h5: Path, seed: int) -> str:
    content = chance_submission(load_groundtruth(tiny_h5, TASK), seed=seed)
    return live.submit(live.team(f"team-{seed}"), TASK, content, send=False)


def test_run_scores_once_then_skips(live: Live, tiny_h5: Path) -> None:
    state = WorkerState(live.settings)
    sub_id = _queued(live, tiny_h5, 1)
    assert state.run(sub_id) == Outcome.SCORED
    assert state.run(sub_id) == Outcome.SKIPPED  # a duplicate message
    assert state.run("0" * 32) == Outcome.SKIPPED  # a message for no row
    row = live.row(sub_id)
    assert (row.status, row.attempts) == (Status.scored, 1)


def test_an_attempt_that_lost_its_row_cannot_finish_it(live: Live, tiny_h5: Path) -> None:
    state = WorkerState(live.settings)
    sub_id = _queued(live, tiny_h5, 2)
    assert state.claim(sub_id) == 1
    assert state.claim(sub_id) is None  # running: nobody else gets it
    with live.engine.begin() as conn:  # the sweeper presumed attempt 1 dead
        conn.execute(update(Submission).where(Submission.id == sub_id)
                     .values(status=Status.queued))
    assert state.claim(sub_id) == 2
    assert not state.finish(sub_id, 1, status=Status.scored)
    assert live.row(sub_id).status == Status.running
    assert state.finish(sub_id, 2, status=Status.failed, error="x")
    assert not state.finish(sub_id, 2, status=Status.scored)  # final stays final
    assert live.row(sub_id).status == Status.failed


def test_ground_truth_is_loaded_once_per_board(live: Live, tiny_h5: Path) -> None:
    state = WorkerState(live.settings)
    sub_id = _queued(live, tiny_h5, 3)
    sub, bench = state.load(sub_id)
    first = state.groundtruth(bench, TASK, sub.phase)
    assert state.groundtruth(bench, TASK, sub.phase) is first
    other = state.groundtruth(bench, TASK, "dev")
    assert other is not first and other.phase == "dev"


def test_only_connection_trouble_is_transient() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, Exception("server closed")))
    assert not is_transient(ValueError("bad predictions"))
    assert not is_transient(KeyError("id"))
