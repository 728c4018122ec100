"""The embedded default end to end, as a user runs it: ``evalserver load`` and ``team
create``, ``evalserver serve`` (API, worker and sweeper as children), the client's
``submit --wait``, ``status`` and ``leaderboard``; then SIGTERM (or a SIGKILL of serve
itself) leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from evalserver.benchmarks import load_benchmark
from evalserver.db.migrate import upgrade
from evalserver.db.session import make_engine
from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.chance import chance_submission
from evalserver.settings import Settings
from evalserver.teams import create_team
from tests.evalserver.server.live import FAST, ROOT
from tests.evalserver.services import free_port

TASK = "nlvr2"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    env["PYTHONPATH"] = str(ROOT)
    env["VL12_DATA_DIR"] = str(data_dir)
    return env | FAST


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalserver.cli", *args], env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return left
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.env = _env(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "serve.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evalserver.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline()  # printed once the API answers
        assert self.url in line, (line, self.log.read_text())
        return line

    def stop(self) -> None:
        """Fallback cleanup: the serve process and its whole tree, by pid."""
        if self.proc is None:
            return
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def served(tmp_path: Path, tiny_h5: Path) -> Iterator[tuple[Served, str]]:
    data_dir = tmp_path / "data"
    server = Served(data_dir)
    # What `evalserver db upgrade`, `load` and `team create` do, in process (quicker).
    settings = Settings(data_dir=data_dir)
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with Session(engine) as session:
        load_benchmark(session, data_dir, tiny_h5, "tiny")
        token = create_team(session, "alpha")[1]
    engine.dispose()
    try:
        yield server, token
    finally:
        server.stop()


@pytest.mark.slow
def test_serve_scores_a_submission_and_stops_every_child(
    served: tuple[Served, str], tiny_h5: Path, tmp_path: Path
) -> None:
    server, token = served
    server.start()
    assert server.proc is not None
    tree = descendants(server.proc.pid)
    assert len(tree) >= 3  # api, worker, sweeper (and their own children)

    gt = load_groundtruth(tiny_h5, TASK)
    good = tmp_path / "good.json"
    good.write_bytes(chance_submission(gt, seed=7))
    client = {**server.env, "VL12_URL": server.url, "VL12_TOKEN": token}
    done = cli(client, "submit", "--task", TASK, str(good), "--method", "chance", "--wait",
               "--json")
    assert done.returncode == 0, done.stderr + server.log.read_text()
    row = json.loads(done.stdout)
    assert row["status"] == "scored" and row["attempts"] == 1
    assert row["metrics"] == score_file(TASK, gt, good.read_bytes()).metrics

    again = cli(client, "status", row["id"])
    assert again.returncode == 0 and "scored" in again.stdout

    board = cli(client, "leaderboard", "--task", TASK, "--csv")
    assert board.returncode == 0, board.stderr
    lines = board.stdout.splitlines()
    assert len(lines) == 2 and "alpha" in lines[1] and "chance" in lines[1]
    table = cli(client, "leaderboard", "--task", TASK)
    assert table.returncode == 0 and "alpha" in table.stdout

    bad = tmp_path / "bad.json"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    rejected = cli(client, "submit", "--task", TASK, str(bad))
    assert rejected.returncode == 1
    assert "problem" in rejected.stderr and "not stored" in rejected.stderr
    tree = descendants(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    assert wait_gone(tree, 10) == set(), server.log.read_text()


@pytest.mark.slow
def test_a_killed_serve_leaves_no_orphans(served: tuple[Served, str]) -> None:
    server, _ = served
    server.start()
    assert server.proc is not None
    tree = descendants(server.proc.pid)
    assert tree
    os.kill(server.proc.pid, signal.SIGKILL)  # no chance to stop its children itself
    server.proc.wait(10)
    assert wait_gone(tree, 30) == set()
