"""What `unify doctor` costs next to the build it guards (it must not take longer).

    .venv/bin/python benchmarks/bench_doctor.py RAW [--repeat 3]

RAW is only read (e.g. ``unify sample --out RAW --scale small``). Each measure runs in a
fresh process, best of ``--repeat``: ``doctor`` is `unify doctor` over every task (every
file read through and hashed), ``build`` is `unify build --all` of the same folder into a
temporary file. Prints one JSON record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fresh_process

DOCTOR = """
from pathlib import Path
from unify.doctor import diagnose, exit_code
from unify.tasks import task_names
reports = diagnose(Path({raw!r}), task_names())
assert exit_code(reports, strict=False) == 0, [r for r in reports if r.is_error]
"""

BUILD = """
from pathlib import Path
from unify.build import BuildOptions, resolve_tasks, run_build
run_build(Path({raw!r}), Path({out!r}), BuildOptions(tasks=resolve_tasks((), True), all=True))
"""


def best(body: str, repeat: int) -> dict[str, float]:
    runs = [fresh_process(body) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw = str(args.raw.resolve())
    size = sum(p.stat().st_size for p in args.raw.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        build = best(BUILD.format(raw=raw, out=str(Path(tmp) / "out.h5")), args.repeat)
    doctor = best(DOCTOR.format(raw=raw), args.repeat)
    record = {
        "raw_bytes": size,
        "doctor_seconds": round(doctor["seconds"], 2),
        "doctor_peak_rss_mb": round(doctor["peak_rss_bytes"] / 2**20),
        "build_seconds": round(build["seconds"], 2),
        "build_peak_rss_mb": round(build["peak_rss_bytes"] / 2**20),
        "doctor_over_build": round(doctor["seconds"] / build["seconds"], 3),
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
