"""The deployment files under deploy/ run real commands: every command of the compose file
and of the systemd units is an ``evalserver`` command that accepts exactly those options,
and every ``VL12_*`` variable they set is a setting of the server (a typo would be silently
ignored by the server). The commands themselves run live in test_deploy_live.py."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from evalserver.cli import main
from evalserver.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
#: The processes a public challenge runs (issue 13, "Deployment").
NEEDED = {"api", "worker", "sweeper", "postgres", "redis"}


def evalserver_command(argv: list[str]) -> click.Command:
    """The ``evalserver`` command that ``argv`` runs, its options and arguments parsed as
    the command would parse them (``click.UsageError`` when it would refuse them)."""
    if not argv or Path(argv[0]).name != "evalserver":
        raise click.UsageError(f"not an evalserver command: {argv}")
    command: click.Command = main
    name, args = "evalserver", list(argv[1:])
    while isinstance(command, click.Group):
        if not args:
            raise click.UsageError(f"{name}: no sub-command in {argv}")
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            raise click.UsageError(f"{name}: no sub-command {args[0]!r} in {argv}")
        command, name, args = sub, args[0], args[1:]
    command.make_context(name, args)
    return command


def settings_names() -> set[str]:
    return {f"VL12_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def vl12_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "vl12-server"
    }


def test_the_checker_refuses_what_evalserver_refuses() -> None:
    assert evalserver_command(["evalserver", "worker", "--concurrency", "2"]).name == "worker"
    for bad in (
        ["evalserver", "worker", "--concurency", "2"],
        ["evalserver", "worker", "--concurrency", "two"],
        ["evalserver", "storage", "clean"],
        ["evalserver", "db"],
        ["celery", "worker"],
    ):
        with pytest.raises(click.UsageError):
            evalserver_command(bad)


def test_compose_runs_the_needed_services_with_real_commands() -> None:
    services = compose()["services"]
    assert services.keys() >= NEEDED
    ours = vl12_services()
    commands = {name: evalserver_command(s["command"]).name for name, s in ours.items()}
    assert commands == {
        "api": "api", "worker": "worker", "sweeper": "sweeper", "migrate": "upgrade",
        "cleanup": "cleanup",
    }
    known = settings_names()
    for name, service in ours.items():
        env = service["environment"]
        assert set(env) <= known, (name, set(env) - known)
        # Every process reads the same database, broker and storage.
        assert env["VL12_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["VL12_BROKER_URL"].startswith("redis://redis:")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--host" in ours["api"]["command"]  # reachable from outside its container


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_run_real_commands(unit: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].startswith("/")  # systemd wants an absolute path
    evalserver_command(argv)
    environment = parser["Service"].get("Environment")
    if environment:
        names = {item.split("=", 1)[0] for item in shlex.split(environment)}
        assert names <= settings_names()


def test_the_systemd_environment_file_names_only_settings() -> None:
    lines = (DEPLOY / "systemd" / "vl12.env").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert {"VL12_DATABASE_URL", "VL12_BROKER_URL", "VL12_STORAGE_URL"} <= names
    assert names <= settings_names()
