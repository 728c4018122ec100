"""The API's dependencies, in one place: the services of the running app, a database
session per request, and who is asking (a team by its token, the admin, or nobody)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from threading import Lock
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from evalserver.admin_token import is_admin
from evalserver.db.models import Team
from evalserver.settings import Settings
from evalserver.storage import Storage, make_storage
from evalserver.teams import authenticate
from evalserver.validation import make_pool

__all__ = [
    "DbSession",
    "Services",
    "Viewer",
    "get_services",
    "get_session",
    "get_viewer",
    "require_admin",
    "require_team",
]


@dataclass
class Services:
    """Everything a request may use, made once per app (``make_app``) and kept on
    ``app.state``: no module-level state, so several apps run side by side in tests."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    _pool: Executor | None = None
    #: False for a pool given by the caller (shared by several apps): it closes it.
    owns_pool: bool = True
    _lock: Lock = field(default_factory=Lock)
    _storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        """Where uploads go (``VL12_STORAGE_URL``), made on first use."""
        with self._lock:
            if self._storage is None:
                self._storage = make_storage(self.settings)
            return self._storage

    @property
    def pool(self) -> Executor:
        """The validation processes, started on first use (``evalserver.validation``)."""
        with self._lock:
            if self._pool is None:
                self._pool = make_pool(self.settings.validation_processes)
            return self._pool

    def warm(self) -> None:
        """Start the validation processes now (a spawned Python takes a second or two), so
        the first upload does not wait for them; not awaited."""
        pool = self.pool
        for _ in range(self.settings.validation_processes):
            pool.submit(os.getpid)

    def discard_pool(self, broken: Executor) -> None:
        """Forget a pool whose process died (a ``ProcessPoolExecutor`` never recovers from
        that); the next upload starts a new one. A pool given by the caller is kept: it
        is the caller's to replace."""
        with self._lock:
            if self._pool is broken and self.owns_pool:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self.owns_pool:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.engine.dispose()


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(
    auto_error=False, description="A team's token (`evalserver team create`) or the admin's."
)


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a team, the admin (``evalserver.admin_token``), or anonymous."""

    team: Team | None = None
    admin: bool = False

    def owns(self, team_id: int) -> bool:
        return self.admin or (self.team is not None and self.team.id == team_id)


def get_viewer(
    session: DbSession,
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Viewer:
    if credentials is None:
        return Viewer()
    token = credentials.credentials
    team = authenticate(session, token)  # first: a team's request reads one row, not two
    if team is not None:
        return Viewer(team=team)
    if is_admin(session, token, services.settings.admin_token):
        return Viewer(admin=True)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "unknown or revoked token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_team(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Team:
    if viewer.team is not None:
        return viewer.team
    if viewer.admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the admin token belongs to no team: submit with a team's token "
            "(evalserver team create NAME)",
        )
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a team's token is required (Authorization: Bearer TOKEN)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_admin(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    """The admin token (``evalserver.admin_token``), else 401 (no token) or 403 (a team's)."""
    if viewer.admin:
        return viewer
    if viewer.team is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin token")
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "the admin token is required (Authorization: Bearer TOKEN)",
        headers={"WWW-Authenticate": "Bearer"},
    )
