"""Helpers shared by the benchmark scripts: fresh-process timing and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"

_CHILD = """
import resource, sys, time
t0 = time.perf_counter()
{body}
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("__BENCH__", dt, rss * 1024, file=sys.stderr)
"""


def fresh_process(body: str) -> dict[str, float]:
    """Run ``body`` in a new Python; return its wall time (inside) and peak RSS in bytes."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(body=body)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    total = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("__BENCH__")][-1]
    _, seconds, rss = line.split()
    return {"seconds": float(seconds), "peak_rss_bytes": float(rss), "process_seconds": total}


def report(name: str, figures: dict[str, object]) -> None:
    print(json.dumps({"benchmark": name, **figures}, indent=2, sort_keys=True))
