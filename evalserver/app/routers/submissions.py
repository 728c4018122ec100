"""Submissions: create (multipart upload), get one, list the team's own."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures.process import BrokenProcessPool
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evalserver import audit
from evalserver.app.deps import (
    DbSession,
    Services,
    Viewer,
    get_services,
    get_viewer,
    require_admin,
    require_team,
)
from evalserver.app.schemas import (
    AuditOut,
    RejectedOut,
    RescoreOut,
    SubmissionChange,
    SubmissionForm,
    SubmissionLogOut,
    SubmissionOut,
)
from evalserver.app.upload import FILE_FIELD, BadForm, receive_form
from evalserver.db.models import Rescore, Status, Submission, Team
from evalserver.quotas import QuotaExceeded, Quotas
from evalserver.storage import StorageError
from evalserver.submissions import (
    BoardNotFound,
    BoardUnavailable,
    Metadata,
    Rejected,
    StoredFile,
    TooLarge,
    cancel_submission,
    create_submission,
    enqueue,
    find_board,
    new_upload_folder,
)
from evalserver.validation import OverLimit, ValidationLimits
from evalserver.worker.celery_app import request_board_stats
from evalserver.worker.rescore import request_rescore, send_rescore

router = APIRouter(prefix="/submissions", tags=["submissions"])
log = logging.getLogger(__name__)

MAX_LIST = 500


@router.post(
    "",
    status_code=201,
    response_model=SubmissionOut,
    responses={
        200: {"model": SubmissionOut, "description": "The same file was submitted before."},
        400: {"description": "The body is not the expected multipart form."},
        404: {"description": "No loaded benchmark has this (task, phase)."},
        413: {
            "description": "The file is larger than the server's limit, or validating it "
            "needed more memory or time than the server allows."
        },
        422: {"model": RejectedOut, "description": "The file failed validation (`detail`)."},
        429: {
            "description": "A quota of the team is used up (`detail` names it); "
            "`Retry-After` says when to try again, when waiting helps."
        },
        503: {"description": "Validation could not run; nothing was stored."},
    },
    openapi_extra=SubmissionForm.openapi_body(),
)
async def create(
    request: Request,
    response: Response,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
    team: Annotated[Team, Depends(require_team)],
) -> SubmissionOut:
    """Upload a prediction file for one (task, phase). It is validated before anything is
    queued: 422 with the whole report when it is bad (nothing is stored); 201 and a
    ``queued`` submission when it is good; 200 and the earlier submission when the team sent
    this same file for this same leaderboard before.

    The token is checked before the body is read; the file streams straight into the data
    dir (``evalserver.app.upload``); the rest runs in a worker thread."""
    settings = services.settings
    try:  # a team at its limit of submissions at once is refused before its body is read
        await run_in_threadpool(Quotas.of(settings).check_concurrent, session, team.id)
    except QuotaExceeded as exc:
        raise _too_many(exc) from None
    submission_id, folder_rel = new_upload_folder(settings.data_dir)
    folder = settings.data_dir / folder_rel
    created = False
    try:
        received = await receive_form(request, folder / "upload.part", settings.max_upload_bytes)
        if received.file is None:
            raise HTTPException(400, f"the form has no {FILE_FIELD!r} part (the prediction file)")
        try:
            form = SubmissionForm.model_validate(received.fields)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None
        out, created = await run_in_threadpool(
            _create, session, services, team, submission_id, received.file, received.filename, form
        )
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except BadForm as exc:
        raise HTTPException(400, str(exc)) from None
    finally:
        if not created:  # refused, failed or a duplicate: nothing of this upload is kept
            shutil.rmtree(folder, ignore_errors=True)
    if not created:
        response.status_code = 200
    return out


def _too_many(exc: QuotaExceeded) -> HTTPException:
    headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    return HTTPException(429, str(exc), headers=headers)


def _create(
    session: Session,
    services: Services,
    team: Team,
    submission_id: str,
    stored: StoredFile,
    filename: str,
    form: SubmissionForm,
) -> tuple[SubmissionOut, bool]:
    """The blocking part of an upload: find the board, validate in the pool, commit,
    enqueue."""
    try:
        board = find_board(session, form.task, form.phase, form.benchmark)
    except BoardNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    metadata = Metadata(
        method_name=form.method_name,
        description=form.description,
        paper_url=form.paper_url,
        code_url=form.code_url,
        is_public=form.public,
        original_name=filename,
    )
    settings = services.settings
    pool = services.pool
    try:
        row, created = create_submission(
            session,
            data_dir=settings.data_dir,
            submission_id=submission_id,
            stored=stored,
            team=team,
            board=board,
            metadata=metadata,
            pool=pool,
            storage=services.storage,
            limits=ValidationLimits.of(settings),
            quotas=Quotas.of(settings),
        )
    except Rejected as exc:
        raise HTTPException(422, exc.report) from None
    except QuotaExceeded as exc:
        raise _too_many(exc) from None
    except OverLimit as exc:
        if exc.pool_killed:
            services.discard_pool(pool)
        log.warning("an upload was refused: %s", exc)
        raise HTTPException(413, str(exc)) from None
    except BoardUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except StorageError as exc:  # logged with the storage's URL; the participant gets none
        log.error("cannot store submission %s: %s", submission_id, exc)
        raise HTTPException(503, "the server cannot store files now; nothing was stored") from None
    except BrokenProcessPool:
        services.discard_pool(pool)
        log.error("a validation process died (out of memory?); nothing was stored")
        raise HTTPException(
            503, "the validation process stopped while reading this file; nothing was stored"
        ) from None
    if created:
        enqueue(services.celery, row.id)
    return SubmissionOut.of(row, duplicate=not created), created


@router.get("/{submission_id}", response_model=SubmissionOut, responses={404: {}})
def get_one(
    submission_id: str, session: DbSession, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> SubmissionOut:
    """A submission of the caller's team (any, for the admin): status, metrics, error."""
    # The same answer for "not yours" and "does not exist": ids do not leak.
    return SubmissionOut.of(_visible(session, viewer, submission_id))


def _visible(session: DbSession, viewer: Viewer, submission_id: str) -> Submission:
    row = session.get(Submission, submission_id)
    if row is None or not viewer.owns(row.team_id):
        raise HTTPException(404, f"no submission {submission_id} for this token")
    return row


@router.post("/{submission_id}/cancel", response_model=SubmissionOut, responses={404: {}, 409: {}})
def cancel(
    submission_id: str, session: DbSession, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> SubmissionOut:
    """Cancel a queued or running submission (its team or the admin). A guarded UPDATE: a
    worker can no longer claim it, and one scoring it cannot write its result; 409 when it
    is final already."""
    row = _visible(session, viewer, submission_id)
    actor = audit.API_ADMIN if viewer.admin else None  # recorded with the change itself
    if not cancel_submission(session, row, actor):
        raise HTTPException(409, f"submission {row.id} is {row.status.value}: too late to cancel")
    return SubmissionOut.of(row)


@router.patch("/{submission_id}", response_model=SubmissionOut, responses={403: {}, 404: {}})
def change(
    submission_id: str,
    change: SubmissionChange,
    session: DbSession,
    viewer: Annotated[Viewer, Depends(get_viewer)],
    services: Annotated[Services, Depends(get_services)],
) -> SubmissionOut:
    """Make a submission public or private (its team or the admin), mark it as a baseline
    (shown as such on leaderboards) or hide it from every leaderboard (the admin only).
    Each change the admin makes is recorded in the audit log."""
    row = _visible(session, viewer, submission_id)
    if change.baseline is not None and not viewer.admin:
        raise HTTPException(403, "only the admin marks baselines")
    if change.hidden is not None and not viewer.admin:
        raise HTTPException(403, "only the admin hides submissions")
    # Who is on the board changes: its statistics (the public leader) are recomputed.
    visibility = (change.public is not None and change.public != row.is_public) or (
        change.hidden is not None and change.hidden != row.is_hidden
    )
    changes = {
        "public": ("is_public", change.public),
        "baseline": ("is_baseline", change.baseline),
        "hidden": ("is_hidden", change.hidden),
    }
    for name, (column, value) in changes.items():
        if value is None:
            continue
        if viewer.admin:
            action = {"public": "set public", "baseline": "mark baseline", "hidden": "hide"}[name]
            audit.record(session, audit.API_ADMIN, action, submission_id=row.id,
                         team_id=row.team_id, **{name: value, "was": getattr(row, column)})
        setattr(row, column, value)
    session.commit()
    if visibility and row.status == Status.scored:
        request_board_stats(services.celery, row.id)
    return SubmissionOut.of(row)


@router.get("/{submission_id}/history", response_model=list[RescoreOut], responses={404: {}})
def history(
    submission_id: str, session: DbSession, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> list[RescoreOut]:
    """The submission's re-scores, oldest first: who asked, when, against which benchmark
    version, and for each one done the result it replaced and the one it made current."""
    row = _visible(session, viewer, submission_id)
    jobs = session.scalars(
        select(Rescore)
        .where(Rescore.submission_id == row.id)
        .options(selectinload(Rescore.benchmark))
        .order_by(Rescore.requested_at, Rescore.id)
    )
    return [RescoreOut.of(job, viewer.admin) for job in jobs]


@router.get("/{submission_id}/log", response_model=SubmissionLogOut, responses={404: {}})
def submission_log(
    submission_id: str, session: DbSession, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> SubmissionLogOut:
    """The submission's log: the validation report, the worker host and timings of its last
    run; for the admin also an error's trace and the admin actions on it."""
    row = _visible(session, viewer, submission_id)
    kept = audit.visible_log(row.log, viewer.admin)
    return SubmissionLogOut(
        id=row.id,
        status=row.status,
        attempts=row.attempts,
        error=row.error,
        validation=kept.get("validation"),
        worker=kept.get("worker"),
        trace=kept.get("trace"),
        audit=[AuditOut.of(e) for e in audit.entries(session, submission_id=row.id)]
        if viewer.admin
        else None,
    )


@router.post(
    "/{submission_id}/rescore",
    status_code=202,
    response_model=RescoreOut,
    responses={200: {"model": RescoreOut}, 401: {}, 403: {}, 404: {}, 409: {}},
)
def rescore(
    submission_id: str,
    response: Response,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
    viewer: Annotated[Viewer, Depends(require_admin)],
) -> RescoreOut:
    """Re-score a scored submission in the background (the admin only): 202 and the queued
    re-score; 200 and the pending one when it is being re-score already; 409 when it is not
    scored. Its current result stays until the new one replaces it (``/history``)."""
    row = _visible(session, viewer, submission_id)
    job, created = request_rescore(session, row, audit.API_ADMIN, "requested by the admin")
    if job is None:
        raise HTTPException(409, f"submission {row.id} is {row.status.value}: only a scored "
                            "submission is re-scored")
    if created:
        send_rescore(services.celery, job.id)
    else:
        response.status_code = 200
    return RescoreOut.of(job, admin=True)


@router.get("", response_model=list[SubmissionOut])
def list_own(
    session: DbSession,
    team: Annotated[Team, Depends(require_team)],
    task: str | None = None,
    phase: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[SubmissionOut]:
    """The team's submissions, newest first."""
    query = (
        select(Submission)
        .where(Submission.team_id == team.id)
        .options(selectinload(Submission.team), selectinload(Submission.benchmark))
        .order_by(Submission.created_at.desc(), Submission.id)
        .limit(limit)
    )
    if task is not None:
        query = query.where(Submission.task == task)
    if phase is not None:
        query = query.where(Submission.phase == phase)
    if status is not None:
        query = query.where(Submission.status == status)
    return [SubmissionOut.of(row) for row in session.scalars(query)]
