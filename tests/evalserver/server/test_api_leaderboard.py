"""Leaderboards (JSON and CSV), benchmarks and health through the API, on SQLite and on
PostgreSQL. Rows are scored by writing what a worker writes (no worker runs here)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evalserver.benchmarks import load_benchmark
from evalserver.db.models import Status, Submission
from evalserver.db.session import make_engine, make_sessionmaker
from tests.evalserver.server.api_support import (
    TASK,
    Server,
    boards,
    rebuilt,
    running_server,
    submission,
    validation_pool,
)
from unify import tasks

__all__ = ["validation_pool"]  # a fixture used here


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tiny_h5: Path,
    validation_pool: ProcessPoolExecutor,
) -> Iterator[Server]:
    with running_server(request.param, tmp_path / "data", tiny_h5, validation_pool) as running:
        yield running


SEED = iter(range(100, 10_000))


def scored(
    server: Server,
    who: str,
    metrics: dict[str, Any],
    *,
    status: Status = Status.scored,
    **form: Any,
) -> str:
    """A submission through the API, then scored (or failed) as a worker would."""
    response = server.submit(who, submission(server.gt_path, seed=next(SEED)), **form)
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.status, row.attempts = status, 1
        if status == Status.scored:
            row.result = {"metrics": metrics, "primary": tasks.get(TASK).primary}
        else:
            row.error = "the scorer raised"
        session.commit()
    return sid


def board(server: Server, who: str | None = None, **params: Any) -> Any:
    headers = server.auth(who) if who else {}
    response = server.client.get(f"/api/v1/leaderboards/{TASK}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_ranking_privacy_and_failed_runs(server: Server) -> None:
    primary = tasks.get(TASK).primary
    others = [c.name for c in tasks.get(TASK).columns if c.name != primary]
    scored(server, "alpha", {primary: 40.0, others[0]: 1.0}, method_name="a1")
    best_alpha = scored(server, "alpha", {primary: 60.0}, method_name="a1")
    scored(server, "beta", {primary: 60.0, others[0]: 2.0}, method_name="b1")
    scored(server, "beta", {}, method_name="b-missing")  # primary absent: last
    scored(server, "beta", {primary: 99.0}, method_name="b-private", public="false")
    scored(server, "alpha", {}, method_name="a-failed", status=Status.failed)

    public = board(server).json()
    assert public["benchmark"]["name"] == "tiny"
    assert public["phase"] == tasks.get(TASK).default_phase
    assert public["columns"][0]["name"] == primary
    assert public["columns"][0]["primary"] is True
    rows = [(r["rank"], r["team"], r["method_name"]) for r in public["rows"]]
    # beta's 60 ties alpha's 60 on the primary and wins on the next column (alpha has none).
    assert rows == [(1, "beta", "b1"), (2, "alpha", "a1"), (3, "beta", "b-missing")]
    assert public["rows"][2]["metrics"][primary] is None
    assert all(r["submission_id"] is None for r in public["rows"])  # anonymous viewer

    as_beta = board(server, "beta").json()["rows"]
    assert as_beta[0]["method_name"] == "b-private" and as_beta[0]["public"] is False
    as_alpha = board(server, "alpha").json()["rows"]
    assert "b-private" not in [r["method_name"] for r in as_alpha]
    assert [r["submission_id"] for r in as_alpha if r["team"] == "alpha"] == [best_alpha]
    as_admin = board(server, "admin").json()["rows"]
    assert len(as_admin) == 4 and all(r["submission_id"] for r in as_admin)


def test_csv_export_has_the_columns_at_their_precision(server: Server) -> None:
    spec = tasks.get(TASK)
    scored(server, "alpha", {spec.primary: 61.23456}, method_name="m, with comma")
    text = board(server, format="csv").text
    table = list(csv.reader(io.StringIO(text)))
    header, *rows = table
    names = [spec.primary, *(c.name for c in spec.columns if c.name != spec.primary)]
    assert header == ["rank", "team", "method", *names, "baseline", "public", "submitted_at"]
    precision = spec.column(spec.primary).precision
    assert rows[0][:4] == ["1", "alpha", "m, with comma", f"{61.23456:.{precision}f}"]
    assert rows[0][4] == ""  # a missing column is empty, not 0 or nan


def test_an_unknown_board_is_404(server: Server) -> None:
    assert server.client.get("/api/v1/leaderboards/nope").status_code == 404
    missing = server.client.get(f"/api/v1/leaderboards/{TASK}", params={"phase": "test"})
    assert missing.status_code == 404
    other = server.client.get(f"/api/v1/leaderboards/{TASK}", params={"benchmark": "other"})
    assert other.status_code == 404


def test_benchmarks_list_tasks_phases_and_columns_never_files(server: Server) -> None:
    response = server.client.get("/api/v1/benchmarks")
    assert response.status_code == 200
    [bench] = response.json()
    assert (bench["name"], bench["version"]) == ("tiny", 1)
    listed = {(t["task"], p["phase"]) for t in bench["tasks"] for p in t["phases"]}
    assert listed == boards(server.sessions)
    vqa = next(t for t in bench["tasks"] if t["task"] == TASK)
    assert [p["phase"] for p in vqa["phases"] if p["default"]] == [tasks.get(TASK).default_phase]
    assert all(p["num_examples"] > 0 for t in bench["tasks"] for p in t["phases"])
    text = response.text
    assert ".h5" not in text and str(server.settings.data_dir) not in text


def test_no_route_serves_files_or_ground_truth(server: Server) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/v1/submissions",
        "/api/v1/submissions/{submission_id}",
        "/api/v1/submissions/{submission_id}/cancel",
        "/api/v1/submissions/{submission_id}/history",
        "/api/v1/submissions/{submission_id}/log",
        "/api/v1/submissions/{submission_id}/rescore",
        "/api/v1/admin/submissions",
        "/api/v1/admin/rescore",
        "/api/v1/admin/audit",
        "/api/v1/leaderboards/{task}",
        "/api/v1/benchmarks",
        "/api/v1/health",
    }
    # The upload is documented as a multipart form with the file and its metadata.
    upload = paths["/api/v1/submissions"]["post"]
    assert set(upload["responses"]) >= {"200", "201", "400", "404", "413", "422", "503"}
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"file", "task", "phase", "method_name", "public"} <= set(schema["properties"])
    assert schema["properties"]["file"]["format"] == "binary"
    assert {"file", "task"} <= set(schema["required"])
    # The data dir is not mounted anywhere.
    assert server.client.get("/benchmarks/").status_code == 404


def test_health_reports_database_broker_workers_and_queue(server: Server) -> None:
    scored(server, "alpha", {}, status=Status.failed)
    server.submit("alpha", submission(server.gt_path, seed=next(SEED)))  # stays queued
    body = server.client.get("/api/v1/health").json()
    assert body["database"]["ok"] is True and body["broker"]["ok"] is True
    # The in-memory broker can broadcast; no worker runs here, so none answers.
    assert body["workers"]["live"] == [] and body["workers"]["ok"] is False
    assert body["status"] == "degraded"
    assert body["queue"]["queued"] == 1 and body["queue"]["running"] == 0
    assert body["queue"]["oldest_queued_s"] >= 0


def test_health_names_workers_that_started_work_lately(server: Server) -> None:
    sid = scored(server, "alpha", {})
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.worker_host, row.started_at = "host-a:123", datetime.now(UTC)
        session.commit()
    body = server.client.get("/api/v1/health").json()
    assert body["workers"]["recent"] == ["host-a:123"]


def test_health_is_503_without_a_database(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server("sqlite", tmp_path / "data", tiny_h5, validation_pool) as server:
        services = server.client.app.state.services
        # The database server goes away: nothing listens on port 9 (discard).
        gone = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
        services.sessions = make_sessionmaker(gone)
        try:
            response = server.client.get("/api/v1/health")
        finally:
            gone.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["database"]["ok"] is False
    assert "OperationalError" in body["database"]["detail"]


def test_a_new_version_takes_new_submissions_and_old_results_keep_theirs(
    server: Server, tmp_path: Path
) -> None:
    primary = tasks.get(TASK).primary
    old = scored(server, "alpha", {primary: 10.0}, method_name="old")
    with server.sessions() as session:
        load_benchmark(
            session,
            server.settings.data_dir,
            rebuilt(server.gt_path, tmp_path / "v2.h5", hidden=(TASK, "minval")),
            "tiny",
        )
    new = scored(server, "alpha", {primary: 20.0}, method_name="new")
    get = server.client.get

    def version_of(sid: str) -> int:
        body = get(f"/api/v1/submissions/{sid}", headers=server.auth("alpha")).json()
        return body["benchmark"]["version"]

    assert (version_of(old), version_of(new)) == (1, 2)
    newest = board(server).json()
    assert newest["benchmark"]["version"] == 2 and newest["hidden"] is True
    assert [r["method_name"] for r in newest["rows"]] == ["new"]
    first = board(server, version=1).json()
    assert [r["method_name"] for r in first["rows"]] == ["old"] and first["hidden"] is False
    listed = get("/api/v1/benchmarks").json()
    assert [(b["name"], b["version"]) for b in listed] == [("tiny", 2), ("tiny", 1)]
