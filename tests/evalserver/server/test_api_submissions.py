"""Creating, getting and listing submissions through the API, on SQLite and on PostgreSQL.

No worker runs: a created submission must be a committed ``queued`` row whose validated form
is saved, and exactly one message naming its id must have reached the broker after the
commit. A rejected or too large file leaves no row and no file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evalserver.db.models import Status, Submission
from evalserver.metrics import load_validated
from evalserver.worker.celery_app import SCORE_TASK
from tests.evalserver.server.api_support import (
    TASK,
    Server,
    running_server,
    submission,
    validation_pool,
)
from unify import tasks

__all__ = ["validation_pool"]  # a fixture used here

DEFAULT_PHASE = tasks.get(TASK).default_phase


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tiny_h5: Path,
    validation_pool: ProcessPoolExecutor,
) -> Iterator[Server]:
    with running_server(request.param, tmp_path / "data", tiny_h5, validation_pool) as running:
        yield running


def _rows(server: Server) -> list[Submission]:
    with server.sessions() as session:
        return list(session.scalars(select(Submission)))


def _uploads(server: Server) -> list[Path]:
    root = server.settings.uploads_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_valid_file_is_stored_validated_committed_then_enqueued(server: Server) -> None:
    content = submission(server.gt_path, seed=1)
    response = server.submit(
        "alpha", content, method_name="uniform", description="a guess", paper_url="http://p"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["task"] == TASK and body["phase"] == DEFAULT_PHASE
    assert body["benchmark"]["name"] == "tiny" and body["benchmark"]["version"] == 1
    assert body["file_sha256"] == hashlib.sha256(content).hexdigest()
    assert body["file_size"] == len(content)
    assert body["duplicate"] is False and body["metrics"] is None
    assert body["method_name"] == "uniform" and body["paper_url"] == "http://p"
    assert body["team"] == "alpha"

    # Times carry their UTC offset on every database (SQLite keeps none).
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(0)
    [row] = _rows(server)
    assert row.id == body["id"] and row.status == Status.queued and row.attempts == 0
    assert row.created_at.tzinfo is not None
    data = server.settings.data_dir
    stored = data / row.file_path
    assert stored.read_bytes() == content
    assert stored.name == "upload"  # server-made, not "predictions.json"
    assert row.original_name == "predictions.json"
    validated = load_validated(data / row.validated_path)
    assert validated.ok and validated.task == TASK and validated.phase == DEFAULT_PHASE

    [message] = server.sent()
    assert message["headers"]["task"] == SCORE_TASK
    assert message["body"][0] == [row.id]


def test_the_same_file_again_returns_the_existing_submission(server: Server) -> None:
    content = submission(server.gt_path, seed=2)
    first = server.submit("alpha", content)
    again = server.submit("alpha", content, method_name="renamed")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert len(_rows(server)) == 1
    assert len(server.sent()) == 1  # the duplicate is not queued again
    assert len(_uploads(server)) == 2  # upload + validated form, once

    other_team = server.submit("beta", content)  # another team: its own submission
    assert other_team.status_code == 201 and other_team.json()["id"] != first.json()["id"]


def test_gzip_is_accepted_and_stored_under_a_gz_name(server: Server) -> None:
    content = gzip.compress(submission(server.gt_path, seed=3))
    response = server.submit("alpha", content, name="../../evil.json.gz")
    assert response.status_code == 201, response.text
    [row] = _rows(server)
    assert Path(row.file_path).name == "upload.gz"
    assert Path(row.file_path).parent.name == row.id
    assert row.file_sha256 == hashlib.sha256(content).hexdigest()


def test_a_bad_file_is_answered_422_with_the_whole_report_and_not_stored(
    server: Server,
) -> None:
    response = server.submit("alpha", b'[{"question_id": 1, "answer": 3}, {"nope": 1}]')
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["total"] >= 2 and len(detail["problems"]) >= 2
    assert f"{TASK}, phase {DEFAULT_PHASE}" in detail["message"]
    assert all(p["text"] for p in detail["problems"])
    assert _rows(server) == [] and _uploads(server) == [] and server.sent() == []


def test_an_empty_file_is_rejected_with_a_message(server: Server) -> None:
    response = server.submit("alpha", b"")
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]["problems"][0]["text"]
    assert _rows(server) == []


def test_tokens_are_required_and_the_admin_cannot_submit(server: Server) -> None:
    content = submission(server.gt_path, seed=4)
    files = {"file": ("p.json", content)}
    anonymous = server.client.post("/api/v1/submissions", files=files, data={"task": TASK})
    assert anonymous.status_code == 401
    wrong = server.client.post(
        "/api/v1/submissions",
        files=files,
        data={"task": TASK},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert wrong.status_code == 401
    admin = server.submit("admin", content)
    assert admin.status_code == 403 and "team create" in admin.json()["detail"]
    assert _rows(server) == []


def test_an_unknown_task_or_an_unloaded_phase_is_404(server: Server) -> None:
    content = submission(server.gt_path, seed=5)
    unknown = server.submit("alpha", content, task="nope")
    assert unknown.status_code == 404 and "unknown task 'nope'" in unknown.json()["detail"]
    # A hidden split without answers in the sample: not a leaderboard of this server.
    unloaded = server.submit("alpha", content, phase="test")
    assert unloaded.status_code == 404 and f"{TASK}, phase test" in unloaded.json()["detail"]
    assert _rows(server) == [] and _uploads(server) == []


def test_get_is_for_the_team_and_the_admin_and_lists_are_per_team(server: Server) -> None:
    mine = server.submit("alpha", submission(server.gt_path, seed=6), method_name="a").json()
    theirs = server.submit("beta", submission(server.gt_path, seed=7), method_name="b").json()
    get = server.client.get
    own = get(f"/api/v1/submissions/{mine['id']}", headers=server.auth("alpha"))
    assert own.status_code == 200 and own.json()["id"] == mine["id"]
    # Another team's id and an unknown id get the same 404.
    hidden = get(f"/api/v1/submissions/{theirs['id']}", headers=server.auth("alpha"))
    missing = get("/api/v1/submissions/0123456789abcdef", headers=server.auth("alpha"))
    assert hidden.status_code == missing.status_code == 404
    assert get(f"/api/v1/submissions/{theirs['id']}").status_code == 404  # anonymous
    admin = get(f"/api/v1/submissions/{theirs['id']}", headers=server.auth("admin"))
    assert admin.status_code == 200 and admin.json()["team"] == "beta"

    listed = get("/api/v1/submissions", headers=server.auth("alpha")).json()
    assert [s["id"] for s in listed] == [mine["id"]]
    scored = get("/api/v1/submissions", params={"status": "scored"}, headers=server.auth("alpha"))
    assert scored.json() == []


def test_a_scored_row_shows_its_metrics_and_a_failed_one_its_error(server: Server) -> None:
    created = server.submit("alpha", submission(server.gt_path, seed=8)).json()
    with server.sessions() as session:
        row = session.get(Submission, created["id"])
        row.status, row.attempts = Status.scored, 1
        row.result = {"metrics": {"overall": 12.5}, "primary": "overall"}
        row.scorer_name, row.scorer_version = "vqa", "1.0"
        session.commit()
    body = server.client.get(
        f"/api/v1/submissions/{created['id']}", headers=server.auth("alpha")
    ).json()
    assert body["status"] == "scored" and body["metrics"] == {"overall": 12.5}
    assert (body["scorer_name"], body["scorer_version"], body["attempts"]) == ("vqa", "1.0", 1)


def test_an_upload_past_the_limit_is_413_and_leaves_nothing(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, max_upload_bytes=1000
    ) as server:
        # Past the limit but within the form's allowance: counted while copying.
        response = server.submit("alpha", b"[" + b" " * 5000 + b"]")
        assert response.status_code == 413 and "limit" in response.json()["detail"]
        # Far past it: refused by Content-Length before the body is read.
        response = server.submit("alpha", b" " * (3 << 20))
        assert response.status_code == 413
        assert _rows(server) == [] and _uploads(server) == []


def test_a_broker_that_is_down_does_not_fail_the_upload(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    # Nothing listens on port 9 (discard) here: the broker is down.
    with running_server(
        "sqlite",
        tmp_path / "data",
        tiny_h5,
        validation_pool,
        broker_url="redis://127.0.0.1:9/0",
    ) as server:
        response = server.submit("alpha", submission(server.gt_path, seed=9))
        assert response.status_code == 201, response.text
        [row] = _rows(server)
        assert row.status == Status.queued  # the sweeper will send it
        with server.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Submission)) == 1


def test_the_same_file_sent_twice_at_once_makes_one_submission(server: Server) -> None:
    content = submission(server.gt_path, seed=10)
    with ThreadPoolExecutor(max_workers=2) as threads:
        answers = list(threads.map(lambda _: server.submit("alpha", content), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    [row] = _rows(server)
    assert len(server.sent()) == 1
    # The loser's files were removed; the winner's are whole.
    assert {p.parent.name for p in _uploads(server)} == {row.id}


def test_a_dead_validation_process_is_503_and_the_next_upload_gets_a_new_one(
    tmp_path: Path, tiny_h5: Path
) -> None:
    from evalserver.app.deps import Services

    data = tmp_path / "data"
    with running_server("sqlite", data, tiny_h5, None, validation_processes=1) as server:
        services: Services = server.client.app.state.services
        assert server.submit("alpha", submission(server.gt_path, seed=11)).status_code == 201
        pool = services.pool
        [pid] = list(pool._processes)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
        answer = server.submit("alpha", submission(server.gt_path, seed=12))
        assert answer.status_code == 503 and "nothing was stored" in answer.json()["detail"]
        assert len(_rows(server)) == 1
        again = server.submit("alpha", submission(server.gt_path, seed=12))
        assert again.status_code == 201, again.text
        assert services.pool is not pool


def test_a_benchmark_file_gone_from_the_data_dir_is_503_without_its_path(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server("sqlite", tmp_path / "data", tiny_h5, validation_pool) as server:
        [copy] = (server.settings.data_dir / "benchmarks").glob("*.h5")
        copy.rename(copy.with_suffix(".moved"))
        answer = server.submit("alpha", submission(server.gt_path, seed=13))
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert "cannot be read on this server" in detail and str(copy) not in detail
        assert _rows(server) == [] and _uploads(server) == []


def test_cancel_stops_a_queued_or_running_submission_once(server: Server) -> None:
    queued = server.submit("alpha", submission(server.gt_path, seed=14)).json()["id"]
    running = server.submit("alpha", submission(server.gt_path, seed=15)).json()["id"]
    with server.sessions() as session:
        session.get(Submission, running).status = Status.running
        session.commit()
    post = server.client.post
    theirs = post(f"/api/v1/submissions/{queued}/cancel", headers=server.auth("beta"))
    assert theirs.status_code == 404
    for sid in (queued, running):
        answer = post(f"/api/v1/submissions/{sid}/cancel", headers=server.auth("alpha"))
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        assert answer.json()["finished_at"] is not None
    again = post(f"/api/v1/submissions/{queued}/cancel", headers=server.auth("alpha"))
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert {r.status for r in _rows(server)} == {Status.cancelled}


def test_visibility_by_the_team_and_baselines_by_the_admin(server: Server) -> None:
    sid = server.submit("alpha", submission(server.gt_path, seed=16)).json()["id"]
    patch = server.client.patch
    url = f"/api/v1/submissions/{sid}"
    private = patch(url, json={"public": False}, headers=server.auth("alpha"))
    assert private.status_code == 200 and private.json()["public"] is False
    refused = patch(url, json={"baseline": True}, headers=server.auth("alpha"))
    assert refused.status_code == 403
    assert patch(url, json={"public": True}, headers=server.auth("beta")).status_code == 404
    marked = patch(url, json={"baseline": True}, headers=server.auth("admin"))
    assert marked.status_code == 200 and marked.json()["baseline"] is True
    [row] = _rows(server)
    assert row.is_baseline and not row.is_public


def test_a_body_that_is_not_the_form_is_400_or_422_and_leaves_nothing(server: Server) -> None:
    post = server.client.post
    url = "/api/v1/submissions"
    headers = server.auth("alpha")
    not_multipart = post(url, headers=headers, json={"task": TASK})
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()["detail"]
    no_file = post(url, headers=headers, files={"other": ("x", b"1")}, data={"task": TASK})
    assert no_file.status_code == 400
    no_file = post(url, headers=headers, data={"task": TASK}, files={"x": (None, "y")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["detail"]
    content = submission(server.gt_path, seed=17)
    no_task = post(url, headers=headers, files={"file": ("p.json", content)})
    assert no_task.status_code == 422
    assert no_task.json()["detail"][0]["loc"] == ["body", "task"]
    too_long = server.submit("alpha", content, method_name="m" * 201)
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"][-1] == (
        "method_name"
    )
    assert _rows(server) == [] and _uploads(server) == []
    # Nothing was left half-written in the uploads folder either.
    root = server.settings.uploads_dir
    assert not root.exists() or list(root.iterdir()) == []


def test_a_chunked_upload_past_the_limit_is_413_while_it_streams(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, max_upload_bytes=1000
    ) as server:
        boundary = "vl12boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\n{TASK}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="p.json"\r\n\r\n'
        ).encode()
        def body() -> Iterator[bytes]:  # no Content-Length: chunked
            yield head
            for _ in range(1000):
                yield b" " * 4096
            yield f"\r\n--{boundary}--\r\n".encode()

        response = server.client.post(
            "/api/v1/submissions",
            headers=server.auth("alpha")
            | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body(),
        )
        assert response.status_code == 413
        assert _rows(server) == [] and _uploads(server) == []


def test_public_false_makes_a_private_submission(server: Server) -> None:
    answer = server.submit("alpha", submission(server.gt_path, seed=18), public="false")
    assert answer.status_code == 201 and answer.json()["public"] is False
