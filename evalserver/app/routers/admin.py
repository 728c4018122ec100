"""The admin's routes (``VL12_ADMIN_TOKEN`` only): every submission, bulk re-scores, the
audit log. The per-submission admin actions (hide, cancel, baseline, re-score) are on the
submission's own routes; each is recorded in the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from evalserver import audit
from evalserver.app.deps import DbSession, Services, get_services, require_admin
from evalserver.app.schemas import AuditOut, RescoreOut, RescoreRequest, RescoresOut, SubmissionOut
from evalserver.db.models import Status, Submission, Team
from evalserver.worker.rescore import request_rescore, select_rescorable, send_rescore

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

MAX_LIST = 500


@router.get("/submissions", response_model=list[SubmissionOut])
def all_submissions(
    session: DbSession,
    team: str | None = None,
    task: str | None = None,
    phase: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[SubmissionOut]:
    """Every team's submissions (hidden and private ones too), newest first."""
    query = (
        select(Submission)
        .options(selectinload(Submission.team), selectinload(Submission.benchmark))
        .order_by(Submission.created_at.desc(), Submission.id)
        .limit(limit)
    )
    if team is not None:
        query = query.join(Team).where(Team.name == team)
    if task is not None:
        query = query.where(Submission.task == task)
    if phase is not None:
        query = query.where(Submission.phase == phase)
    if status is not None:
        query = query.where(Submission.status == status)
    return [SubmissionOut.of(row) for row in session.scalars(query)]


@router.post("/rescore", status_code=202, response_model=RescoresOut)
def rescore_many(
    request: RescoreRequest,
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
) -> RescoresOut:
    """Re-score the scored submissions the request names (by ids, task, phase, benchmark;
    ``stale``: only those scored by an older scorer version), in the background."""
    rows = select_rescorable(
        session,
        ids=request.ids,
        task=request.task,
        phase=request.phase,
        benchmark=request.benchmark,
        stale=request.stale,
    )
    queued, pending = [], []
    for row in rows:
        job, created = request_rescore(session, row, audit.API_ADMIN, request.reason)
        if job is None:
            continue
        if created:
            send_rescore(services.celery, job.id)
        (queued if created else pending).append(RescoreOut.of(job, admin=True))
    return RescoresOut(queued=queued, pending=pending)


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    session: DbSession,
    submission_id: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first: every admin action, who, when, on what."""
    found = audit.entries(session, submission_id=submission_id, action=action, limit=limit)
    return [AuditOut.of(e) for e in found]
