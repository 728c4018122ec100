"""The HTML pages through httpx (FastAPI's TestClient): every route, escaping of user
strings, private entries, CSRF on every form, the ranking of the API, the upload form with
the validator's report, and the benchmark export. Scored rows are written as a worker
writes them (no worker runs here)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evalserver.db.models import BenchmarkVersion, Status, Submission, Team
from evalserver.pages.routes import CSRF_COOKIE, TOKEN_COOKIE
from evalserver.teams import create_team
from tests.evalserver.server.api_support import (
    ADMIN_TOKEN,
    TASK,
    Server,
    running_server,
    submission,
    validation_pool,
)
from unify import tasks

__all__ = ["validation_pool"]  # a fixture used here

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def server(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> Iterator[Server]:
    with running_server("sqlite", tmp_path / "data", tiny_h5, validation_pool) as running:
        yield running


def board_tasks(server: Server) -> list[str]:
    """The tasks of the loaded sample that have their default phase loaded."""
    with server.sessions() as session:
        bench = session.query(BenchmarkVersion).one()
        loaded = {(p.task, p.phase) for p in bench.phases}
    return [n for n in tasks.task_names() if (n, tasks.get(n).default_phase) in loaded]


SECOND = iter(range(1, 100_000))


def add_scored(
    server: Server,
    team: str,
    task: str,
    value: float,
    *,
    method: str = "m",
    public: bool = True,
    baseline: bool = False,
    stats: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """A scored row as the worker leaves it (file fields are not read by the pages)."""
    spec = tasks.get(task)
    with server.sessions() as session:
        team_row = session.query(Team).filter_by(name=team).one()
        bench = session.query(BenchmarkVersion).one()
        n = next(SECOND)
        sid = f"{n:032x}"
        result: dict[str, Any] = {
            "metrics": {spec.primary: value},
            "details": details or {},
            "primary": spec.primary,
        }
        if stats is not None:
            result["stats"] = stats
        session.add(
            Submission(
                id=sid,
                team_id=team_row.id,
                benchmark_id=bench.id,
                task=task,
                phase=spec.default_phase,
                file_path=f"uploads/{sid}/upload",
                file_sha256=f"{n:064x}",
                file_size=1,
                method_name=method,
                is_public=public,
                is_baseline=baseline,
                status=Status.scored,
                created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
                result=result,
                scorer_name=spec.metric,
                scorer_version="1",
            )
        )
        session.commit()
    return sid


def page(server: Server, path: str, who: str | None = None, **params: Any) -> Any:
    server.client.cookies.clear()
    if who is not None:
        token = ADMIN_TOKEN if who == "admin" else server.tokens[who]
        server.client.cookies.set(TOKEN_COOKIE, token)
    return server.client.get(path, params=params)


def csrf_of(server: Server, path: str = "/signin") -> str:
    """Load a page: the CSRF cookie arrives and the form carries the same value."""
    server.client.cookies.clear()
    response = server.client.get(path)
    match = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert match, response.text
    assert server.client.cookies[CSRF_COOKIE] == match.group(1)
    return match.group(1)


def sign_in(server: Server, who: str) -> None:
    token = ADMIN_TOKEN if who == "admin" else server.tokens[who]
    csrf = csrf_of(server)
    response = server.client.post(
        "/signin", data={"token": token, "csrf": csrf}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def bench_path(server: Server) -> str:
    with server.sessions() as session:
        bench = session.query(BenchmarkVersion).one()
        return f"/b/{bench.name}/{bench.version}"


def row_order(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [
        re.sub(r"<[^>]+>", "", cells[1]).split()[0] + "/" + re.sub(r"<[^>]+>", "", cells[2])
        for cells in (
            re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1], re.S)
        )
        if len(cells) > 3
    ]


# --------------------------------------------------------------------------- pages


def test_home_lists_benchmarks_tasks_and_entries(server: Server) -> None:
    names = board_tasks(server)
    add_scored(server, "alpha", names[0], 50.0)
    response = page(server, "/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "tiny v1" in response.text
    for name in names:
        assert tasks.get(name).title in response.text
    assert "1 scored entries" in response.text
    assert len(response.content) < 100_000
    assert "http://" not in response.text and "https://" not in response.text  # no assets
    assert "<script" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_benchmark_board_averages_missing_and_sort(server: Server) -> None:
    names = board_tasks(server)
    assert len(names) >= 2
    for i, name in enumerate(names):
        add_scored(server, "alpha", name, 40.0 + i, method="full")
        add_scored(server, "alpha", name, 60.0 - i, method="other")
    add_scored(server, "beta", names[0], 99.0, method="one")
    response = page(server, bench_path(server))
    assert response.status_code == 200
    html = response.text
    order = row_order(html, "multi")
    # Complete rows first (by average), the partial row last despite its 99.
    assert order[-1] == "beta/one"
    full = sum(40.0 + i for i in range(len(names))) / len(names)
    other = sum(60.0 - i for i in range(len(names))) / len(names)
    best_first = ["alpha/other", "alpha/full"] if other > full else ["alpha/full", "alpha/other"]
    assert order[:2] == best_first
    assert f"{full:.2f}" in html and "99.00*" in html and "—" in html
    # Group averages: one column per TaskSpec group present.
    for group in {tasks.get(n).group for n in names}:
        assert f'sort=group%3A{group}' in html
    # Sort by the first task, ascending then descending (the partial row stays last).
    first = names[0]
    asc = row_order(page(server, bench_path(server), sort=first, dir="asc").text, "multi")
    desc = row_order(page(server, bench_path(server), sort=first, dir="desc").text, "multi")
    higher = tasks.get(first).column(tasks.get(first).primary).higher_is_better
    assert asc[:2] == (["alpha/full", "alpha/other"] if higher else ["alpha/other", "alpha/full"])
    assert desc[:2] == asc[:2][::-1]
    assert asc[-1] == desc[-1] == "beta/one"
    # A long board shows its first rows and a link to all of them.
    short = page(server, bench_path(server), limit=1).text
    assert row_order(short, "multi") == order[:1] and "Show all 3 rows" in short
    # An unknown sort key falls back to the average.
    assert row_order(page(server, bench_path(server), sort="<x>").text, "multi") == order


def test_task_board_interval_chart_breakdown_and_api_ranking(server: Server) -> None:
    stats = {"half_width": 0.2, "low": 67.2, "high": 67.6, "p_value": 1.0}
    add_scored(server, "alpha", TASK, 67.4, method="a", stats=stats,
               details={"per_type": {"yes/no": 81.5}})
    add_scored(server, "beta", TASK, 50.0, method="b", baseline=True)
    add_scored(server, "beta", TASK, 67.4, method="tie")  # later: ranks after alpha's 67.4
    path = f"{bench_path(server)}/{TASK}"
    html = page(server, path).text
    assert "67.40 ± 0.20" in html
    assert "<svg" in html and "<circle" in html
    assert "baseline" in html
    assert "81.5" not in html
    assert "81.5" in page(server, path, breakdown="true").text
    spec = tasks.get(TASK)
    for column in spec.columns:
        assert column.name in html
    ours = row_order(html, "board")
    api = server.client.get(f"/api/v1/leaderboards/{TASK}").json()["rows"]
    assert ours == [f"{r['team']}/{r['method_name']}" for r in api]
    assert ours == ["alpha/a", "beta/tie", "beta/b"]


def test_every_user_string_is_escaped(server: Server) -> None:
    with server.sessions() as session:
        create_team(session, HOSTILE)
    sid = add_scored(server, HOSTILE, TASK, 10.0, method='<img src=x onerror="y">')
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.description = HOSTILE
        row.error = HOSTILE
        session.commit()
    checks = ["/", bench_path(server), f"{bench_path(server)}/{TASK}"]
    for path in checks:
        html = page(server, path, who="admin").text
        assert "<script>" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;" in html or path == "/", path
    html = page(server, f"/s/{sid}", who="admin").text
    assert "<script>" not in html and "&lt;script&gt;alert" in html
    missing = page(server, "/b/<b onmouseover=x>/1")
    assert missing.status_code == 404 and "&lt;b onmouseover=x&gt;" in missing.text


def test_private_entries_only_for_their_team_and_admin(server: Server) -> None:
    add_scored(server, "alpha", TASK, 30.0, method="open")
    sid = add_scored(server, "beta", TASK, 90.0, method="secret", public=False)
    paths = [bench_path(server), f"{bench_path(server)}/{TASK}", "/b/tiny/1/export/json",
             "/b/tiny/1/export/csv"]
    for path in paths:
        for who in (None, "alpha"):
            assert "secret" not in page(server, path, who=who).text, (path, who)
        for who in ("beta", "admin"):
            assert "secret" in page(server, path, who=who).text, (path, who)
    # Without the private entry, alpha ranks first for the others.
    assert row_order(page(server, f"{bench_path(server)}/{TASK}").text, "board") == ["alpha/open"]
    assert page(server, f"/s/{sid}", who="alpha").status_code == 404
    assert page(server, f"/s/{sid}").status_code == 404
    assert page(server, f"/s/{sid}", who="beta").status_code == 200


def test_submission_page_refreshes_until_final(server: Server) -> None:
    sid = add_scored(server, "alpha", TASK, 67.4, stats={"half_width": 0.2, "low": 67.2,
                                                        "high": 67.6})
    with server.sessions() as session:
        session.get(Submission, sid).status = Status.queued
        session.commit()
    html = page(server, f"/s/{sid}", who="alpha").text
    # A script follows it; without scripts, the page reloads itself.
    assert '<script src="/static/live.js" defer></script>' in html
    assert f'data-poll="/s/{sid}/status"' in html and ">queued<" in html
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
    assert html.count('http-equiv="refresh"') == 1
    with server.sessions() as session:
        session.get(Submission, sid).status = Status.scored
        session.commit()
    html = page(server, f"/s/{sid}", who="alpha").text
    assert 'http-equiv="refresh"' not in html and "<script" not in html and ">scored<" in html
    assert "data-poll" not in html
    assert "67.40 ± 0.20" in html and "67.20–67.60" in html
    assert "scorer" in html.lower()


def test_submission_status_is_the_page_part_under_the_page_rules(server: Server) -> None:
    sid = add_scored(server, "alpha", TASK, 67.4)
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.status, result, row.result = Status.queued, row.result, None
        scorer, row.scorer_name, row.scorer_version = row.scorer_name, None, None
        row.method_name = HOSTILE
        session.commit()
    path = f"/s/{sid}/status"
    for who in (None, "beta"):  # the page's rules: not yours is "no such submission"
        response = page(server, path, who=who)
        assert response.status_code == 404 and sid in response.json()["detail"]
    response = page(server, path, who="alpha")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    state = response.json()
    assert state == {"status": "queued", "final": False, "settled": False, "scorer": "—",
                     "html": state["html"]}
    assert "Metrics" not in state["html"]
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.status, row.result = Status.scored, result
        row.scorer_name, row.scorer_version = scorer, "1"
        session.commit()
    state = page(server, path, who="admin").json()
    # Scored, but the statistics are still to come: not settled, the script polls on.
    assert state["status"] == "scored" and state["final"] and not state["settled"]
    assert 'id="metrics"' in state["html"] and "67.40" in state["html"]
    assert state["scorer"] == f"{tasks.get(TASK).metric} 1"
    page_html = page(server, f"/s/{sid}", who="alpha").text
    assert "data-poll" in page_html  # the page too waits for the statistics
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.result = {**result, "stats": {"half_width": 0.2, "low": 67.2, "high": 67.6}}
        row.error = HOSTILE
        session.commit()
    state = page(server, path, who="alpha").json()
    assert state["settled"] and "67.40 ± 0.20" in state["html"]
    # The same template part as the page, escaped the same way.
    assert "<script>" not in state["html"] and "&lt;script&gt;" in state["html"]
    page_html = page(server, f"/s/{sid}", who="alpha").text
    assert state["html"] in page_html and "data-poll" not in page_html


def test_failed_submission_is_settled_without_statistics(server: Server) -> None:
    sid = add_scored(server, "alpha", TASK, 1.0)
    with server.sessions() as session:
        row = session.get(Submission, sid)
        row.status, row.result, row.error = Status.failed, None, "the scorer stopped"
        session.commit()
    state = page(server, f"/s/{sid}/status", who="alpha").json()
    assert state["final"] and state["settled"] and "the scorer stopped" in state["html"]


def test_the_pages_script_is_served_same_origin_and_allowed_by_the_policy(
    server: Server,
) -> None:
    response = page(server, "/static/live.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["x-content-type-options"] == "nosniff"
    script = response.text
    assert "http://" not in script and "https://" not in script  # nothing external
    assert "eval(" not in script and "document.write" not in script
    policy = page(server, "/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "default-src 'none'" in policy and "'unsafe-eval'" not in policy
    assert "script-src 'self' 'unsafe-inline'" not in policy


def test_unknown_pages_are_404(server: Server) -> None:
    assert page(server, "/b/nope/1").status_code == 404
    assert page(server, f"{bench_path(server)}/nosuchtask").status_code == 404
    assert page(server, f"{bench_path(server)}/{TASK}", phase="nophase").status_code == 404
    assert page(server, "/s/" + "0" * 32, who="admin").status_code == 404
    assert page(server, "/b/tiny/1/export/xml").status_code == 404


# --------------------------------------------------------------------------- sign-in, CSRF


def test_sign_in_sets_an_httponly_samesite_cookie(server: Server) -> None:
    csrf = csrf_of(server)
    response = server.client.post(
        "/signin", data={"token": server.tokens["alpha"], "csrf": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if TOKEN_COOKIE in h)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "signed in as <b>alpha</b>" in server.client.get("/").text
    bad = server.client.post("/signin", data={"token": "wrong", "csrf": csrf})
    assert bad.status_code == 401 and "unknown or revoked token" in bad.text


def test_every_form_needs_its_csrf_token(server: Server) -> None:
    csrf = csrf_of(server)
    token = server.tokens["alpha"]
    for sent in ({}, {"csrf": "x" * 43}):
        response = server.client.post("/signin", data={"token": token, **sent})
        assert response.status_code == 403, sent
    # A forged request from elsewhere: the right field but no cookie.
    server.client.cookies.clear()
    assert server.client.post("/signin", data={"token": token, "csrf": csrf}).status_code == 403
    sign_in(server, "alpha")
    for sent in ({}, {"csrf": "y" * 43}):
        assert server.client.post("/signout", data=sent).status_code == 403
        response = server.client.post(
            "/upload",
            data={"task": TASK, **sent},
            files={"file": ("p.json", submission(server.gt_path, 1), "application/json")},
        )
        assert response.status_code == 403, sent
    csrf = server.client.cookies[CSRF_COOKIE]
    out = server.client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303


def test_upload_form_queues_or_shows_the_whole_report(server: Server) -> None:
    # Anonymous: no upload.
    csrf = csrf_of(server, "/upload")
    files = {"file": ("p.json", submission(server.gt_path, 7), "application/json")}
    assert server.client.post("/upload", data={"task": TASK, "csrf": csrf},
                              files=files).status_code == 401
    sign_in(server, "alpha")
    csrf = server.client.cookies[CSRF_COOKIE]
    response = server.client.post(
        "/upload",
        data={"task": TASK, "csrf": csrf, "method_name": HOSTILE, "phase": ""},
        files=files,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    sid = response.headers["location"].removeprefix("/s/")
    with server.sessions() as session:
        row = session.get(Submission, sid)
        assert row.status == Status.queued and row.method_name == HOSTILE
        assert row.is_public is False  # the checkbox was not sent
    assert len(server.sent()) == 1
    html = server.client.get(f"/s/{sid}").text
    assert ">queued<" in html and "&lt;script&gt;" in html
    # A bad file: the validator's report, every problem listed, escaped, nothing stored.
    bad = json.loads(submission(server.gt_path, 8))
    entries = bad if isinstance(bad, list) else next(iter(bad.values()))
    del entries[:2]
    response = server.client.post(
        "/upload",
        data={"task": TASK, "csrf": csrf, "public": "true"},
        files={"file": (HOSTILE, json.dumps(bad).encode(), "application/json")},
    )
    assert response.status_code == 422, response.text
    assert 'id="report"' in response.text and "problem" in response.text
    assert "<script>" not in response.text
    with server.sessions() as session:
        assert session.query(Submission).count() == 1


# --------------------------------------------------------------------------- export


def test_export_json_and_csv_carry_the_numbers(server: Server) -> None:
    names = board_tasks(server)
    add_scored(server, "alpha", names[0], 55.5, stats={"half_width": 0.3, "p_value": 0.5})
    add_scored(server, "beta", names[0], 44.0)
    data = page(server, "/b/tiny/1/export/json").json()
    first = [r for r in data["boards"] if r["task"] == names[0]]
    assert [r["team"] for r in first] == ["alpha", "beta"]
    assert first[0]["stats"]["half_width"] == 0.3
    assert data["multi_task"][0]["tasks"][names[0]] == 55.5
    rows = list(csv.DictReader(io.StringIO(page(server, "/b/tiny/1/export/csv").text)))
    primary = [r for r in rows if r["task"] == names[0] and r["half_width"]]
    assert primary[0]["value"] == "55.5" and primary[0]["p_value"] == "0.5"


def test_a_bundle_submits_one_file_per_task_and_reports_each(server: Server) -> None:
    from evalserver.metrics import load_groundtruth
    from evalserver.metrics.chance import chance_submission

    other = "nlvr2"
    other_phase = tasks.get(other).default_phase
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"preds/{TASK}.{tasks.get(TASK).default_phase}.json",
                         submission(server.gt_path, 31))
        archive.writestr(f"preds/{other}.{other_phase}.csv",
                         chance_submission(load_groundtruth(server.gt_path, other), 1))
        archive.writestr("preds/notatask.x.json", b"{}")
        archive.writestr(f"preds/{other}.dev.csv", b"garbage,<b>\n")
    sign_in(server, "alpha")
    csrf = server.client.cookies[CSRF_COOKIE]
    response = server.client.post(
        "/upload",
        data={"csrf": csrf, "bundle": "true", "task": TASK, "method_name": "bundle"},
        files={"file": ("preds.zip", buffer.getvalue(), "application/zip")},
    )
    assert response.status_code == 422, response.text
    listing = response.text.split('id="bundle"', 1)[1].split("</ul>", 1)[0]
    assert listing.count("queued") == 2
    assert "notatask.x.json: " in listing and "not named TASK.PHASE.EXT" in listing
    assert "problem(s) for nlvr2, phase dev" in listing and "<b>" not in listing
    with server.sessions() as session:
        rows = session.query(Submission).all()
        assert sorted((r.task, r.phase) for r in rows) == sorted(
            [(TASK, tasks.get(TASK).default_phase), (other, other_phase)]
        )
        assert {r.method_name for r in rows} == {"bundle"}
    assert len(server.sent()) == 2
    # Not a zip: one clear message.
    response = server.client.post(
        "/upload", data={"csrf": csrf, "bundle": "true"},
        files={"file": ("x.zip", b"not a zip", "application/zip")},
    )
    assert response.status_code == 400 and "must be a .zip" in response.text


def test_a_visibility_change_asks_a_worker_for_the_board_statistics(server: Server) -> None:
    from evalserver.worker.celery_app import STATS_TASK

    sid = add_scored(server, "alpha", TASK, 50.0)
    server.sent()
    response = server.client.patch(
        f"/api/v1/submissions/{sid}", headers=server.auth("alpha"), json={"public": False}
    )
    assert response.status_code == 200, response.text
    sent = server.sent()
    assert [(m["headers"]["task"], m["body"][0]) for m in sent] == [(STATS_TASK, [sid])]
    # No change of visibility: nothing to recompute.
    server.client.patch(
        f"/api/v1/submissions/{sid}", headers=server.auth("alpha"), json={"public": False}
    )
    assert server.sent() == []
