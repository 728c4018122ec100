"""The FastAPI application. ``make_app(settings)`` builds one (tests build several side by
side); ``create_app()`` is the factory uvicorn runs (``evalserver api``, ``serve``), reading
settings from the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from evalserver.app.deps import Services
from evalserver.app.limits import BodyLimit
from evalserver.app.routers import admin, health, leaderboards, submissions
from evalserver.db.session import make_engine, make_sessionmaker
from evalserver.pages import routes as pages
from evalserver.settings import Settings
from evalserver.worker.celery_app import make_celery

__all__ = ["API_PREFIX", "create_app", "make_app"]

API_PREFIX = "/api/v1"
#: Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD = 1 << 20


def make_app(settings: Settings, pool: Executor | None = None) -> FastAPI:
    """The app of ``settings``. ``pool``: validation processes shared with other apps (and
    closed by the caller); by default the app starts its own on the first upload."""
    engine = make_engine(settings.db_url)
    celery = make_celery(settings)
    # An upload must not wait on a broker that is down: fail fast, the sweeper re-sends.
    celery.conf.broker_connection_timeout = 2.0
    services = Services(
        settings, engine, make_sessionmaker(engine), celery, pool, owns_pool=pool is None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.owns_pool:
            services.warm()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="vl12 evaluation server",
        version="1",
        description="Submissions validated, queued and scored by the official vl12 scorers; "
        "leaderboards per (task, phase). Ground truth is never served.",
        lifespan=lifespan,
    )
    app.state.services = services
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(submissions.router)
    api.include_router(leaderboards.router)
    api.include_router(health.router)
    api.include_router(admin.router)
    app.include_router(api)
    app.include_router(pages.router)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_upload_bytes + FORM_OVERHEAD,
        paths=(f"{API_PREFIX}/submissions", "/upload"),
    )
    return app


def create_app() -> FastAPI:
    return make_app(Settings())
