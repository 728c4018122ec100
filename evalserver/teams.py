"""Teams and their API tokens.

A token is random (``secrets``), shown once when the team is made, and stored only as its
sha256: a leaked database does not let anyone submit as a team. The admin is not a team: it
is whoever presents ``VL12_ADMIN_TOKEN`` (compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evalserver.db.models import Team

__all__ = ["TeamError", "authenticate", "create_team", "hash_token", "is_admin"]

#: Bytes of randomness in a token (43 URL-safe characters).
TOKEN_BYTES = 32
MAX_NAME = 200


class TeamError(Exception):
    """A team that cannot be made (the message says why)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_team(session: Session, name: str) -> tuple[Team, str]:
    """A new team and its token (the only time the token exists outside the caller)."""
    if not name.strip():
        raise TeamError("a team name cannot be empty")
    if len(name) > MAX_NAME:
        raise TeamError(f"a team name has at most {MAX_NAME} characters, got {len(name)}")
    if session.scalars(select(Team).where(Team.name == name)).first() is not None:
        raise TeamError(f"a team named {name!r} exists already")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    team = Team(name=name, token_hash=hash_token(token))
    session.add(team)
    try:
        session.commit()
    except IntegrityError:  # made at the same moment by another process
        session.rollback()
        raise TeamError(f"a team named {name!r} exists already") from None
    return team, token


def authenticate(session: Session, token: str) -> Team | None:
    """The team holding ``token``; None for an unknown or revoked one."""
    team = session.scalars(select(Team).where(Team.token_hash == hash_token(token))).first()
    if team is None or team.revoked_at is not None:
        return None
    return team


def is_admin(token: str, admin_token: SecretStr | None) -> bool:
    if admin_token is None or not admin_token.get_secret_value():
        return False
    return hmac.compare_digest(token.encode(), admin_token.get_secret_value().encode())
