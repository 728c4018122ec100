"""The README's main job, end to end (slow): the first ``sh`` block of README.md, read from
the file (``tests/readme.py``) and run as written in a temp folder, except the install (this
venv's Python runs the same commands) and a free ``--port`` (8000 may be taken here).

The last step, ``evalserver demo``, serves until stopped: the test waits for the URL it
prints, reads the benchmark's page (the baseline-marked entry and the chance entry, both
with scores on every task), then stops it with SIGTERM to its process group and checks that
it exits cleanly and that no process it started is left. Then the whole command again: it
must train, predict and submit nothing and leave the same entries (no duplicate).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from evalserver.demo import DEMO_TEAM, ENTRIES, RUN_RECORD, TOKEN_FILE
from tests.readme import demo_step, setup_command, steps
from unify import tasks

ROOT = Path(__file__).resolve().parents[2]
MODULES = {"unify": "unify.cli", "evalserver": "evalserver.cli"}
#: The first run trains for the README's time budget, predicts and scores 2 x 12 entries.
URL_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 90.0


def _env() -> dict[str, str]:
    """This venv's Python on this checkout; no VL12_* setting of the caller's (the demo's
    data dir must hold its database and broker)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (no psutil in the venv)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree = _children()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Served:
    """``evalserver demo`` running in its own session; its stdout read line by line."""

    proc: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    started: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.put(line)

    def url(self) -> str:
        """The leaderboard's URL, once printed (every entry is scored by then)."""
        deadline = time.monotonic() + URL_TIMEOUT_S
        while time.monotonic() < deadline:
            self.started |= _descendants(self.proc.pid)
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                assert self.proc.poll() is None, f"demo ended (exit {self.proc.returncode})"
                continue
            match = re.match(r"leaderboard: (http://\S+)", line)
            if match:
                self.started |= _descendants(self.proc.pid)
                return match.group(1)
        raise AssertionError(f"no leaderboard URL after {URL_TIMEOUT_S:g} s")

    def stop(self) -> int | None:
        """SIGTERM to its process group; its exit status (None: it had to be killed).
        Whatever it started and left is killed, by pid, and reported by ``left``."""
        self.started |= _descendants(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            status: int | None = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            status = None
        return status

    def left(self) -> list[int]:
        """Processes it started still running (each is then killed, by pid)."""
        deadline = time.monotonic() + 5.0
        alive = [p for p in self.started if _alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in alive if _alive(p)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return alive


def _run_steps(where: Path, attempt: int) -> tuple[list[str], Path]:
    """Run the README's steps before the demo; the demo's argv (with a free port)."""
    command = setup_command()
    for program, args in steps(command)[:-1]:
        done = subprocess.run([sys.executable, "-m", MODULES[program], *args], cwd=where,
                              env=_env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"run {attempt}: {program} {args}: {done.stderr[-3000:]}"
    argv = [sys.executable, "-m", MODULES["evalserver"], *demo_step(command),
            "--port", str(_free_port())]
    return argv, where / f"demo-{attempt}.log"


@pytest.fixture
def demo_runs(tmp_path: Path) -> Iterator[list[Served]]:
    """The demo processes of the test, each stopped (SIGTERM, by its group) at the end,
    pass or fail."""
    runs: list[Served] = []
    try:
        yield runs
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.stop()
            run.left()


def _start(argv: list[str], cwd: Path, log: Path, runs: list[Served]) -> Served:
    with log.open("w") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)
    run = Served(proc, log)
    runs.append(run)
    return run


def _cells(html: str) -> dict[str, list[str]]:
    """Method -> the cells (tags stripped) of its row in the benchmark board ``#multi``."""
    body = html.split('id="multi"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    rows: dict[str, list[str]] = {}
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        if len(cells) > 3:
            assert cells[2] not in rows, f"two rows for {cells[2]!r}"
            rows[cells[2]] = cells
    return rows


def _check_served(url: str, where: Path) -> list[dict[str, Any]]:
    """The page shows both entries with a score on every task; the API lists one
    submission per (method, task, phase), all scored. The team's submissions."""
    token_file = where / "vl12-data" / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    base = url.split("/b/", 1)[0]
    with httpx.Client(timeout=60) as client:
        page = client.get(url)
        assert page.status_code == 200, page.text[:500]
        mine = client.get(f"{base}/api/v1/submissions", params={"limit": 500},
                          headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text[:500]
    rows = _cells(page.text)
    by_method = {e.method: e for e in ENTRIES}
    assert set(rows) == set(by_method), rows.keys()
    submissions = mine.json()
    boards = {(s["task"], s["phase"]) for s in submissions}
    assert len(boards) >= 2 and all(p == tasks.get(t).default_phase for t, p in boards)
    for method, cells in rows.items():
        entry = by_method[method]
        assert cells[1].startswith(DEMO_TEAM)
        assert ("baseline" in cells[1]) == entry.baseline, cells[1]
        assert re.fullmatch(r"\d+\.\d+", cells[3]), cells  # a complete row's average
        scores = [c for c in cells[4:] if re.match(r"\d+\.\d+", c)]
        assert len(scores) >= len(boards), cells  # every task's column (and the groups)
        assert "—" not in cells[3:], cells
        assert any("±" in c for c in cells), cells  # the intervals came with the scores
    keys = [(s["method_name"], s["task"], s["phase"]) for s in submissions]
    assert len(keys) == len(set(keys)) == len(ENTRIES) * len(boards)
    for sub in submissions:
        assert sub["status"] == "scored", sub
        assert sub["baseline"] == by_method[sub["method_name"]].baseline, sub
    return submissions


@pytest.mark.slow
def test_the_readme_main_job_serves_both_entries_and_runs_again_without_duplicates(
    tmp_path: Path, demo_runs: list[Served]
) -> None:
    where = tmp_path / "work"
    where.mkdir()
    ids: list[set[str]] = []
    for attempt in (1, 2):
        argv, log = _run_steps(where, attempt)
        run = _start(argv, where, log, demo_runs)
        try:
            url = run.url()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/b/vl12-sample/1", url), url
            submissions = _check_served(url, where)
            ids.append({s["id"] for s in submissions})
        except BaseException:
            print(log.read_text()[-20000:])
            raise
        finally:
            status = run.stop()
            left = run.left()
        assert status == 0, f"run {attempt}: exit {status}\n{log.read_text()[-5000:]}"
        assert left == [], f"run {attempt}: processes left running: {left}"
        assert len(run.started) >= 3  # the API, the worker, the sweeper were seen
    assert ids[0] == ids[1]  # the same entries: nothing submitted twice
    second = (where / "demo-2.log").read_text()
    assert "$ baseline" not in second, second[-3000:]  # nothing trained or predicted again
    assert '"state": "finished"' in (where / "vl12-run" / RUN_RECORD).read_text()
