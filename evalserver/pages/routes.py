"""The HTML pages: benchmarks, a benchmark's 12-in-1 board, a task's board, a submission,
sign-in and the upload form; and the submission page's live part (``/s/ID/status``, polled
by the pages' one script, ``/static/live.js``, so the page follows its submission without
a reload).

Who is asking: a team signs in once with its token; the token then travels in an HttpOnly,
SameSite=Strict cookie (never readable by a script, never sent by another site). Every form
carries a CSRF token that must equal the ``vl12_csrf`` cookie (double submit), checked
before anything is read or changed. Jinja2 autoescaping escapes every user string (team and
method names, descriptions, the validator's report).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from evalserver.admin_token import is_admin
from evalserver.app.deps import DbSession, Services, Viewer, get_services
from evalserver.app.schemas import SubmissionForm
from evalserver.app.upload import BadForm, receive_form
from evalserver.csvexport import csv_text, text_cell
from evalserver.db.models import BenchmarkPhase, BenchmarkVersion, Status, Submission
from evalserver.pages.boards import (
    benchmark_board,
    sort_keys,
    stats_of,
    task_board,
)
from evalserver.pages.chart import chart
from evalserver.prediction_files import task_phase_of
from evalserver.submissions import StoredFile, TooLarge, new_upload_folder
from evalserver.teams import authenticate
from unify import tasks
from unify.tasks import GROUPS

__all__ = ["CSRF_COOKIE", "TOKEN_COOKIE", "router"]

TOKEN_COOKIE = "vl12_token"
CSRF_COOKIE = "vl12_csrf"
CSRF_FIELD = "csrf"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------- who asks
def page_viewer(request: Request, session: DbSession, services: Services) -> Viewer:
    """The signed-in team (or admin) from the cookie; a revoked or unknown token is
    anonymous (the page then offers sign-in again)."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return Viewer()
    team = authenticate(session, token)
    if team is not None:
        return Viewer(team=team)
    admin = is_admin(session, token, services.settings.admin_token)
    return Viewer(admin=True) if admin else Viewer()


def _viewer(
    request: Request, session: DbSession, services: Annotated[Services, Depends(get_services)]
) -> Viewer:
    return page_viewer(request, session, services)


PageViewer = Annotated[Viewer, Depends(_viewer)]


def _csrf(request: Request) -> str:
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if len(token) == 43 else ""


def check_csrf(request: Request, sent: str | None) -> None:
    cookie = _csrf(request)
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")


def render(
    request: Request, viewer: Viewer, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with a CSRF cookie set when the browser has none yet."""
    csrf = _csrf(request) or secrets.token_urlsafe(32)
    who = "admin" if viewer.admin else (viewer.team.name if viewer.team is not None else None)
    response = templates.TemplateResponse(
        request,
        name,
        {"who": who, "csrf": csrf, "fmt": fmt, "groups_names": GROUPS, **context},
        status_code=status_code,
    )
    if not _csrf(request):
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    return response


def fmt(value: float | None, precision: int) -> str:
    return "—" if value is None else f"{value:.{precision}f}"


# --------------------------------------------------------------------------- lookups
def _bench(session: DbSession, name: str, version: int) -> BenchmarkVersion:
    bench = session.scalars(
        select(BenchmarkVersion)
        .where(BenchmarkVersion.name == name, BenchmarkVersion.version == version)
        .options(selectinload(BenchmarkVersion.phases))
    ).first()
    if bench is None:
        raise HTTPException(404, f"no benchmark {name} version {version}")
    return bench


def _page_error(request: Request, viewer: Viewer, exc: HTTPException) -> HTMLResponse:
    return render(request, viewer, "error.html", exc.status_code, message=str(exc.detail))


# --------------------------------------------------------------------------- pages
@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DbSession, viewer: PageViewer) -> HTMLResponse:
    benches = list(
        session.scalars(
            select(BenchmarkVersion)
            .options(selectinload(BenchmarkVersion.phases))
            .order_by(BenchmarkVersion.id.desc())
        )
    )
    counts: dict[int, int] = {
        bench_id: count
        for bench_id, count in session.execute(
            select(Submission.benchmark_id, func.count())
            .where(Submission.status == Status.scored)
            .group_by(Submission.benchmark_id)
        )
    }
    listing = []
    for bench in benches:
        names = {p.task for p in bench.phases}
        listing.append(
            {
                "bench": bench,
                "tasks": [tasks.get(n) for n in tasks.task_names() if n in names],
                "entries": counts.get(bench.id, 0),
            }
        )
    return render(request, viewer, "home.html", benches=listing)


@router.get("/b/{name}/{version}", response_class=HTMLResponse)
def benchmark_page(
    request: Request,
    name: str,
    version: int,
    session: DbSession,
    viewer: PageViewer,
    sort: str = "average",
    dir: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 200,
) -> HTMLResponse:
    try:
        bench = _bench(session, name, version)
    except HTTPException as exc:
        return _page_error(request, viewer, exc)
    descending = None if dir not in ("asc", "desc") else dir == "desc"
    board = benchmark_board(session, viewer, bench, sort, descending)

    def link(key: str) -> str:
        flip = "asc" if board.sort == key and board.descending else "desc"
        return "?" + urlencode({"sort": key, "dir": flip})

    keys = sort_keys([s.name for s, _, _ in board.tasks], list(board.groups))
    more = urlencode({"sort": board.sort, "dir": "desc" if board.descending else "asc",
                      "limit": len(board.rows)})
    return render(
        request, viewer, "benchmark.html", board=board, links={k: link(k) for k in keys},
        limit=limit, more=more,
    )


@router.get("/b/{name}/{version}/{task}", response_class=HTMLResponse)
def task_page(
    request: Request,
    name: str,
    version: int,
    task: str,
    session: DbSession,
    viewer: PageViewer,
    phase: str | None = None,
    breakdown: bool = False,
) -> HTMLResponse:
    try:
        bench = _bench(session, name, version)
        if task not in tasks.task_names():
            raise HTTPException(404, f"no task {task}")
        spec = tasks.get(task)
        chosen = phase or spec.default_phase
        board = next(
            (p for p in bench.phases if p.task == task and p.phase == chosen), None
        )
        if board is None:
            raise HTTPException(404, f"{name} version {version} has no board {task}/{chosen}")
    except HTTPException as exc:
        return _page_error(request, viewer, exc)
    shown = task_board(session, viewer, board)
    primary = shown.columns[0]
    points = [
        (
            f"{r.entry.team} / {r.entry.method}",
            r.values[0],
            stats_of(r).get("half_width"),
            fmt(r.values[0], primary.precision),
        )
        for r in shown.rows
        if r.values[0] is not None
    ]
    phases = [p for p in bench.phases if p.task == task]
    return render(
        request,
        viewer,
        "task.html",
        bench=bench,
        shown=shown,
        phases=phases,
        breakdown=breakdown,
        chart=chart(points),
        stats_of=stats_of,
        owns=viewer.owns,
    )


#: Polls of /s/ID/status the page's script makes after its submission is final while it
#: waits for the statistics (the worker adds them just after scoring; a problem there only
#: logs, so they may never come).
STATS_POLLS = 30


def _submission_context(row: Submission, services: Services) -> dict[str, Any]:
    """What the submission page and its status endpoint render: the same template part,
    so the live update shows exactly what a reload would."""
    spec = tasks.get(row.task) if row.task in tasks.task_names() else None
    result = row.result or {}
    stats = result.get("stats") or {}
    # Settled: nothing more will change by itself (a scored row waits for its statistics).
    settled = row.status.final and (
        row.status != Status.scored or bool(stats) or services.settings.bootstrap_resamples == 0
    )
    return {
        "row": row,
        "spec": spec,
        "result": result,
        "stats": stats,
        "details_json": json.dumps(result.get("details") or {}, indent=1, sort_keys=True),
        "scorer": f"{row.scorer_name or '—'} {row.scorer_version or ''}".strip(),
        "settled": settled,
    }


def _own_submission(session: DbSession, viewer: Viewer, submission_id: str) -> Submission:
    row = session.get(Submission, submission_id)
    if row is None or not viewer.owns(row.team_id):
        # The same answer for "not yours" and "does not exist": ids do not leak.
        raise HTTPException(404, f"no submission {submission_id} for you")
    return row


@router.get("/s/{submission_id}", response_class=HTMLResponse)
def submission_page(
    request: Request,
    submission_id: str,
    session: DbSession,
    viewer: PageViewer,
    services: Annotated[Services, Depends(get_services)],
) -> HTMLResponse:
    try:
        row = _own_submission(session, viewer, submission_id)
    except HTTPException as exc:
        return _page_error(request, viewer, exc)
    context = _submission_context(row, services)
    return render(
        request,
        viewer,
        "submission.html",
        # Without scripts the page reloads itself until final (not for the statistics).
        refresh=not row.status.final,
        live=not context["settled"],
        stats_polls=STATS_POLLS,
        **context,
    )


@router.get("/s/{submission_id}/status")
def submission_status(
    request: Request,
    submission_id: str,
    session: DbSession,
    viewer: PageViewer,
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    """The submission page's changing part, for its script (/static/live.js): status,
    scorer, the result's HTML (the page's own template part) and whether it is settled.
    The page's rules: the signed-in team's (or the admin's) submissions only, 404 else."""
    try:
        row = _own_submission(session, viewer, submission_id)
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    context = _submission_context(row, services)
    html = templates.get_template("submission_result.html").render(fmt=fmt, **context)
    return JSONResponse(
        {
            "status": row.status.value,
            "final": row.status.final,
            "settled": context["settled"],
            "scorer": context["scorer"],
            "html": html,
        },
        headers={"Cache-Control": "no-store"},
    )


STATIC = Path(__file__).parent / "static"


@router.get("/static/live.js")
def live_script() -> Response:
    """The only script of the pages (same origin, so ``script-src 'self'`` admits it): the
    submission page follows its submission without reloading."""
    return Response(
        (STATIC / "live.js").read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------------- sign-in
@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, viewer: PageViewer) -> HTMLResponse:
    return render(request, viewer, "signin.html")


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    check_csrf(request, csrf)
    team = authenticate(session, token) if token else None
    viewer = (
        Viewer(team=team) if team is not None
        else Viewer(admin=True) if is_admin(session, token, services.settings.admin_token)
        else Viewer()
    )
    if not viewer.admin and viewer.team is None:
        return render(request, Viewer(), "signin.html", 401, error="unknown or revoked token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https", max_age=30 * 24 * 3600,
    )
    return response


@router.post("/signout")
def signout(
    request: Request, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    check_csrf(request, csrf)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- upload
def _upload_context(session: DbSession) -> dict[str, Any]:
    boards = session.scalars(
        select(BenchmarkPhase).join(BenchmarkVersion).order_by(BenchmarkVersion.id.desc())
    )
    choices: dict[str, list[str]] = {}
    for board in boards:
        choices.setdefault(board.task, [])
        if board.phase not in choices[board.task]:
            choices[board.task].append(board.phase)
    return {"choices": [(t, choices[t]) for t in tasks.task_names() if t in choices]}


@router.get("/upload", response_class=HTMLResponse)
def upload_page(request: Request, session: DbSession, viewer: PageViewer) -> HTMLResponse:
    return render(request, viewer, "upload.html", **_upload_context(session))


@router.post("/upload", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    """The form's upload: the same path as the API's (stream to the data dir, validate in
    the pool, commit, enqueue); a rejected file shows the validator's whole report. With
    ``bundle`` checked, the file is a zip of one prediction file per task."""
    from evalserver.app.routers.submissions import _create  # the API's blocking part

    viewer = await run_in_threadpool(page_viewer, request, session, services)
    if viewer.team is None:
        raise HTTPException(401, "sign in with a team's token first (/signin)")
    settings = services.settings
    submission_id, folder_rel = new_upload_folder(settings.data_dir)
    folder = settings.data_dir / folder_rel
    created = False
    context = _upload_context(session)
    try:
        received = await receive_form(request, folder / "upload.part", settings.max_upload_bytes)
        check_csrf(request, received.fields.get(CSRF_FIELD))
        if received.file is None or (received.file.size == 0 and not received.filename):
            return render(request, viewer, "upload.html", 400, error="choose a file", **context)
        fields = {k: v for k, v in received.fields.items() if v or k not in ("phase", "benchmark")}
        if fields.get("bundle"):
            return await _bundle(request, session, services, viewer, received.file, fields,
                                 context)
        fields["public"] = "true" if fields.get("public") else "false"
        try:
            form = SubmissionForm.model_validate(fields)
        except ValidationError as exc:
            return render(request, viewer, "upload.html", 400, error=str(exc), **context)
        try:
            out, created = await run_in_threadpool(
                _create, session, services, viewer.team, submission_id, received.file,
                received.filename, form,
            )
        except HTTPException as exc:
            if isinstance(exc.detail, dict):
                return render(
                    request, viewer, "upload.html", exc.status_code, report=exc.detail, **context
                )
            return render(
                request, viewer, "upload.html", exc.status_code, error=str(exc.detail), **context
            )
    except TooLarge as exc:
        return render(request, viewer, "upload.html", 413, error=str(exc), **context)
    except BadForm as exc:
        return render(request, viewer, "upload.html", 400, error=str(exc), **context)
    finally:
        if not created:
            shutil.rmtree(folder, ignore_errors=True)
    return RedirectResponse(f"/s/{out.id}", status_code=303)


#: Most members a bundle may hold (one file per (task, phase) of a build is far fewer).
MAX_BUNDLE_MEMBERS = 64


@dataclass
class BundleOutcome:
    member: str
    submission_id: str | None = None
    duplicate: bool = False
    error: str | None = None
    report: dict[str, Any] | None = None


def _bundle_members(path: Path, max_bytes: int) -> list[zipfile.ZipInfo]:
    """The files of a zip bundle, checked against the limits before anything is read."""
    with zipfile.ZipFile(path) as archive:
        members = [
            m for m in archive.infolist()
            if not m.is_dir() and not PurePosixPath(m.filename).name.startswith(".")
            and "__MACOSX" not in m.filename
        ]
    if not members:
        raise BadForm("the bundle holds no file")
    if len(members) > MAX_BUNDLE_MEMBERS:
        raise BadForm(f"the bundle holds {len(members)} files; at most {MAX_BUNDLE_MEMBERS}")
    if sum(m.file_size for m in members) > max_bytes:
        raise TooLarge("the bundle's files, uncompressed, are larger than the upload limit")
    return members


def _extract(path: Path, member: zipfile.ZipInfo, dest: Path, max_bytes: int) -> StoredFile:
    """One member to ``dest``, hashed and counted (the header's size is not trusted)."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as archive, archive.open(member) as src, dest.open("wb") as out:
        while chunk := src.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{member.filename} is larger than the upload limit")
            digest.update(chunk)
            out.write(chunk)
    return StoredFile(dest, digest.hexdigest(), size)


async def _bundle(
    request: Request, session: DbSession, services: Services, viewer: Viewer,
    stored: StoredFile, fields: dict[str, str], context: dict[str, Any],
) -> Response:
    """A zip of one prediction file per task (a ``baseline predict --out`` folder, zipped):
    each member goes through the API's path as its own submission; the page lists what
    became of each, with the validator's whole report for a rejected one."""
    from evalserver.app.routers.submissions import _create

    assert viewer.team is not None
    settings = services.settings
    try:
        members = await run_in_threadpool(_bundle_members, stored.path, settings.max_upload_bytes)
    except zipfile.BadZipFile:
        return render(request, viewer, "upload.html", 400,
                      error="a bundle must be a .zip of prediction files", **context)
    outcomes: list[BundleOutcome] = []
    for member in members:
        outcome = BundleOutcome(member.filename)
        outcomes.append(outcome)
        try:
            task, phase = task_phase_of(member.filename)
        except ValueError as exc:
            outcome.error = str(exc)
            continue
        sid, folder_rel = new_upload_folder(settings.data_dir)
        folder = settings.data_dir / folder_rel
        created = False
        try:
            one = await run_in_threadpool(
                _extract, stored.path, member, folder / "upload.part", settings.max_upload_bytes
            )
            form = SubmissionForm.model_validate(
                {**{k: v for k, v in fields.items() if k not in ("task", "phase")},
                 "task": task, **({"phase": phase} if phase else {})}
            )
            out, created = await run_in_threadpool(
                _create, session, services, viewer.team, sid, one, member.filename, form
            )
            outcome.submission_id, outcome.duplicate = out.id, not created
        except HTTPException as exc:
            if isinstance(exc.detail, dict):
                outcome.report = exc.detail
            else:
                outcome.error = str(exc.detail)
        except (TooLarge, ValidationError) as exc:
            outcome.error = str(exc)
        finally:
            if not created:
                shutil.rmtree(folder, ignore_errors=True)
    failed = any(o.submission_id is None for o in outcomes)
    return render(request, viewer, "upload.html", 422 if failed else 200,
                  outcomes=outcomes, **context)


# --------------------------------------------------------------------------- export
def export_rows(
    session: DbSession, viewer: Viewer, bench: BenchmarkVersion
) -> list[dict[str, Any]]:
    """Every number the pages show for ``bench``: one record per ranked row of every board
    (all phases), with its interval, p-value and seen/unseen scores when computed."""
    out: list[dict[str, Any]] = []
    order = {n: i for i, n in enumerate(tasks.task_names())}
    for board in sorted(bench.phases, key=lambda p: (order.get(p.task, 99), p.phase)):
        if board.task not in order:
            continue
        shown = task_board(session, viewer, board)
        for r in shown.rows:
            stats = stats_of(r)
            out.append(
                {
                    "benchmark": bench.name,
                    "version": bench.version,
                    "task": board.task,
                    "phase": board.phase,
                    "rank": r.rank,
                    "team": r.entry.team,
                    "method": r.entry.method,
                    "baseline": r.entry.is_baseline,
                    "public": r.entry.is_public,
                    "submitted_at": r.entry.created_at.isoformat(),
                    "metrics": {
                        c.name: v for c, v in zip(shown.columns, r.values, strict=True)
                    },
                    "stats": stats,
                }
            )
    return out


@router.get("/b/{name}/{version}/export/{kind}")
def export(
    request: Request, name: str, version: int, kind: str, session: DbSession, viewer: PageViewer
) -> Response:
    if kind not in ("json", "csv"):
        raise HTTPException(404, "export as .json or .csv")
    bench = _bench(session, name, version)
    rows = export_rows(session, viewer, bench)
    board = benchmark_board(session, viewer, bench)
    filename = f"{bench.name}-v{bench.version}"
    if kind == "json":
        body = {
            "benchmark": bench.name,
            "version": bench.version,
            "fingerprint": bench.fingerprint,
            "boards": rows,
            "multi_task": [
                {
                    "rank": r.rank,
                    "team": r.team,
                    "method": r.method,
                    "baseline": r.baseline,
                    "complete": r.complete,
                    "average": r.average,
                    "groups": r.groups,
                    "tasks": {t: c[0] for t, c in r.cells.items()},
                }
                for r in board.rows
            ],
        }
        return Response(
            json.dumps(body, indent=1), media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}.json"'},
        )
    header = ["task", "phase", "rank", "team", "method", "column", "value", "half_width",
              "p_value", "seen", "unseen", "n_seen", "n_unseen", "baseline", "public"]
    lines = []
    for rec in rows:
        stats = rec["stats"]
        leak = stats.get("leakage") or {}
        for i, (column, value) in enumerate(rec["metrics"].items()):
            first = i == 0  # the statistics are of the primary column
            lines.append(
                [
                    rec["task"], rec["phase"], rec["rank"],
                    text_cell(rec["team"]), text_cell(rec["method"]),  # a participant's
                    column, "" if value is None else value,
                    stats.get("half_width", "") if first else "",
                    stats.get("p_value", "") if first else "",
                    leak.get("seen", "") if first else "",
                    leak.get("unseen", "") if first else "",
                    leak.get("n_seen", "") if first else "",
                    leak.get("n_unseen", "") if first else "",
                    rec["baseline"], rec["public"],
                ]
            )
    return Response(
        csv_text(header, lines), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
