"""The admin token rotated without a restart: two running ``evalserver api`` processes on
one database; ``evalserver admin rotate-token`` prints a new token, after which the old one
(``VL12_ADMIN_TOKEN``, then each rotated one) is refused at once by both processes, on the
API and the pages' sign-in, the new one works, team tokens are untouched, only the
token's hash is stored and every rotation is in the audit log."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from evalserver.cli import main
from evalserver.db.models import AdminToken, AuditEntry
from tests.evalserver.server.live import Live, Services, make_live, services  # noqa: F401

SETTINGS_TOKEN = "admin-token-from-the-settings"


@pytest.fixture
def live(request: pytest.FixtureRequest, services: Services, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    server = make_live(request.param, services, tmp_path / "data")
    server.extra_env["VL12_ADMIN_TOKEN"] = SETTINGS_TOKEN
    try:
        yield server
    finally:
        server.close()


def _cli(live: Live, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=live.env, catch_exceptions=False)


def _status(url: str, token: str) -> int:
    """What an admin-only route answers to ``token``."""
    return httpx.get(f"{url}/api/v1/admin/audit", timeout=30,
                     headers={"Authorization": f"Bearer {token}"}).status_code


def _sign_in(url: str, token: str) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        form = client.get("/signin").text
        match = re.search(r'name="csrf" value="([^"]+)"', form)
        assert match, form
        return client.post("/signin", data={"token": token, "csrf": match.group(1)},
                           follow_redirects=False).status_code


@pytest.mark.slow
@pytest.mark.parametrize("live", ["sqlite", "postgres-redis"], indirect=True)
def test_rotation_holds_at_once_in_every_api_process(live: Live) -> None:
    team_token = live.team_token("alpha")
    urls = [live.api(), live.api()]
    assert [_status(u, SETTINGS_TOKEN) for u in urls] == [200, 200]
    status = _cli(live, "admin", "token-status")
    assert status.exit_code == 0 and "VL12_ADMIN_TOKEN (never rotated)" in status.stdout

    first = _cli(live, "admin", "rotate-token")
    assert first.exit_code == 0 and "shown once" in first.stderr
    token = first.stdout.strip()
    assert len(token) >= 43 and token != SETTINGS_TOKEN
    # At once, in both processes, with no restart: the settings' token is refused.
    assert [_status(u, SETTINGS_TOKEN) for u in urls] == [401, 401]
    assert [_status(u, token) for u in urls] == [200, 200]
    assert _sign_in(urls[1], SETTINGS_TOKEN) == 401 and _sign_in(urls[0], token) == 303
    # A team's token is a team's, as before (and not the admin's).
    assert _status(urls[0], team_token) == 403

    second = _cli(live, "admin", "rotate-token").stdout.strip()
    assert second not in (token, SETTINGS_TOKEN)
    assert [_status(u, token) for u in urls] == [401, 401]
    assert [_status(u, second) for u in urls] == [200, 200]
    assert "rotated: the token made on" in _cli(live, "admin", "token-status").stdout

    with Session(live.engine) as session:
        stored = list(session.scalars(select(AdminToken)))
        assert [r.token_hash for r in stored] == [hashlib.sha256(second.encode()).hexdigest()]
        assert stored[0].created_by.startswith("admin (cli ")
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(e.action, e.actor.startswith("admin (cli ")) for e in entries] == [
        ("rotate admin token", True), ("rotate admin token", True)]
    assert [e.detail for e in entries] == [{"replaced": "settings or none"},
                                          {"replaced": "rotated"}]
    assert not any(second in str(e.detail) or token in str(e.detail) for e in entries)
    # The audit log says so through the API too, to the admin holding the new token.
    listed = httpx.get(f"{urls[1]}/api/v1/admin/audit", timeout=30,
                       headers={"Authorization": f"Bearer {second}"}).json()
    assert [e["action"] for e in listed] == ["rotate admin token"] * 2
