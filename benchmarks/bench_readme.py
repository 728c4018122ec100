"""The README's main job, timed (figures: docs/benchmarks.md).

The first ``sh`` block of README.md, read from the file (``tests/readme.py``), run as written
in a fresh temp folder, minus the install (this venv's Python runs the same commands) and
with a free ``--port``: each step's wall time, and for ``evalserver demo`` the moments its
milestones appear (training, predictions, the server up, the entries submitted, the
leaderboard's URL printed once all are scored); then SIGTERM and the time to a clean exit.
``--runs 2`` runs the whole command again in the same folder (the README's "running it again
adds nothing").

    python benchmarks/bench_readme.py --runs 2
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import report  # noqa: E402
from tests.readme import demo_step, setup_command, steps  # noqa: E402

MODULES = {"unify": "unify.cli", "evalserver": "evalserver.cli"}
#: stderr lines of ``evalserver demo`` whose first appearance is timed.
MILESTONES = {
    "train": re.compile(r"^\$ baseline train"),
    "predict": re.compile(r"^\$ baseline predict"),
    "server_up": re.compile(r"^vl12 evaluation server: "),
    "submitted": re.compile(r"^waiting for \d+ submission"),
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_once(where: Path, attempt: int) -> dict[str, object]:
    command = setup_command()
    figures: dict[str, object] = {}
    started = time.perf_counter()
    for program, args in steps(command)[:-1]:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", MODULES[program], *args], cwd=where, env=_env(),
                       check=True, capture_output=True)
        key = f"{program} {args[0]}" + (f" {args[1]}" if args[0] == "features" else "")
        figures[key] = round(float(figures.get(key, 0.0)) + time.perf_counter() - t0, 2)
    before_demo = time.perf_counter()
    argv = [sys.executable, "-m", MODULES["evalserver"], *demo_step(command),
            "--port", str(_free_port())]
    log = (where / f"demo-{attempt}.log").open("w")
    proc = subprocess.Popen(argv, cwd=where, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: dict[str, float] = {}

    def follow_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            for name, pattern in MILESTONES.items():
                if name not in seen and pattern.search(line):
                    seen[name] = time.perf_counter() - before_demo

    threading.Thread(target=follow_stderr, daemon=True).start()
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        if line.startswith("vl12 evaluation server: "):
            seen.setdefault("server_up", time.perf_counter() - before_demo)
        if line.startswith("leaderboard: "):
            url = line.split()[1]
            break
    at_url = time.perf_counter()
    try:
        if url is None:
            raise RuntimeError(f"demo ended without a URL (exit {proc.wait()}); see {log.name}")
    finally:
        t0 = time.perf_counter()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        status = proc.wait(120)
        stopped = time.perf_counter() - t0
    figures["demo: to the URL"] = round(at_url - before_demo, 2)
    figures["demo milestones (s after its start)"] = {k: round(v, 2) for k, v in seen.items()}
    figures["demo: SIGTERM to exit"] = round(stopped, 2)
    figures["demo exit status"] = status
    figures["whole command to the URL (no install)"] = round(at_url - started, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="Run there (kept) instead.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        runs = {f"run {i}": run_once(where, i) for i in range(1, args.runs + 1)}
    report("readme", {"cpus": os.cpu_count(), **runs})


if __name__ == "__main__":
    main()
