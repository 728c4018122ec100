"""`unify build --all` at real scale: per dataset build vs plain parse, then the whole build.

Generates (once, cached under .bench-cache/full) the full-scale sample of all 12 datasets
with `unify sample --scale full` (the real sizes of datasets.md; region features of dim 16).
Then, each in a fresh process:
- per dataset: a plain parse of its raw files (json.load, pickle.load, gzip + JSON lines)
  and `unify build <task>` alone: seconds, ratio, peak RSS, output size;
- `unify build --all` (leakage cleaning included): wall time, peak RSS, output size, and
  the share of the leakage pass (from the file's build report timings);
- `unify leaks` on the built file.
Results are printed as JSON and written to .bench-cache/full-results.json.

    .venv/bin/python benchmarks/bench_build_all.py [--tasks vqa2,gqa] [--skip-per-task]
        [--raw DIR] [--runs N]

``--raw DIR`` uses a full-scale sample made elsewhere (``unify sample --scale full``)
instead of the cache; ``--runs N`` repeats the ``--all`` build N times (the machine may be
shared: give every run, not the best one).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import CACHE, fresh_process, report
from unify.reader import UnifiedFile
from unify.tasks import task_names

RAW = CACHE / "full"


def ensure_sample() -> None:
    marker = RAW / ".complete"
    if marker.exists():
        return
    tmp = CACHE / "full-tmp"
    print("generating the full-scale sample (once; several minutes)...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "unify.cli",
            "sample",
            "--out",
            str(tmp),
            "--scale",
            "full",
            "--feature-dim",
            "16",
            "--force",  # a run interrupted earlier may have left a partial folder
        ],
        check=True,
    )
    tmp.rename(RAW)
    marker.write_text("ok")


def parse_body(sources: list[str], raw: Path = RAW) -> str:
    """Python that parses the given raw files the plain way.

    The files are exactly those the build read (the unified file's ``sources``), so a
    build that also reads a shared link source (VG's image_data.json) is compared with a
    parse that reads it too.
    """
    lines = ["import gzip, json, pickle"]
    for f in (str(raw / s) for s in sources):
        if f.endswith(".p"):
            lines.append(f"pickle.load(open({f!r}, 'rb'))")
        elif f.endswith(".jsonl.gz"):
            lines.append(f"[json.loads(x) for x in gzip.open({f!r}, 'rt')]")
        elif f.endswith(".jsonl") or "/nlvr2/" in f:
            lines.append(f"[json.loads(x) for x in open({f!r})]")
        else:
            lines.append(f"json.load(open({f!r}))")
    return "\n".join(lines)


def build_body(tasks: list[str], out: Path, raw: Path = RAW) -> str:
    args = ["build", *tasks, "--raw", str(raw), "--out", str(out), "--force", "-q"]
    return f"from unify.cli import main\nmain({args!r}, standalone_mode=False)"


def cpu_seconds() -> float:
    """User + system CPU seconds of finished children: a measure that a busy (shared)
    machine inflates far less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default=",".join(task_names()))
    parser.add_argument("--skip-per-task", action="store_true")
    parser.add_argument("--raw", type=Path, default=None, help="a full-scale sample to reuse")
    parser.add_argument("--runs", type=int, default=1, help="times to run the --all build")
    args = parser.parse_args()
    raw = args.raw if args.raw is not None else RAW
    if args.raw is None:
        ensure_sample()
    CACHE.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"raw": str(raw)}
    per_task = {}
    if not args.skip_per_task:
        for task in args.tasks.split(","):
            out = CACHE / f"full-{task}.h5"
            cpu = cpu_seconds()
            build = fresh_process(build_body([task], out, raw))
            cpu = cpu_seconds() - cpu
            with UnifiedFile(out) as uf:
                sources = [s["path"] for s in uf.sources]
            parse = fresh_process(parse_body(sources, raw))
            per_task[task] = {
                "parse_seconds": round(parse["seconds"], 2),
                "build_seconds": round(build["seconds"], 2),
                "build_cpu_seconds": round(cpu, 2),
                "ratio": round(build["seconds"] / parse["seconds"], 2),
                "build_peak_rss_gb": round(build["peak_rss_bytes"] / 2**30, 2),
                "output_mb": round(out.stat().st_size / 1e6, 1),
                "files": sources,
            }
            out.unlink()
            print(task, per_task[task], file=sys.stderr)
        results["per_task"] = per_task
    out = CACHE / "full-all.h5"
    runs = []
    for _ in range(max(1, args.runs)):
        cpu = cpu_seconds()
        build = fresh_process(build_body(["--all"], out, raw))
        cpu = cpu_seconds() - cpu
        with UnifiedFile(out) as uf:
            timings = uf.build_report.get("timings", {})
        runs.append(
            {
                "seconds": round(build["seconds"], 1),
                "cpu_seconds": round(cpu, 1),
                "timings": timings,
            }
        )
        print("build --all", runs[-1], file=sys.stderr)

    with UnifiedFile(out) as uf:
        removed = uf.build_report.get("leakage", {}).get("removed", {})
        all_sources = [s["path"] for s in uf.sources]
    parse_all = fresh_process(parse_body(all_sources, raw))
    results["build_all"] = {
        "seconds": round(build["seconds"], 1),
        "all_runs_seconds": [r["seconds"] for r in runs],
        "all_runs_cpu_seconds": [r["cpu_seconds"] for r in runs],
        "peak_rss_gb": round(build["peak_rss_bytes"] / 2**30, 2),
        "parse_all_seconds": round(parse_all["seconds"], 1),
        "parse_all_peak_rss_gb": round(parse_all["peak_rss_bytes"] / 2**30, 2),
        "ratio_to_parse": round(build["seconds"] / parse_all["seconds"], 2),
        "output_gb": round(out.stat().st_size / 1e9, 2),
        "timings": timings,
        "all_runs_timings": [r["timings"] for r in runs],
        "leakage_share_percent": round(100 * timings.get("leakage", 0) / build["seconds"], 2)
        if timings
        else None,
        "removed": removed,
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "unify.cli", "leaks", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    results["leaks"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "exit_code": proc.returncode,
    }
    (CACHE / "full-results.json").write_text(json.dumps(results, indent=2))
    report("build_all_full", results)


if __name__ == "__main__":
    main()
