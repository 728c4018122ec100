"""Health: the database, the broker and live workers, plus the queue as the database sees
it (so "stuck for days" shows up here first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import func, select, text

from evalserver.app.deps import Services, get_services
from evalserver.app.schemas import Check, HealthOut, QueueOut, WorkersCheck
from evalserver.db.models import Status, Submission

router = APIRouter(tags=["health"])

#: Seconds the broker check and the worker ping may take (a health check must answer fast).
BROKER_TIMEOUT_S = 2.0
PING_TIMEOUT_S = 1.0


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _database(services: Services) -> tuple[Check, QueueOut | None, list[str]]:
    try:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
            counts = dict(
                session.execute(
                    select(Submission.status, func.count())
                    .where(Submission.status.in_([Status.queued, Status.running]))
                    .group_by(Submission.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(Submission.updated_at)).where(Submission.status == Status.queued)
            )
            since = datetime.now(UTC) - timedelta(seconds=services.settings.running_deadline_s)
            recent = session.scalars(
                select(Submission.worker_host)
                .where(Submission.started_at >= since, Submission.worker_host.is_not(None))
                .distinct()
            ).all()
    except Exception as exc:  # any driver or connection error
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return Check(ok=False, detail=reason), None, []
    age = None if oldest is None else (datetime.now(UTC) - _aware(oldest)).total_seconds()
    queue = QueueOut(
        queued=counts.get(Status.queued, 0),
        running=counts.get(Status.running, 0),
        oldest_queued_s=age,
    )
    return Check(ok=True), queue, sorted(h for h in recent if h)


def _broker(services: Services) -> tuple[Check, bool]:
    """(the check, whether the broker can broadcast a ping to workers)."""
    try:
        with services.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            fanout = "fanout" in connection.transport.implements.exchange_type
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}"), False
    return Check(ok=True), fanout


def _workers(services: Services, fanout: bool) -> WorkersCheck:
    if not fanout:
        return WorkersCheck(
            ok=True,
            live=None,
            detail="this broker cannot broadcast a ping (kombu's SQLAlchemy transport); "
            "see queue for work waiting",
        )
    try:
        replies = services.celery.control.inspect(timeout=PING_TIMEOUT_S).ping() or {}
    except Exception as exc:
        return WorkersCheck(ok=False, live=[], detail=f"{type(exc).__name__}: {exc}")
    live = sorted(replies)
    return WorkersCheck(
        ok=bool(live), live=live, detail="" if live else "no worker answered the ping"
    )


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(response: Response, services: Annotated[Services, Depends(get_services)]) -> HealthOut:
    """200 when the database answers (``status`` ok, or degraded when the broker is down or
    no worker answers: uploads are still accepted and wait queued); 503 when it does not."""
    database, queue, recent = _database(services)
    broker, fanout = _broker(services)
    workers = _workers(services, fanout) if broker.ok else WorkersCheck(ok=False, live=None)
    workers.recent = recent
    if not database.ok:
        status = "down"
        response.status_code = 503
    elif broker.ok and workers.ok:
        status = "ok"
    else:
        status = "degraded"
    return HealthOut(status=status, database=database, broker=broker, workers=workers, queue=queue)
