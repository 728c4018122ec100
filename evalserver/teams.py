"""Teams and their API tokens.

A token is random (``secrets``), shown once when the team is made, and stored only as its
sha256: a leaked database does not let anyone submit as a team. The admin is not a team: it
is whoever presents the admin token (``evalserver.admin_token``: ``VL12_ADMIN_TOKEN``, or
the one made by ``evalserver admin rotate-token``).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evalserver.db.models import Team, utcnow

__all__ = [
    "TeamError",
    "authenticate",
    "check_name",
    "create_team",
    "find_team",
    "hash_token",
    "revoke_team",
    "rotate_token",
]

#: Bytes of randomness in a token (43 URL-safe characters).
TOKEN_BYTES = 32
MAX_NAME = 200


class TeamError(Exception):
    """A team that cannot be made (the message says why)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> None:
    """Any text is a name (HTML, quotes, control characters are kept verbatim and escaped
    where rendered) except an empty one, an over-long one, and one holding NUL, which
    PostgreSQL cannot store in text."""
    if not name.strip():
        raise TeamError("a team name cannot be empty")
    if len(name) > MAX_NAME:
        raise TeamError(f"a team name has at most {MAX_NAME} characters, got {len(name)}")
    if "\x00" in name:
        raise TeamError("a team name cannot hold the NUL character (\\x00)")


def create_team(session: Session, name: str) -> tuple[Team, str]:
    """A new team and its token (the only time the token exists outside the caller)."""
    check_name(name)
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


def find_team(session: Session, name_or_id: str) -> Team:
    """The team named ``name_or_id`` exactly, else the one with that id (``#12`` or ``12``
    when no team has that name)."""
    team = session.scalars(select(Team).where(Team.name == name_or_id)).first()
    if team is None:
        digits = name_or_id.removeprefix("#")
        if digits.isdigit():
            team = session.get(Team, int(digits))
    if team is None:
        raise TeamError(f"no team named {name_or_id!r} (nor with that id)")
    return team


def revoke_team(session: Session, team: Team) -> bool:
    """Refuse the team's token from now on (its submissions and entries stay); False when it
    was revoked already. ``rotate_token`` gives it a working token again."""
    if team.revoked_at is not None:
        return False
    team.revoked_at = utcnow()
    session.commit()
    return True


def rotate_token(session: Session, team: Team) -> str:
    """A new token for the team; the old one stops working at once (it also lifts a
    revocation: rotating is how a revoked team gets access back)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    team.token_hash = hash_token(token)
    team.revoked_at = None
    session.commit()
    return token


def authenticate(session: Session, token: str) -> Team | None:
    """The team holding ``token``; None for an unknown or revoked one."""
    team = session.scalars(select(Team).where(Team.token_hash == hash_token(token))).first()
    if team is None or team.revoked_at is not None:
        return None
    return team
