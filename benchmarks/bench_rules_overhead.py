"""What the raw field rules cost: `unify build --all` at real scale, one commit against another.

Issue 10 asks that the field rules (unify/rules.py, unify/rawio.py: types, ranges, uniqueness,
referential integrity, NUL/surrogate text checks, parser limits) make the full-scale build at
most 5% slower. This script builds the same full-scale raw folder with two checkouts of the
project, alternating A, B, A, B... in fresh processes, and reports wall time and CPU time
(user + system of the build process: a shared machine inflates wall time far more than CPU
time) per run and the ratio of medians.

    .venv/bin/python benchmarks/bench_rules_overhead.py --raw DIR \
        --before 7195a1c --after HEAD --runs 3

Each ref is checked out (detached) in a temporary git worktree; the build runs with that
checkout first on PYTHONPATH and this venv's packages. The raw folder is a full-scale sample
(`unify sample --scale full --feature-dim 16`); give the same one to both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(ref: str, where: Path) -> Path:
    path = where / ref.replace("/", "_")
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(path), ref], cwd=ROOT, check=True
    )
    return path


def build_once(code: Path, raw: Path, out: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "unify.cli", "build", "--all", "--raw", str(raw)]
    cmd += ["--out", str(out), "--force", "-q"]
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"build with {code} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--before", required=True, help="git ref without the rules")
    parser.add_argument("--after", default="HEAD", help="git ref with the rules")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vl12-ab-", dir=ROOT / ".bench-cache") as tmp:
        where = Path(tmp)
        codes = {"before": checkout(args.before, where), "after": checkout(args.after, where)}
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for i in range(args.runs):
                for side in ("before", "after"):
                    figures = build_once(codes[side], args.raw, where / f"{side}.h5")
                    runs[side].append(figures)
                    print(f"run {i + 1} {side}: {figures}", file=sys.stderr)
            summary = {
                side: {
                    "ref": getattr(args, side),
                    "median_wall_s": statistics.median(r["wall_s"] for r in rs),
                    "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
                    "runs": rs,
                }
                for side, rs in runs.items()
            }
            for key in ("median_wall_s", "median_cpu_s"):
                ratio = summary["after"][key] / summary["before"][key]
                summary[f"ratio_{key.removeprefix('median_')}"] = round(ratio, 3)
            print(json.dumps(summary, indent=2))
        finally:
            for code in codes.values():
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(code)], cwd=ROOT, check=False
                )


if __name__ == "__main__":
    main()
