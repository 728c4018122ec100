"""The API's own memory while it receives uploads of 10, 100 and 500 MiB (figures:
docs/benchmarks.md, "Evaluation server: limits").

``evalserver api`` runs as its own process (one validation process, default limits); each
upload is streamed from a file on disk by httpx. The API's resident memory and that of its
validation process are sampled every 20 ms from ``/proc`` during each upload: the API's
must stay flat (it streams the body to disk), the validation process's grows with the file
(it reads it) and stays under ``VL12_VALIDATION_MEMORY_MB``. The uploads are JSON
whitespace around an empty list: received, hashed, read and parsed in full, then refused
(422: no prediction), the costliest path for a file of that size.

    python benchmarks/bench_api_memory.py [--mib 10 100 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api_upload import TASK, _build  # noqa: E402
from evalserver.benchmarks import load_benchmark  # noqa: E402
from evalserver.db.migrate import upgrade  # noqa: E402
from evalserver.db.session import make_engine, make_sessionmaker  # noqa: E402
from evalserver.metrics import load_groundtruth  # noqa: E402
from evalserver.metrics.chance import chance_submission  # noqa: E402
from evalserver.settings import Settings  # noqa: E402
from evalserver.teams import create_team  # noqa: E402
from tests.evalserver.services import free_port, wait_for_port  # noqa: E402

MiB = 1 << 20


def _status(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class Sampler:
    """Peak resident memory of the API process and of its children, while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.api = 0
        self.child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.api = max(self.api, _status(self.pid, "VmRSS"))
            for child in _children(self.pid):
                self.child = max(self.child, _status(child, "VmRSS"))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _whitespace_file(path: Path, mib: int) -> None:
    block = b" " * MiB
    with path.open("wb") as out:
        out.write(b"[")
        for _ in range(mib):
            out.write(block)
        out.write(b"]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[10, 100, 500])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unified = _build(root)
        data = root / "data"
        settings = Settings(data_dir=data)
        upgrade(settings.db_url)
        engine = make_engine(settings.db_url)
        with make_sessionmaker(engine)() as session:
            load_benchmark(session, data, unified, "tiny")
            token = create_team(session, "bench")[1]
        engine.dispose()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
        env |= {
            "VL12_DATA_DIR": str(data),
            "VL12_VALIDATION_PROCESSES": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "evalserver.cli", "api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        rows = []
        try:
            wait_for_port(port, timeout=120)
            url = f"http://127.0.0.1:{port}/api/v1/submissions"
            headers = {"Authorization": f"Bearer {token}"}

            def post(name: str, handle: object) -> httpx.Response:
                return httpx.post(
                    url,
                    headers=headers,
                    files={"file": (name, handle)},
                    data={"task": TASK},
                    timeout=1800,
                )

            warm = chance_submission(load_groundtruth(unified, TASK), seed=0)
            assert post("warm.json", warm).status_code == 201
            idle = _status(api.pid, "VmRSS")
            for mib in args.mib:
                path = root / f"{mib}.json"
                _whitespace_file(path, mib)
                with path.open("rb") as handle, Sampler(api.pid) as sampler:
                    started = time.perf_counter()
                    response = post(path.name, handle)
                    elapsed = time.perf_counter() - started
                path.unlink()
                rows.append(
                    {
                        "upload_mib": mib,
                        "answer": response.status_code,
                        "seconds": round(elapsed, 2),
                        "api_idle_rss_mib": round(idle / MiB, 1),
                        "api_peak_rss_mib": round(sampler.api / MiB, 1),
                        "validation_peak_rss_mib": round(sampler.child / MiB, 1),
                    }
                )
        finally:
            os.killpg(api.pid, 15)
            api.wait(30)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
