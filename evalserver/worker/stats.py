"""Statistics of a leaderboard, computed by the worker after a submission is scored and
stored in each row's ``result`` JSON under ``"stats"`` (pages and API only read them).

* the 95% bootstrap interval of the primary metric (``evalserver.stats``), on resamples
  seeded by the board (benchmark fingerprint, task, phase): the same for every entry;
* the seen / unseen scores (``evalserver.stats.leakage``): the primary metric on the
  examples whose image's identity group occurs in some task's raw training split, and on
  the rest;
* the paired bootstrap p-value against the board's leader (rank 1 of the public ranking,
  ``evalserver.ranking``); each row records the leader it was tested against, so when the
  leader changes every row of the board is recomputed, and otherwise only the new one.

Never fails a scoring run: a problem here is logged and the row keeps its scores.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from evalserver.db.models import BenchmarkVersion, Status, Submission, Team
from evalserver.metrics import GroundTruth
from evalserver.metrics.result import Result
from evalserver.ranking import Entry, rank
from evalserver.stats import Design, board_seed, bootstrap, design_for, interval, paired_p_value
from evalserver.stats.leakage import example_seen, seen_unseen
from evalserver.storage import Storage
from unify import tasks
from unify.reader import UnifiedFile

__all__ = [
    "BATCH",
    "board_stats_after_scoring",
    "design_of",
    "update_board_stats",
]

log = logging.getLogger("vl12.worker.stats")

#: Entries resampled at once when a whole board is recomputed (bounded memory).
BATCH = 8

GroundTruthOf = Callable[[BenchmarkVersion, str, str], GroundTruth]
#: ``(benchmark, task, phase, splits, result) -> seen mask``; the worker's is cached.
SeenOf = Callable[[BenchmarkVersion, str, str, Sequence[str], Result], "np.ndarray | None"]


def design_of(gt: GroundTruth, n: int) -> tuple[Design, str]:
    """The resampling unit of a ground truth, read from what its metric object holds:
    nlvr2's ``sentence_index`` (a sentence and all its pairs), a per-example ``splits``
    (refer tasks scored over several splits: within each split); else the example."""
    data = gt.data
    clusters = getattr(data, "sentence_index", None)
    strata = getattr(data, "splits", None)
    per_example = (
        strata is not None and not isinstance(strata, str) and len(strata) == n
        and len(gt.splits) > 1
    )
    if not per_example or not set(np.unique(np.asarray(strata, dtype=str))) <= set(gt.splits):
        strata = None
    if clusters is not None and len(clusters) != n:
        clusters = None
    unit = tasks.get(gt.task).example_unit if gt.task in tasks.task_names() else "example"
    if clusters is not None:
        unit = "sentence (all its pairs)"
    if strata is not None:
        unit += ", within each split"
    return design_for(n, clusters=clusters, strata=strata), unit


@dataclass(frozen=True)
class _Entry:
    """One scored row of a board, as the statistics read it: its ranking fields and what
    its stored statistics were computed against (never the whole ``result`` JSON: this is
    read for every entry of the board after every scoring)."""

    id: str
    team_id: int
    team: str
    method_name: str
    created_at: datetime
    is_public: bool
    is_hidden: bool
    arrays_path: str
    metrics: dict[str, Any]
    stats_leader: str | None
    stats_resamples: int | None


def _board_entries(session: Session, sub: Submission) -> list[_Entry]:
    """The scored rows of ``sub``'s board. The JSON fields come out of the database by
    path (``result -> metrics``, ``result -> stats -> leader`` ...), the same on SQLite and
    PostgreSQL: decoding every entry's whole result was most of a scoring run's cost on a
    board of a thousand entries."""
    result = Submission.result
    query = (
        select(
            Submission.id, Submission.team_id, Team.name, Submission.method_name,
            Submission.created_at, Submission.is_public, Submission.is_hidden,
            Submission.arrays_path, result["metrics"],
            result[("stats", "leader")].as_string(),
            result[("stats", "n_resamples")].as_integer(),
        )
        .join(Team, Team.id == Submission.team_id)
        .where(
            Submission.on_board(sub.benchmark_id, sub.task, sub.phase),
            Submission.status == Status.scored,
            Submission.arrays_path.is_not(None),
        )
    )
    return [
        _Entry(
            id=r[0], team_id=r[1], team=r[2], method_name=r[3], created_at=r[4],
            is_public=bool(r[5]), is_hidden=bool(r[6]), arrays_path=r[7],
            metrics=r[8] if isinstance(r[8], dict) else {},
            stats_leader=r[9], stats_resamples=r[10],
        )
        for r in session.execute(query)
    ]


def _result(storage: Storage, row: _Entry) -> Result:
    """The row's per-example arrays, through the storage (a worker on another host reads
    them from S3 as the scoring worker wrote them)."""
    if row.arrays_path is None:
        raise ValueError(f"submission {row.id} has no per-example arrays")
    with storage.reading(row.arrays_path) as local:
        return Result.load(local)


def _scores(storage: Storage, row: _Entry) -> np.ndarray:
    return np.asarray(_result(storage, row).per_example["score"], np.float64)


def seen_of(
    bench_file: Path, task: str, splits: Sequence[str], result: Result
) -> np.ndarray | None:
    """Seen-in-raw-training per scored example (``evalserver.stats.leakage``)."""
    n = len(result.per_example["score"])
    with UnifiedFile(bench_file) as uf:
        return example_seen(uf, task, splits, result.example_ids, n)


def _leader(rows: Sequence[_Entry], task: str) -> _Entry | None:
    """Rank 1 of the public ranking (what everyone sees first): never a row the admin hid,
    which no board shows (``evalserver.submissions.visible_submissions``)."""
    public = [r for r in rows if r.is_public and not r.is_hidden]
    if not public:
        return None
    entries = [
        Entry(r.id, r.team_id, r.team, r.method_name, r.created_at, r.metrics) for r in public
    ]
    first = rank(entries, tasks.get(task))[0].entry.submission_id
    return next(r for r in public if r.id == first)


def update_board_stats(
    engine: Engine, storage: Storage, groundtruth: GroundTruthOf, submission_id: str,
    n_resamples: int, seen: SeenOf | None = None,
) -> list[str]:
    """Compute the statistics of ``submission_id``'s board that are missing or stale; the
    ids whose stats were written. ``seen`` finds the seen-in-training mask (default: read
    from the benchmark file each time; the worker passes its cache, since the mask is the
    same for every entry of a board and reading the training groups dominates the cost)."""
    with Session(engine, expire_on_commit=False) as session:
        sub = session.get(Submission, submission_id)
        if sub is None or sub.status != Status.scored or n_resamples <= 0:
            return []
        bench = session.get_one(BenchmarkVersion, sub.benchmark_id)
        rows = _board_entries(session, sub)
    leader = _leader(rows, sub.task)
    leader_id = leader.id if leader is not None else None

    def stale(row: _Entry) -> bool:  # n_resamples is written with the interval
        return row.stats_leader != leader_id or row.stats_resamples != n_resamples

    todo = [r for r in rows if stale(r)]
    if not todo:
        return []
    gt = groundtruth(bench, sub.task, sub.phase)
    seed = board_seed(bench.fingerprint, sub.task, sub.phase)
    first_result = _result(storage, todo[0])
    first = np.asarray(first_result.per_example["score"], np.float64)
    design, unit = design_of(gt, len(first))
    if seen is None:
        mask = seen_of(storage.local_path(bench.file_path), sub.task, gt.splits, first_result)
    else:
        mask = seen(bench, sub.task, sub.phase, gt.splits, first_result)
    leader_scores = None if leader is None else _scores(storage, leader)
    leader_resampled = None
    written = []
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        scores = [first if r is todo[0] else _scores(storage, r) for r in batch]
        if leader_scores is not None and leader_resampled is None:
            # The leader rides along with the first batch: the same draws (the shared
            # resamples) are generated once instead of twice.
            both = bootstrap([*scores, leader_scores], design, seed, n_resamples)
            resampled, leader_resampled = both[:, :-1], both[:, -1]
        else:
            resampled = bootstrap(scores, design, seed, n_resamples)
        for j, row in enumerate(batch):
            found = interval(resampled[:, j])
            stats: dict[str, Any] = {
                "level": 0.95,
                "low": _number(found.low),
                "high": _number(found.high),
                "half_width": _number(found.half_width),
                "n_resamples": n_resamples,
                "unit": unit,
                "leader": leader_id,
                "p_value": None,
            }
            if mask is not None and len(mask) == len(scores[j]):
                stats["leakage"] = seen_unseen(scores[j], mask).to_dict()
            if leader_resampled is not None and leader_scores is not None and row.id != leader_id:
                stats["p_value"] = paired_p_value(
                    resampled[:, j], leader_resampled,
                    100 * float(np.nanmean(scores[j])), 100 * float(np.nanmean(leader_scores)),
                )
            if _write_stats(engine, row, stats):
                written.append(row.id)
    return written


def _number(value: float) -> float | None:
    """None for NaN (an entry without one scored example has no interval): the stored
    result must stay valid JSON, which the board's JSON-path query and PostgreSQL need."""
    return value if math.isfinite(value) else None


def _write_stats(engine: Engine, row: _Entry, stats: dict[str, Any]) -> bool:
    """Put ``stats`` into the row's current result, in one transaction, if the row still
    holds the scores they were computed from (a re-score in between changes
    ``arrays_path``: its own statistics follow it)."""
    same = (
        Submission.id == row.id,
        Submission.status == Status.scored,
        Submission.arrays_path == row.arrays_path,
    )
    with engine.begin() as conn:
        current = conn.execute(select(Submission.result).where(*same)).scalar_one_or_none()
        if current is None:
            return False
        stats = {"metric": current.get("primary"), **stats}
        changed = conn.execute(
            update(Submission).where(*same).values(result=dict(current) | {"stats": stats})
        ).rowcount
    return bool(changed)


def board_stats_after_scoring(state: Any, submission_id: str) -> None:
    """The worker's hook (``WorkerState.run``, after a row is scored)."""
    try:
        written = update_board_stats(
            state.engine, state.storage, state.groundtruth, submission_id,
            state.settings.bootstrap_resamples, state.seen,
        )
        log.info("submission %s: statistics of %d row(s) written", submission_id, len(written))
    except Exception:
        log.exception("submission %s: statistics not computed (scores are kept)", submission_id)
