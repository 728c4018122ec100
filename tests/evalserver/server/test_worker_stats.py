"""The worker's statistics after scoring (evalserver.worker.stats): an interval and a
p-value against the leader on every scored row, recomputed when the leader changes, and
the resampling unit of each task's ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from evalserver.db.models import Submission
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.worker.stats import design_of
from evalserver.worker.tasks import Outcome, WorkerState
from tests.evalserver.server.live import Live, Services, make_live, services  # noqa: F401
from unify import tasks


@pytest.fixture(params=["sqlite", "postgres-redis"])
def live(
    request: pytest.FixtureRequest, services: Services, tmp_path: Path, tiny_h5: Path  # noqa: F811
) -> Iterator[Live]:
    """The statistics read the board's JSON fields by path in SQL: both databases."""
    server = make_live(request.param, services, tmp_path / "data")
    server.load_benchmark(tiny_h5)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("task", ["nlvr2", "refcoco"])
def test_every_scored_row_gets_an_interval_and_a_p_value(
    live: Live, tiny_h5: Path, task: str
) -> None:
    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, task)
    ids = []
    for seed in (1, 2, 3):
        ids.append(live.submit(live.team(f"{task}-{seed}"), task, chance_submission(gt, seed),
                               send=False))
        assert state.run(ids[-1]) == Outcome.SCORED
    rows = [live.row(i) for i in ids]
    primary = tasks.get(task).primary
    leader = max(rows, key=lambda r: (r.result["metrics"][primary], -r.created_at.timestamp()))
    for row in rows:
        stats = row.result["stats"]
        assert stats["n_resamples"] == live.settings.bootstrap_resamples
        assert stats["low"] <= row.result["metrics"][primary] + 1e-9
        assert stats["high"] >= row.result["metrics"][primary] - 1e-9
        assert stats["half_width"] >= 0
        assert stats["leader"] == leader.id
        leak = stats["leakage"]
        assert leak["n_seen"] + leak["n_unseen"] == row.result["num_examples"]
        if row.id == leader.id:
            assert stats["p_value"] is None
        else:
            assert 0 < stats["p_value"] <= 1
    # Scoring the leader's file again from another team: a new row, identical predictions.
    again = live.submit(live.team(f"{task}-copy"), task, _content_of(live, leader), send=False)
    assert state.run(again) == Outcome.SCORED
    copy = live.row(again).result["stats"]
    assert copy["p_value"] == 1.0  # same predictions as the leader
    assert copy["half_width"] == pytest.approx(leader.result["stats"]["half_width"])


def _content_of(live: Live, row: Submission) -> bytes:
    return (live.data_dir / row.file_path).read_bytes()


def test_a_new_leader_recomputes_the_board(live: Live, tiny_h5: Path) -> None:
    task = "nlvr2"
    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, task)
    first = live.submit(live.team("a"), task, chance_submission(gt, 1), send=False)
    state.run(first)
    assert live.row(first).result["stats"]["leader"] == first
    # A perfect submission: the answers themselves.
    perfect = "".join(
        f"{i},{bool(v)}\n" for i, v in zip(gt.data.identifiers, gt.data.labels, strict=True)
    ).encode()
    best = live.submit(live.team("b"), task, perfect, send=False)
    assert state.run(best) == Outcome.SCORED, live.row(best).error
    assert live.row(best).result["metrics"]["accuracy"] == 100.0
    old = live.row(first).result["stats"]
    assert old["leader"] == best and old["p_value"] is not None


def test_the_resampling_unit_follows_the_ground_truth(tiny_h5: Path) -> None:
    nlvr2 = load_groundtruth(tiny_h5, "nlvr2")
    design, unit = design_of(nlvr2, len(nlvr2.data.labels))
    assert design.n_units == len(np.unique(nlvr2.data.sentence_index)) < len(nlvr2.data.labels)
    assert "sentence" in unit
    refer = load_groundtruth(tiny_h5, "refcoco")  # phase "all": val, testA, testB
    n = len(refer.data.sent_ids)
    design, unit = design_of(refer, n)
    assert len(np.unique(design.stratum)) == len(set(refer.data.splits)) > 1
    assert "within each split" in unit
    vqa = load_groundtruth(tiny_h5, "vqa2")
    design, _ = design_of(vqa, 10)
    assert design.n_units == 10 and len(np.unique(design.stratum)) == 1


def test_statistics_never_fail_a_scoring_run(live: Live, tiny_h5: Path) -> None:
    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, "nlvr2")
    first = live.submit(live.team("a"), "nlvr2", chance_submission(gt, 1), send=False)
    state.run(first)
    with Session(live.engine) as session:  # the arrays of the leader are gone
        session.execute(update(Submission).values(arrays_path="results/missing.npz"))
        session.commit()
    second = live.submit(live.team("b"), "nlvr2", chance_submission(gt, 2), send=False)
    assert state.run(second) == Outcome.SCORED
    assert "metrics" in live.row(second).result


@pytest.mark.parametrize(("column", "value"), [("is_public", False), ("is_hidden", True)])
def test_a_leader_made_private_or_hidden_is_replaced_by_the_next_public_one(
    live: Live, tiny_h5: Path, column: str, value: bool
) -> None:
    from evalserver.worker.stats import board_stats_after_scoring

    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, "nlvr2")
    ids = [live.submit(live.team(f"t{seed}"), "nlvr2", chance_submission(gt, seed), send=False)
           for seed in (1, 2)]
    for sub_id in ids:
        state.run(sub_id)
    leader = live.row(ids[0]).result["stats"]["leader"]
    other = next(i for i in ids if i != leader)
    with Session(live.engine) as session:
        session.execute(update(Submission).where(Submission.id == leader).values({column: value}))
        session.commit()
    board_stats_after_scoring(state, leader)  # what the STATS_TASK message runs
    assert live.row(other).result["stats"]["leader"] == other
    assert live.row(other).result["stats"]["p_value"] is None
    assert live.row(leader).result["stats"]["leader"] == other


def test_the_seen_mask_is_read_once_per_board_and_equals_a_fresh_read(
    live: Live, tiny_h5: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker caches the seen-in-training mask per board (reading every task's training
    groups dominated the cost of a scored row); the cached rows' leakage figures equal
    those computed from the file each time."""
    import evalserver.worker.tasks as worker_tasks
    from evalserver.worker.stats import seen_of

    reads: list[str] = []

    def counting(*args: object) -> object:
        reads.append(str(args[1]))
        return seen_of(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_tasks, "seen_of", counting)
    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, "nlvr2")
    ids = [live.submit(live.team(f"s{seed}"), "nlvr2", chance_submission(gt, seed), send=False)
           for seed in (1, 2, 3, 4)]
    for sub_id in ids:
        assert state.run(sub_id) == Outcome.SCORED
    assert reads == ["nlvr2"]  # once for the board, not once per row
    refer = load_groundtruth(tiny_h5, "refcoco")
    other = live.submit(live.team("r"), "refcoco", chance_submission(refer, 1), send=False)
    assert state.run(other) == Outcome.SCORED
    assert reads == ["nlvr2", "refcoco"]  # another board: its own mask

    # The same figures as the uncached path (a fresh state reading the file).
    cached = {i: live.row(i).result["stats"]["leakage"] for i in ids}
    from evalserver.worker.stats import update_board_stats

    fresh_state = WorkerState(live.settings)
    for sub_id in ids:
        row = live.row(sub_id)
        with Session(live.engine) as session:  # drop the stats so they are recomputed
            result = dict(row.result)
            result.pop("stats")
            session.execute(update(Submission).where(Submission.id == sub_id)
                            .values(result=result))
            session.commit()
    update_board_stats(fresh_state.engine, fresh_state.storage, fresh_state.groundtruth, ids[0],
                       live.settings.bootstrap_resamples)  # no cache: read from the file
    assert {i: live.row(i).result["stats"]["leakage"] for i in ids} == cached


def test_an_entry_without_a_scored_example_keeps_the_board_statistics_working(
    live: Live, tiny_h5: Path
) -> None:
    """All NaN scores give no interval: it is stored as null, never as NaN (not JSON: the
    board's JSON-path query failed on SQLite and PostgreSQL refused the write), and the
    entries scored after it still get their statistics."""
    from evalserver.metrics.result import Result

    state = WorkerState(live.settings)
    gt = load_groundtruth(tiny_h5, "nlvr2")
    empty = live.submit(live.team("empty"), "nlvr2", chance_submission(gt, 1), send=False)
    assert state.run(empty) == Outcome.SCORED
    row = live.row(empty)
    arrays = live.data_dir / row.arrays_path
    result = Result.load(arrays)
    result.per_example["score"] = np.full(len(result.per_example["score"]), np.nan)
    result.save(arrays)
    without_stats = {k: v for k, v in row.result.items() if k != "stats"}
    with Session(live.engine) as session:
        session.execute(update(Submission).where(Submission.id == empty)
                        .values(result=without_stats))
        session.commit()
    later = []
    for seed in (2, 3):
        later.append(live.submit(live.team(f"later-{seed}"), "nlvr2",
                                 chance_submission(gt, seed), send=False))
        assert state.run(later[-1]) == Outcome.SCORED
    stats = live.row(empty).result["stats"]
    assert stats["low"] is None and stats["high"] is None and stats["half_width"] is None
    for sub_id in later:
        assert live.row(sub_id).result["stats"]["half_width"] > 0
