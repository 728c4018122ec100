"""Re-scoring with real worker and sweeper processes: a submission scored by an older scorer
version is re-scored (by ``evalserver rescore`` and, by itself, by the sweeper), the old
result kept as history and the new one current; duplicate messages re-score once; a failed
re-score leaves the submission as it was; the API shows the history.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evalserver.app.main import make_app
from evalserver.cli import main
from evalserver.db.migrate import upgrade
from evalserver.db.models import AuditEntry, Rescore, RescoreStatus, Status, Submission, Team
from evalserver.db.session import make_engine
from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.chance import chance_submission
from evalserver.teams import authenticate, create_team, hash_token
from evalserver.worker.celery_app import make_celery
from evalserver.worker.rescore import (
    RESCORE_TASK,
    Rescorer,
    current_version,
    request_rescore,
    sweep_rescores,
)
from evalserver.worker.tasks import Outcome, WorkerState
from tests.evalserver.server.live import BACKENDS, Live, Services, make_live, services  # noqa: F401

TASK = "nlvr2"  # the smallest ground truth of the sample
OLD = {"accuracy": 1.0, "consistency": 2.0}
ADMIN = "admin-token-for-rescore-tests"


@pytest.fixture
def live(request: pytest.FixtureRequest, services: Services, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    backend = getattr(request, "param", "sqlite")
    server = make_live(backend, services, tmp_path / "data")
    try:
        server.load_benchmark(request.getfixturevalue("tiny_h5"))
        yield server
    finally:
        server.close()


def _content(tiny_h5: Path, seed: int) -> bytes:
    return chance_submission(load_groundtruth(tiny_h5, TASK), seed=seed)


def _as_if_scored_by_an_old_scorer(live: Live, sub_id: str) -> dict:
    """The row as a previous scorer version left it (another result, another version),
    once the worker has written the board's statistics into its result (they are written
    after the score, and would otherwise overwrite this change)."""
    live.wait(sub_id, until=lambda row: "stats" in (row.result or {}))
    with Session(live.engine) as session:
        row = session.get_one(Submission, sub_id)
        result = dict(row.result) | {"metrics": OLD, "version": "old-0"}
        session.execute(
            update(Submission).where(Submission.id == sub_id)
            .values(result=result, scorer_version="old-0")
        )
        session.commit()
    return result


def _rescores(live: Live, sub_id: str) -> list[Rescore]:
    with Session(live.engine, expire_on_commit=False) as session:
        rows = list(session.scalars(
            select(Rescore).where(Rescore.submission_id == sub_id).order_by(Rescore.id)
        ))
        session.expunge_all()
    return rows


def _wait_rescores(live: Live, sub_id: str, count: int = 1, timeout: float = 60) -> list[Rescore]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rescores(live, sub_id)
        if len(rows) >= count and all(r.status not in ("queued", "running") for r in rows):
            return rows
        assert time.monotonic() < deadline, (rows, live.logs())
        time.sleep(0.1)


def _token(live: Live, team_id: int) -> str:
    """A known token for a team ``Live.team`` made."""
    token = f"token-of-{team_id}"
    with Session(live.engine) as session:
        session.get_one(Team, team_id).token_hash = hash_token(token)
        session.commit()
    return token


def _api(live: Live) -> TestClient:
    settings = live.settings.model_copy(update={"admin_token": SecretStr(ADMIN)})
    return TestClient(make_app(settings))


def _cli(live: Live, *args: str) -> Result:
    """An operator command, in this process (the worker and sweeper are the processes)."""
    return CliRunner().invoke(main, list(args), env=live.env, catch_exceptions=False)


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite", "postgres-redis"], indirect=True)
def test_a_stale_score_is_rescored_keeping_the_old_as_history(live: Live, tiny_h5: Path) -> None:
    team = live.team("alpha")
    content = _content(tiny_h5, 1)
    sub_id = live.submit(team, TASK, content)
    cancelled = live.submit(team, TASK, _content(tiny_h5, 2), send=False)
    with Session(live.engine) as session:
        session.execute(update(Submission).where(Submission.id == cancelled)
                        .values(status=Status.cancelled))
        session.commit()
    live.worker()
    (first,) = live.wait(sub_id)
    assert first.status == Status.scored, live.logs()
    old = _as_if_scored_by_an_old_scorer(live, sub_id)

    dry = _cli(live, "rescore", "--stale", "--dry-run")
    assert dry.exit_code == 0 and sub_id in dry.stdout and "old-0" in dry.stdout
    assert _rescores(live, sub_id) == []
    done = _cli(live, "rescore", "--stale", "--reason", "scorer fixed")
    assert done.exit_code == 0, done.stderr
    assert f"{sub_id}: re-score" in done.stdout and "1 re-score(s) queued" in done.stderr
    (job,) = _rescores(live, sub_id)
    for _ in range(2):  # duplicate messages: one re-score
        make_celery(live.settings).send_task(RESCORE_TASK, args=[job.id])
    (job,) = _wait_rescores(live, sub_id)

    offline = score_file(TASK, load_groundtruth(tiny_h5, TASK), content)
    assert job.status == RescoreStatus.done, job.error
    assert job.attempts == 1 and job.worker_host and job.requested_by.startswith("admin (cli ")
    assert job.reason == "scorer fixed" and job.benchmark_id == live.benchmark_id
    assert job.old_scorer_version == "old-0"
    assert {k: v for k, v in job.old_result.items() if k != "stats"} == {
        k: v for k, v in old.items() if k != "stats"}
    assert job.new_scorer_version == current_version(TASK) == offline.version
    assert job.new_result["metrics"] == offline.metrics
    row = live.row(sub_id)
    assert row.status == Status.scored and row.attempts == 1  # still the same submission
    assert row.result["metrics"] == offline.metrics and row.scorer_version == offline.version
    assert row.arrays_path == f"results/{sub_id}/rescore-{job.id}-1.npz"
    assert (live.data_dir / job.old_arrays_path).exists()  # the old arrays are kept
    # A cancelled submission is never re-scored; nothing is stale any more.
    assert _rescores(live, cancelled) == []
    again = _cli(live, "rescore", "--stale")
    assert again.exit_code == 0 and "0 re-score(s) queued" in again.stderr
    missing = _cli(live, "rescore", cancelled)
    assert missing.exit_code == 1 and "no scored submission" in missing.stderr

    # The API shows the history to the team and the admin, the audit log to the admin.
    token = _token(live, team)
    with _api(live) as client:
        history = client.get(f"/api/v1/submissions/{sub_id}/history",
                             headers={"Authorization": f"Bearer {token}"})
        assert history.status_code == 200
        (entry,) = history.json()
        assert entry["status"] == "done" and entry["requested_by"].startswith("admin (cli ")
        assert entry["old"] == {"scorer_name": first.scorer_name, "scorer_version": "old-0",
                                "metrics": OLD}
        assert entry["new"]["metrics"] == offline.metrics
        assert entry["benchmark"]["name"] == "tiny" and entry["requested_at"]
        log = client.get(f"/api/v1/submissions/{sub_id}/log",
                         headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert log["worker"]["host"] == first.worker_host and log["worker"]["score_s"] >= 0
        assert [a["action"] for a in log["audit"]] == ["rescore"]


@pytest.mark.slow
def test_the_sweeper_rescores_a_changed_scorer_by_itself_and_a_failure_changes_nothing(
    live: Live, tiny_h5: Path
) -> None:
    team = live.team("beta")
    good = live.submit(team, TASK, _content(tiny_h5, 3))
    broken = live.submit(team, TASK, _content(tiny_h5, 4))
    content = _content(tiny_h5, 5)
    raises = live.submit(team, TASK, content[: len(content) // 2])  # the scorer raises
    live.worker()
    live.wait([good, broken, raises])
    failed_run = live.row(raises)
    assert failed_run.status == Status.failed
    assert failed_run.log["worker"]["host"] == failed_run.worker_host
    assert "Traceback (most recent call last)" in failed_run.log["trace"]
    _as_if_scored_by_an_old_scorer(live, good)
    old_broken = _as_if_scored_by_an_old_scorer(live, broken)
    before = live.row(broken)
    (live.data_dir / before.validated_path).unlink()  # its re-score cannot load its form
    live.sweeper()
    (job,) = _wait_rescores(live, good)
    assert job.status == RescoreStatus.done and job.requested_by == "sweeper"
    assert job.reason == f"scorer version changed to {current_version(TASK)}"
    (failed,) = _wait_rescores(live, broken)
    assert failed.status == RescoreStatus.failed
    assert failed.error.startswith(f"scoring {TASK}, phase ") and "Traceback" in failed.error
    after = live.row(broken)
    # (its statistics may be recomputed with the board's; its score is not)
    assert (after.result["metrics"], after.scorer_version, after.arrays_path) == (
        old_broken["metrics"], "old-0", before.arrays_path)
    # The team reads why; the trace is the admin's.
    token = _token(live, team)
    team_auth = {"Authorization": f"Bearer {token}"}
    admin_auth = {"Authorization": f"Bearer {ADMIN}"}
    with _api(live) as client:
        url = f"/api/v1/submissions/{broken}/history"
        (mine,) = client.get(url, headers=team_auth).json()
        (admins,) = client.get(url, headers=admin_auth).json()
        url = f"/api/v1/submissions/{raises}/log"
        team_log = client.get(url, headers=team_auth).json()
        admin_log = client.get(url, headers=admin_auth).json()
    assert mine["status"] == "failed" and mine["old"] is None and mine["new"] is None
    assert mine["error"].startswith(f"scoring {TASK}") and "Traceback" not in mine["error"]
    assert admins["error"].startswith(mine["error"]) and "Traceback" in admins["error"]
    assert team_log["trace"] is None and team_log["error"] == failed_run.error
    assert team_log["worker"]["attempt"] == 1
    assert admin_log["trace"] == failed_run.log["trace"]
    # Once per (submission, version): the failed one is not tried again and again.
    time.sleep(2)
    assert len(_rescores(live, broken)) == 1 and len(_rescores(live, good)) == 1
    with Session(live.engine) as session:
        actions = {(e.actor, e.action) for e in session.scalars(select(AuditEntry))}
    assert actions == {("sweeper", "rescore")}


def test_team_commands_revoke_rotate_list_and_audit(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    for key in [k for k in os.environ if k.startswith("VL12_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VL12_DATA_DIR", str(data))
    url = f"sqlite:///{data / 'vl12.db'}"
    data.mkdir()
    upgrade(url)
    engine = make_engine(url)
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    try:
        with Session(engine) as session:
            _, token = create_team(session, "esc\x1b[2Jape")
        listed = cli("team", "list")
        assert listed.exit_code == 0 and "esc\\x1b[2Jape" in listed.stdout
        assert "\x1b" not in listed.stdout
        revoked = cli("team", "revoke", "esc\x1b[2Jape")
        assert revoked.exit_code == 0 and "token revoked" in revoked.stdout
        twice = cli("team", "revoke", "esc\x1b[2Jape")
        assert twice.exit_code == 0 and "revoked already" in twice.stdout
        assert "revoked" in cli("team", "list").stdout
        rotated = cli("team", "rotate", "1")  # by id
        assert rotated.exit_code == 0 and "shown once" in rotated.stderr
        new_token = rotated.stdout.strip()
        assert len(new_token) >= 43 and new_token != token
        unknown = cli("team", "revoke", "nobody")
        assert unknown.exit_code == 1 and "no team named 'nobody'" in unknown.stderr
        assert cli("rescore").exit_code == 2  # name something
        audit = cli("audit")
        lines = audit.stdout.splitlines()
        assert audit.exit_code == 0 and len(lines) == 2
        assert "rotate token  team 1" in lines[0] and "revoke token  team 1" in lines[1]
        with Session(engine) as session:
            assert authenticate(session, token) is None
            assert authenticate(session, new_token) is not None
    finally:
        engine.dispose()


def test_rescore_transitions_are_guarded(live: Live, tiny_h5: Path) -> None:
    """In process, step by step: one pending re-score per submission, a claim once, a
    finish only by the attempt that owns the job, nothing written to a submission that is
    no longer scored."""
    state = WorkerState(live.settings)
    team = live.team("gamma")
    subs = [live.submit(team, TASK, _content(tiny_h5, 10 + i), send=False) for i in range(2)]
    assert [state.run(s) for s in subs] == [Outcome.SCORED] * 2
    with Session(live.engine, expire_on_commit=False) as session:
        row = session.get_one(Submission, subs[0])
        job, created = request_rescore(session, row, "tester", "because")
        same, again = request_rescore(session, row, "tester", "because")
        assert created and not again and same.id == job.id
        other, _ = request_rescore(session, session.get_one(Submission, subs[1]), "t", "r")
    rescorer = Rescorer(state)
    assert rescorer.claim(job.id) == 1 and rescorer.claim(job.id) is None
    # The sweeper takes the job back from a worker presumed dead; that worker's late
    # finish writes nothing, the next attempt's does.
    _, sub, bench = rescorer.load(job.id)
    late = state.score(sub, bench, 1, arrays_name="late.npz")
    later = live.settings.model_copy(update={"running_deadline_s": 0.0})
    swept = sweep_rescores(later, live.engine, lambda _id: None)
    assert swept.reset == [job.id]
    assert rescorer.finish(job, 1, late) == Outcome.LOST
    assert rescorer.run(job.id) == Outcome.SCORED
    (done,) = _rescores(live, subs[0])
    assert (done.status, done.attempts) == (RescoreStatus.done, 2)
    assert live.row(subs[0]).arrays_path == f"results/{subs[0]}/rescore-{job.id}-2.npz"
    # Cancelled after the claim: skipped, the submission untouched.
    assert rescorer.claim(other.id) == 1
    _, sub, bench = rescorer.load(other.id)
    values = state.score(sub, bench, 1, arrays_name="x.npz")
    with Session(live.engine) as session:
        session.execute(update(Submission).where(Submission.id == subs[1])
                        .values(status=Status.cancelled))
        session.commit()
    before = live.row(subs[1])
    assert rescorer.finish(other, 1, values) == Outcome.SKIPPED
    (skipped,) = _rescores(live, subs[1])
    assert skipped.status == RescoreStatus.skipped and "cancelled" in skipped.error
    after = live.row(subs[1])
    assert (after.result, after.arrays_path) == (before.result, before.arrays_path)


@pytest.mark.slow
def test_a_rescore_past_the_time_limit_fails_with_a_message(live: Live, tiny_h5: Path) -> None:
    sub_id = live.submit(live.team("delta"), TASK, _content(tiny_h5, 20), send=False)
    assert WorkerState(live.settings).run(sub_id) == Outcome.SCORED
    before = live.row(sub_id)
    with Session(live.engine, expire_on_commit=False) as session:
        job, _ = request_rescore(session, session.get_one(Submission, sub_id), "t", "slow")
    hold = live.data_dir / "hold-dir"
    hold.mkdir()
    (hold / "hold").touch()  # the re-score never ends by itself
    live.start("worker", "--pool", "prefork",
               env={"VL12_TEST_HOLD_DIR": str(hold), "VL12_SCORE_TIME_LIMIT_S": "1.5"})
    make_celery(live.settings).send_task(RESCORE_TASK, args=[job.id])
    (failed,) = _wait_rescores(live, sub_id)
    assert failed.status == RescoreStatus.failed
    assert failed.error.startswith(
        f"scoring {TASK}, phase {before.phase} failed: time limit of 1.5 s exceeded "
        "(VL12_SCORE_TIME_LIMIT_S); stopped"
    )
    after = live.row(sub_id)
    assert (after.result, after.arrays_path) == (before.result, before.arrays_path)
