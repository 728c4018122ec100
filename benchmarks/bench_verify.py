"""What checking a unified file costs: on open, on a task's first use, `unify verify`, and
the checksums a build writes.

    .venv/bin/python benchmarks/bench_verify.py FILE [--repeat 5] [--skip-verify]

FILE is only read (a full-scale build: ``unify sample --scale full`` then ``unify build
--all``). Each measure runs in a fresh process:

- ``open``: ``h5py.File`` alone (what the reader did before the check: open and read one
  attribute) against ``UnifiedFile(FILE)`` (the structure check of ``unify.structure``);
  best of ``--repeat``, warm page cache;
- ``tasks``: the first-use check of each task (``task_problems``), summed over all;
- ``first_example``: ``UnifiedFile`` + ``split("vqa2", "minval").example(0)``, the
  reader's real open-to-use time, for scale;
- ``info`` / ``leaks``: the commands as `unify info` and `unify leaks` run them;
- ``verify``: `unify verify FILE` (reads every dataset once);
- ``stamp``: the digests a build computes from the values it writes, i.e.
  ``checksums.digest_values`` over every dataset's values held as the writer holds them
  (``str`` objects for strings), CPU seconds; reading them is not timed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fresh_process, report

OPEN = """
import h5py, time
from unify.reader import UnifiedFile
best_h5 = best_uf = 1e9
for _ in range({repeat}):
    t = time.perf_counter(); f = h5py.File({path!r}, "r"); f.attrs.get("schema_version")
    best_h5 = min(best_h5, time.perf_counter() - t); f.close()
    t = time.perf_counter(); uf = UnifiedFile({path!r})
    best_uf = min(best_uf, time.perf_counter() - t); uf.close()
print("__OUT__", best_h5, best_uf)
"""

TASKS = """
import h5py, time
from unify.structure import task_problems
best = 1e9
with h5py.File({path!r}, "r") as f:
    for _ in range({repeat}):
        t = time.perf_counter()
        for task in f["tasks"]:
            assert not task_problems(f, task)
        best = min(best, time.perf_counter() - t)
print("__OUT__", best)
"""

FIRST_EXAMPLE = """
import time
from unify.reader import UnifiedFile
t = time.perf_counter()
with UnifiedFile({path!r}) as uf:
    uf.split("vqa2", "minval").example(0)
print("__OUT__", time.perf_counter() - t)
"""

INFO = """
from unify.cli import describe
from unify.reader import UnifiedFile
with UnifiedFile({path!r}, checksums=True) as uf:
    describe(uf)
"""

LEAKS = """
from unify.leakage import check_file
from unify.reader import UnifiedFile
with UnifiedFile({path!r}, checksums=True) as uf:
    check_file(uf)
"""

VERIFY = """
from unify.verify import verify_file
report = verify_file({path!r})
assert report.ok, report.problems[:5]
"""

STAMP = """
import time, h5py
from unify.checksums import digest_values
spent = 0.0
def visit(name, ds):
    global spent
    if isinstance(ds, h5py.Dataset):
        string = h5py.check_string_dtype(ds.dtype) is not None
        values = ds.asstr()[()] if string else ds[()]
        t = time.process_time()
        digest_values(values, ds.dtype, ds.shape)
        spent += time.process_time() - t
with h5py.File({path!r}, "r") as f:
    f.visititems(visit)
print("__OUT__", spent)
"""


def _out(body: str) -> tuple[dict[str, float], list[float]]:
    """Run ``body`` fresh; its ``__OUT__`` numbers (printed to stdout) and the timing."""
    import subprocess

    from benchmarks._common import ROOT

    child = (
        "import resource, sys, time\nt0 = time.perf_counter()\n"
        + body
        + "\nprint('__BENCH__', time.perf_counter() - t0,"
        " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("__OUT__")][-1]
    bench = [ln for ln in proc.stderr.splitlines() if ln.startswith("__BENCH__")][-1].split()
    return {"seconds": float(bench[1]), "peak_rss_bytes": float(bench[2])}, [
        float(x) for x in line.split()[1:]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    path = str(args.file.resolve())
    fmt = {"path": path, "repeat": args.repeat}
    figures: dict[str, object] = {"file": path, "size_bytes": args.file.stat().st_size}
    _, (h5_open, uf_open) = _out(OPEN.format(**fmt))
    figures["open_h5py_ms"] = round(h5_open * 1000, 2)
    figures["open_unified_ms"] = round(uf_open * 1000, 2)
    _, (tasks,) = _out(TASKS.format(**fmt))
    figures["task_checks_all_tasks_ms"] = round(tasks * 1000, 1)
    _, (first,) = _out(FIRST_EXAMPLE.format(**fmt))
    figures["first_example_s"] = round(first, 3)
    figures["info_s"] = round(fresh_process(INFO.format(**fmt))["seconds"], 2)
    figures["leaks_s"] = round(fresh_process(LEAKS.format(**fmt))["seconds"], 2)
    _, (stamp,) = _out(STAMP.format(**fmt))
    figures["stamp_digests_s"] = round(stamp, 2)
    if not args.skip_verify:
        run = fresh_process(VERIFY.format(**fmt))
        figures["verify_s"] = round(run["seconds"], 1)
        figures["verify_peak_rss_mb"] = round(run["peak_rss_bytes"] / 2**20)
    report("verify", figures)


if __name__ == "__main__":
    main()
