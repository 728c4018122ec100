"""The admin token: ``VL12_ADMIN_TOKEN`` from the settings until the first rotation, then
the one ``evalserver admin rotate-token`` made, kept as its sha256 in ``admin_tokens``.

Rotation needs no restart: every request that presents a token (and is not a team's)
reads the newest row, so the old token is refused at once by every API process sharing the
database. Once a row exists the settings' token is refused too (a leaked
``VL12_ADMIN_TOKEN`` is revoked by the first rotation); the operator may then remove it
from the environment. A lost token is replaced by rotating again (the command needs the
database, not the token). Each rotation is recorded in the audit log, in the same
transaction.
"""

from __future__ import annotations

import hmac
import secrets

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from evalserver import audit
from evalserver.db.models import AdminToken
from evalserver.teams import TOKEN_BYTES, hash_token

__all__ = ["admin_token_source", "is_admin", "rotate_admin_token"]


def _current_hash(session: Session) -> str | None:
    return session.scalars(
        select(AdminToken.token_hash).order_by(AdminToken.id.desc()).limit(1)
    ).first()


def is_admin(session: Session, token: str, configured: SecretStr | None) -> bool:
    """Whether ``token`` is the admin token now: the rotated one when there is one, else
    ``configured`` (``VL12_ADMIN_TOKEN``). Compared in constant time."""
    if not token:
        return False
    current = _current_hash(session)
    if current is not None:
        return hmac.compare_digest(hash_token(token).encode(), current.encode())
    if configured is None or not configured.get_secret_value():
        return False
    return hmac.compare_digest(token.encode(), configured.get_secret_value().encode())


def admin_token_source(session: Session, configured: SecretStr | None) -> str:
    """Which token is the admin's, in words (for ``evalserver admin token-status``)."""
    row = session.scalars(select(AdminToken).order_by(AdminToken.id.desc()).limit(1)).first()
    if row is not None:
        return (f"rotated: the token made on {row.created_at:%Y-%m-%d %H:%M} UTC by "
                f"{row.created_by} (VL12_ADMIN_TOKEN is not accepted)")
    if configured is not None and configured.get_secret_value():
        return "VL12_ADMIN_TOKEN (never rotated)"
    return "none: no admin token (set VL12_ADMIN_TOKEN or run `evalserver admin rotate-token`)"


def rotate_admin_token(session: Session, actor: str) -> str:
    """A new admin token (returned: the only time it exists outside the caller); the
    previous one, rotated or from the settings, stops working when this commits."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    replaced = "rotated" if _current_hash(session) is not None else "settings or none"
    session.execute(delete(AdminToken))
    session.add(AdminToken(token_hash=hash_token(token), created_by=actor[:200]))
    audit.record(session, actor, "rotate admin token", replaced=replaced)
    session.commit()
    return token
