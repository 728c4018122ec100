"""Submissions: create (multipart upload), get one, list the team's own."""

from __future__ import annotations

import logging
from concurrent.futures.process import BrokenProcessPool
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from evalserver.app.deps import DbSession, Services, Viewer, get_services, get_viewer, require_team
from evalserver.app.schemas import RejectedOut, SubmissionOut
from evalserver.db.models import Status, Submission, Team
from evalserver.submissions import (
    BoardNotFound,
    Metadata,
    Rejected,
    TooLarge,
    create_submission,
    enqueue,
    find_board,
)

router = APIRouter(prefix="/submissions", tags=["submissions"])
log = logging.getLogger(__name__)

MAX_LIST = 500


@router.post(
    "",
    status_code=201,
    response_model=SubmissionOut,
    responses={
        200: {"model": SubmissionOut, "description": "The same file was submitted before."},
        404: {"description": "No loaded benchmark has this (task, phase)."},
        413: {"description": "The file is larger than the server's limit."},
        422: {"model": RejectedOut, "description": "The file failed validation (`detail`)."},
        503: {"description": "The validation process died; nothing was stored."},
    },
)
def create(
    response: Response,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
    team: Annotated[Team, Depends(require_team)],
    file: Annotated[UploadFile, File(description="The prediction file (gzip accepted).")],
    task: Annotated[str, Form()],
    phase: Annotated[str | None, Form(description="Default: the task's default phase.")] = None,
    benchmark: Annotated[str | None, Form(description="Default: the newest loaded.")] = None,
    method_name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    paper_url: Annotated[str, Form(max_length=500)] = "",
    code_url: Annotated[str, Form(max_length=500)] = "",
    public: Annotated[bool, Form()] = True,
) -> SubmissionOut:
    """Upload a prediction file for one (task, phase). It is validated before anything is
    queued: 422 with the whole report when it is bad (nothing is stored); 201 and a
    ``queued`` submission when it is good; 200 and the earlier submission when the team sent
    this same file for this same leaderboard before."""
    try:
        board = find_board(session, task, phase, benchmark)
    except BoardNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    settings = services.settings
    metadata = Metadata(
        method_name=method_name,
        description=description,
        paper_url=paper_url,
        code_url=code_url,
        is_public=public,
        original_name=file.filename or "",
    )
    pool = services.pool
    try:
        row, created = create_submission(
            session,
            data_dir=settings.data_dir,
            team=team,
            board=board,
            source=file.file,
            metadata=metadata,
            pool=pool,
            max_bytes=settings.max_upload_bytes,
        )
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except Rejected as exc:
        raise HTTPException(422, exc.report) from None
    except BrokenProcessPool:
        services.discard_pool(pool)
        log.error("a validation process died (out of memory?); nothing was stored")
        raise HTTPException(
            503, "the validation process stopped while reading this file; nothing was stored"
        ) from None
    if created:
        enqueue(services.celery, row.id)
    else:
        response.status_code = 200
    return SubmissionOut.of(row, duplicate=not created)


@router.get("/{submission_id}", response_model=SubmissionOut, responses={404: {}})
def get_one(
    submission_id: str, session: DbSession, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> SubmissionOut:
    """A submission of the caller's team (any, for the admin): status, metrics, error."""
    row = session.get(Submission, submission_id)
    if row is None or not viewer.owns(row.team_id):
        # The same answer for "not yours" and "does not exist": ids do not leak.
        raise HTTPException(404, f"no submission {submission_id} for this token")
    return SubmissionOut.of(row)


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
