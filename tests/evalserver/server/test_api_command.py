"""``evalserver api`` as a real process: uvicorn runs ``create_app`` from the environment,
an upload over HTTP is validated in the spawned pool and queued, and SIGTERM stops it all
(the pool's processes included). Stopped by its pid, pass or fail."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evalserver.db.migrate import upgrade
from tests.evalserver.server.api_support import TASK, submission

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie or a vanished pid is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_the_api_command_serves_uploads_and_stops_on_sigterm(
    tmp_path: Path, tiny_h5: Path
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    env |= {
        "VL12_DATA_DIR": str(data),
        "VL12_BROKER_URL": f"sqla+sqlite:///{data / 'broker.db'}",
        "VL12_VALIDATION_PROCESSES": "1",
        "PYTHONPATH": str(REPO),
    }
    upgrade(f"sqlite:///{data / 'vl12.db'}")
    cli = [sys.executable, "-m", "evalserver.cli"]
    subprocess.run([*cli, "load", str(tiny_h5)], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [*cli, "team", "create", "alpha"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()

    port = _free_port()
    api = subprocess.Popen(
        [*cli, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    pool: set[int] = set()
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the API did not answer")
        answer = httpx.post(
            f"{url}/submissions",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("p.json", submission(tiny_h5, seed=1))},
            data={"task": TASK},
            timeout=120,
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "queued"
        pool = _children(api.pid)
        assert pool  # the validation process runs under the API
    finally:
        api.send_signal(signal.SIGTERM)
        try:
            output, _ = api.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()
            output, _ = api.communicate()
    # uvicorn shuts down cleanly, then re-raises the signal (exit by SIGTERM).
    assert api.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    left = {pid: _command(pid) for pid in pool}
    for _ in range(100):  # the resource tracker exits when it sees its pipe closed
        left = {pid: cmd for pid, cmd in left.items() if _alive(pid)}
        if not left:
            break
        time.sleep(0.1)
    assert not left
