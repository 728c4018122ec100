"""How a vanished scoring process is described (``evalserver.worker.lost``): the exit
status in words, an out-of-memory kill told from any other SIGKILL by the memory cgroup's
``oom_kill`` counter (v1 and v2 layouts, on folders made here), the cgroup's limit as the
memory limit exceeded; the worker settling a lost run's row or re-score job (in process,
only while that process holds it); and the sweeper's notes on whole workers that stopped
answering. (A real SIGKILL of a pool process: test_limits_live.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from evalserver.db.migrate import upgrade
from evalserver.db.models import (
    BenchmarkVersion,
    Rescore,
    RescoreStatus,
    Status,
    Submission,
    Team,
    utcnow,
)
from evalserver.db.session import make_engine
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.settings import Settings
from evalserver.worker.lost import MemoryCgroup, ProcessLost, describe_exit, process_state
from evalserver.worker.rescore import Rescorer, request_rescore
from evalserver.worker.rescore import fail_lost as fail_lost_rescore
from evalserver.worker.sweeper import sweep
from evalserver.worker.tasks import Outcome, WorkerState
from tests.evalserver.server.live import Live, Services, make_live, services  # noqa: F401
from unify import tasks

HEAD = "scoring nlvr2, phase test1 failed"
KILLED = "Worker exited prematurely: signal 9 (SIGKILL) Job: 3."


def test_exit_statuses_in_words() -> None:
    assert describe_exit(KILLED) == "killed by signal 9 (SIGKILL: out of memory?)"
    assert describe_exit("Worker exited prematurely: signal 11 (SIGSEGV) Job: 0.") == (
        "killed by signal 11 (SIGSEGV)"
    )
    assert describe_exit("Worker exited prematurely: exitcode 3 Job: 1.") == (
        "the scoring process exited with code 3"
    )
    assert describe_exit("Worker exited prematurely: SystemExit.") == (
        "the scoring process died (Worker exited prematurely: SystemExit.)"
    )


def test_the_row_message_names_the_limit_only_for_an_oom_kill() -> None:
    plain = ProcessLost("w1:41", KILLED)
    assert plain.message(HEAD) == (
        "scoring nlvr2, phase test1 failed: killed by signal 9 (SIGKILL: out of memory?) "
        "while scoring, on w1:41"
    )
    limited = ProcessLost("w1:41", KILLED, oom_killed=True, cgroup_limit_mb=2048)
    assert limited.message(HEAD).startswith(
        "scoring nlvr2, phase test1 failed: memory limit of 2048 MB exceeded"
    )
    assert "w1:41" in limited.message(HEAD)
    host_wide = ProcessLost("w1:41", KILLED, oom_killed=True)
    assert "out-of-memory killer ended the scoring process w1:41" in host_wide.message(HEAD)


def _cgroup_v2(root: Path, path: str, oom_kill: int, limit: str) -> None:
    folder = root / path.lstrip("/")
    folder.mkdir(parents=True)
    (folder / "memory.events").write_text(
        f"low 0\nhigh 0\nmax 4\noom 1\noom_kill {oom_kill}\noom_group_kill 0\n")
    (folder / "memory.max").write_text(limit + "\n")


def test_cgroup_v2_counter_and_limit(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _cgroup_v2(root, "/system.slice/vl12-worker@1.service", 2, str(3 << 30))
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/system.slice/vl12-worker@1.service\n")
    cgroup = MemoryCgroup.of_this_process(root, proc)
    assert (cgroup.version, cgroup.oom_kills(), cgroup.limit_mb()) == (2, 2, 3072)
    (cgroup.folder / "memory.max").write_text("max\n")  # type: ignore[operator]
    assert cgroup.limit_mb() is None


def test_cgroup_v1_in_a_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    memory = tmp_path / "cgroup" / "memory"
    memory.mkdir(parents=True)
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    (memory / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("9:name=systemd:/\n4:memory:/docker/abc\n0::/\n")
    cgroup = MemoryCgroup.of_this_process(tmp_path / "cgroup", proc)
    assert (cgroup.folder, cgroup.version) == (memory, 1)
    assert (cgroup.oom_kills(), cgroup.limit_mb()) == (5, None)  # 2**63: no limit
    (memory / "memory.limit_in_bytes").write_text(str(512 << 20))
    assert cgroup.limit_mb() == 512


def test_no_cgroup_means_nothing_inferred(tmp_path: Path) -> None:
    cgroup = MemoryCgroup.of_this_process(tmp_path, tmp_path / "missing")
    assert (cgroup.folder, cgroup.oom_kills(), cgroup.limit_mb()) == (None, None, None)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_process_state_on_this_host_only() -> None:
    here = socket.gethostname()
    assert process_state(f"{here}:{_dead_pid()}") == "gone"
    assert process_state(f"{here}:{os.getpid()}") == "alive"
    assert process_state("another-host:1") is None
    assert process_state(None) is None


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = Settings(data_dir=tmp_path, running_deadline_s=600, max_attempts=2)
    upgrade(settings.db_url)
    made = make_engine(settings.db_url)
    with Session(made) as session:
        session.add(Team(id=1, name="t", token_hash="0" * 64))
        session.add(BenchmarkVersion(id=1, name="b", version=1, fingerprint="f" * 64,
                                     file_path="x.h5", schema_version="1.2"))
        session.commit()
    try:
        yield settings, made
    finally:
        made.dispose()


def _running(engine: Engine, where: str, attempts: int) -> str:
    sub_id = uuid.uuid4().hex
    when = utcnow() - timedelta(seconds=900)
    with Session(engine) as session:
        session.add(Submission(
            id=sub_id, team_id=1, benchmark_id=1, task="nlvr2", phase="test1", file_path="u",
            file_sha256=sub_id * 2, file_size=1, status=Status.running, attempts=attempts,
            updated_at=when, started_at=when, worker_host=where,
        ))
        session.commit()
    return sub_id


def _set_running(engine: Engine, sub_id: str, where: str) -> None:
    """A worker claims the re-queued row again (attempt + 1) and dies too, long ago."""
    with Session(engine) as session:
        row = session.get_one(Submission, sub_id)
        row.status, row.attempts, row.worker_host = Status.running, row.attempts + 1, where
        row.updated_at = utcnow() - timedelta(seconds=900)
        session.commit()


def test_the_sweeper_notes_each_lost_run_and_names_them_when_it_gives_up(
    engine: tuple[Settings, Engine],
) -> None:
    settings, made = engine
    here = socket.gethostname()
    first, second = f"{here}:{_dead_pid()}", "elsewhere:7"
    sub_id = _running(made, first, attempts=1)
    assert sweep(settings, made, lambda _: None).reset == [sub_id]
    with Session(made) as session:
        row = session.get_one(Submission, sub_id)
        assert row.status == Status.queued
        assert [(r["attempt"], r["worker"], r["process"]) for r in row.log["lost_runs"]] == [
            (1, first, "gone")]
    _set_running(made, sub_id, second)
    assert sweep(settings, made, lambda _: None).failed == [sub_id]
    with Session(made) as session:
        row = session.get_one(Submission, sub_id)
    assert row.status == Status.failed
    assert row.error == (
        "gave up after 2 attempt(s): each time the worker stopped answering for more than "
        f"600 s (on {first} (its process is gone: killed, e.g. by the kernel's out-of-memory "
        "killer, or crashed), on elsewhere:7); the sweeper does not retry it again"
    )


# --------------------------------------------------------------------------- settling a row


@pytest.fixture
def bench(services: Services, tmp_path: Path, tiny_h5: Path) -> Iterator[Live]:  # noqa: F811
    server = make_live("sqlite", services, tmp_path / "data")
    try:
        server.load_benchmark(tiny_h5)
        yield server
    finally:
        server.close()


def _limited_cgroup(tmp_path: Path, limit_mb: int) -> MemoryCgroup:
    folder = tmp_path / "cg"
    _cgroup_v2(folder, "/", 0, str(limit_mb << 20))
    return MemoryCgroup(folder, version=2)


def test_a_lost_run_fails_its_row_only_while_that_process_holds_it(
    bench: Live, tiny_h5: Path, tmp_path: Path
) -> None:
    """In process, as the worker's main process calls it: the OOM counter rose under a
    cgroup limit, so the row names that limit; a pid that does not hold the row (another
    worker took it) changes nothing."""
    state = WorkerState(bench.settings, cgroup=_limited_cgroup(tmp_path, 2048))
    content = chance_submission(load_groundtruth(tiny_h5, "nlvr2"), seed=3)
    sub_id = bench.submit(bench.team("alpha"), "nlvr2", content, send=False)
    assert state.claim(sub_id) == 1
    assert not state.fail_lost(sub_id, os.getpid() + 1, KILLED, (3, 4))  # not its holder
    assert bench.row(sub_id).status == Status.running
    assert state.fail_lost(sub_id, os.getpid(), KILLED, (3, 4))
    row = bench.row(sub_id)
    phase = tasks.get("nlvr2").default_phase
    assert (row.status, row.attempts) == (Status.failed, 1)
    assert row.error == (
        f"scoring nlvr2, phase {phase} failed: memory limit of 2048 MB exceeded (the memory "
        "limit of the worker's cgroup); the kernel's out-of-memory killer ended the scoring "
        f"process {state.worker_host()}"
    )
    assert row.log["worker"] == {"host": state.worker_host(), "attempt": 1, "lost": KILLED}
    assert not state.fail_lost(sub_id, os.getpid(), KILLED, (3, 4))  # final: once only


def test_a_lost_rescore_fails_the_job_and_keeps_the_result(
    bench: Live, tiny_h5: Path, tmp_path: Path
) -> None:
    state = WorkerState(bench.settings, cgroup=_limited_cgroup(tmp_path, 512))
    content = chance_submission(load_groundtruth(tiny_h5, "nlvr2"), seed=4)
    sub_id = bench.submit(bench.team("alpha"), "nlvr2", content, send=False)
    assert state.run(sub_id) == Outcome.SCORED
    with Session(bench.engine, expire_on_commit=False) as session:
        job, _ = request_rescore(session, session.get_one(Submission, sub_id), "t", "r")
    assert Rescorer(state).claim(job.id) == 1
    assert fail_lost_rescore(state, job.id, os.getpid(), KILLED, (None, None))
    with Session(bench.engine) as session:
        failed = session.get_one(Rescore, job.id)
        assert failed.status == RescoreStatus.failed
        assert failed.error == (  # no counter to read: the signal, not a guess
            "re-scoring failed: killed by signal 9 (SIGKILL: out of memory?) while scoring, "
            f"on {state.worker_host()}"
        )
        assert session.get_one(Submission, sub_id).status == Status.scored
