"""The Celery application, made from settings (no module-level app: the broker is a
setting, and tests run several servers side by side).

Queue semantics (spec/evalserver.md): a message carries only a submission id; late
acknowledgement and prefetch 1, so a message is never held by a worker that is busy or dies;
no result backend (the database row is the result).
"""

from __future__ import annotations

import logging

from celery import Celery

from evalserver.settings import Settings

__all__ = ["SCORE_TASK", "STATS_TASK", "make_celery", "request_board_stats"]

log = logging.getLogger(__name__)

#: The scoring task's name: the API sends it by name, so it never imports worker code.
SCORE_TASK = "vl12.score_submission"
#: Recompute a board's statistics (a submission id names the board): sent when a change
#: other than scoring may have changed the board's leader (``evalserver.worker.stats``).
STATS_TASK = "vl12.board_stats"


def make_celery(settings: Settings) -> Celery:
    app = Celery("vl12", broker=settings.broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    if settings.broker.startswith("sqla+sqlite"):
        # kombu passes these to create_engine: wait for the broker file's write lock (the
        # API, the worker and the sweeper all write it) instead of failing after 5 s.
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    return app


def request_board_stats(celery: Celery, submission_id: str) -> None:
    """Ask a worker to bring ``submission_id``'s board statistics up to date (its
    visibility changed: the public leader may be another now). Logged, never raised: the
    next scoring on the board recomputes them anyway."""
    try:
        celery.send_task(STATS_TASK, args=[submission_id], retry=False)
    except Exception as exc:  # any broker or connection failure
        log.warning("statistics of %s's board not requested (%s)", submission_id, exc)
