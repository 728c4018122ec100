"""The process and client commands' refusals: an old schema, a server that is not there, a
missing token. Each is one line and an exit status, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evalserver.server.live import ROOT
from tests.evalserver.services import free_port


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "VL12_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin"}
    return subprocess.run([sys.executable, "-m", "evalserver.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", ["worker", "sweeper"])
def test_refuses_a_database_without_the_schema(tmp_path: Path, command: str) -> None:
    done = run(tmp_path, command)
    assert done.returncode == 1
    assert "evalserver db upgrade" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "vl12.db").exists()  # asking creates nothing


def test_client_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run(tmp_path, "status", "0" * 32, "--url", url)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach the server at {url}")
    assert "Traceback" not in done.stderr


def test_submit_needs_a_token_and_a_known_task(tmp_path: Path) -> None:
    predictions = tmp_path / "p.json"
    predictions.write_text("[]")
    no_token = run(tmp_path, "submit", "--task", "nlvr2", str(predictions))
    assert no_token.returncode == 2 and "token" in no_token.stderr
    unknown = run(tmp_path, "submit", "--task", "nope", str(predictions), "--token", "t")
    assert unknown.returncode == 2 and "nlvr2" in unknown.stderr  # lists the known tasks


def test_one_sweep_from_the_command_line(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    done = run(tmp_path, "sweeper", "--once")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "re-sent 0, reset 0, failed 0, unsent 0"


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(tmp_path, "serve", "--port", str(port))
    assert done.returncode == 1
    assert f"cannot serve on http://127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr and done.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing started, nothing made


def test_serve_in_an_unusable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = run(tmp_path, "serve", "--data-dir", str(tmp_path / "file" / "data"),
               "--port", str(free_port()))
    assert done.returncode == 1
    assert "cannot start in" in done.stderr and "Not a directory" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["worker", "sweeper"])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: str) -> None:
    url = f"postgresql+psycopg://vl12:secret@127.0.0.1:{free_port()}/vl12"
    env_run = subprocess.run(
        [sys.executable, "-m", "evalserver.cli", command],
        env={"PYTHONPATH": str(ROOT), "VL12_DATA_DIR": str(tmp_path), "PATH": "/usr/bin",
             "VL12_DATABASE_URL": url},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert env_run.returncode == 1
    assert "cannot reach the database postgresql+psycopg://vl12:***@127.0.0.1" in env_run.stderr
    assert "secret" not in env_run.stderr and "Traceback" not in env_run.stderr
