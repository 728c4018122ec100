"""Memory and time of `evalserver score` on hostile and on big legitimate prediction files.

Claim measured (docs/metrics.md, "Limits"): reading a prediction file is bounded, so the
memory and time of ``evalserver score`` stay proportional to the file's size on disk: a
hostile file (gzip or NPZ bomb, a huge declared shape, deep nesting, millions of empty
records or lines, garbage) is refused with a message in about the time it takes to read
it, in a process not much bigger than an idle one; the largest legitimate file (a COCO 5k
score matrix, 25,010 x 5,000 float32, 477 MiB) is scored within the default limits.

Every input runs in a FRESH process running the command in-process (``evalserver score
--data FILE.h5 --task TASK PREDICTIONS``): its wall time (ground truth loading included)
and its peak RSS (``ru_maxrss``; the interpreter, numpy and h5py alone take about 60 MiB).
Hostile files are scored against the tiny sample; the legitimate big ones against a
unified file holding COCO and VQA v2 at their real sizes (``unify sample --scale full``
for those two tasks, built once into the cache folder; a few minutes).

    .venv/bin/python benchmarks/bench_hostile_predictions.py            # everything
    .venv/bin/python benchmarks/bench_hostile_predictions.py --no-full  # hostile files only
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import CACHE, ROOT
from tests.evalserver import hostile as H

_CHILD = """
import contextlib, io, resource, sys, time
t0 = time.perf_counter()
from evalserver.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
        main({args!r}, standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code
seconds = time.perf_counter() - t0
# VmHWM: this process's own peak (ru_maxrss would include the parent's pages before exec).
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss = int(hwm[0].split()[1]) * 1024 if hwm else maxrss * 1024
lines = err.getvalue().splitlines()
message = (lines[1].strip() if len(lines) > 1 else "")[:150]
print("__RESULT__", seconds, rss, code, message, file=sys.stderr)
"""


@dataclass
class Bench:
    """Runs inputs through the ``evalserver`` of ``code`` (this checkout, or another one to
    compare) and keeps one row per input."""

    code: Path
    rows: list[tuple[str, str, int, float, float, int, str]] = field(default_factory=list)

    def run(self, name: str, task: str, h5: Path, upload: Path, *options: str) -> None:
        """One fresh process running ``evalserver score`` on ``upload`` in-process: its wall
        time (imports excluded, ground truth loading included), peak RSS and outcome."""
        args = ["score", "--data", str(h5), "--task", task, *options, str(upload)]
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD.format(args=args)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.code,
            env={**os.environ, "PYTHONPATH": str(self.code)},
        )
        line = next((x for x in proc.stderr.splitlines() if x.startswith("__RESULT__")), None)
        if line is None:  # a crash: exactly what must never happen
            size, code = upload.stat().st_size, proc.returncode
            self.rows.append((name, task, size, 0.0, 0.0, code, "CRASH"))
            print(f"{name:<52} CRASHED (exit {code}): {proc.stderr[-500:]}", flush=True)
            return
        _, seconds, rss, code, message = line.split(" ", 4)
        size = upload.stat().st_size
        self.rows.append((name, task, size, float(seconds), float(rss), int(code), message))
        print(
            f"{name:<52} {size / 2**20:9.1f} MiB {float(seconds):7.2f} s "
            f"{float(rss) / 2**20:7.0f} MiB  exit {code}  {message[:100]}",
            flush=True,
        )


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def build(raw: Path, out: Path, names: tuple[str, ...], scale: str) -> Path:
    """A unified file of ``names`` from the generated sample (cached by name and scale)."""
    from unify import tasks
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.sample.world import generate

    if out.exists():
        return out
    generate(raw, scale=scale, seed=0, features=False, tasks=[tasks.get(n) for n in names])
    options = BuildOptions(tasks=resolve_tasks(names, False), all=False)
    run_build(raw, out, options)
    return out


def hostile(bench: Bench, tmp: Path, tiny: Path) -> None:
    from evalserver.metrics import load_groundtruth
    from evalserver.metrics.chance import chance_submission

    vqa_sub = chance_submission(load_groundtruth(tiny, "vqa2"))
    cases: list[tuple[str, str, Callable[[], bytes]]] = [
        ("gzip bomb: 4 MiB -> 4 GiB of zeros", "vqa2", lambda: H.zeros_gzip(4 << 30)),
        ("gzip bomb: 1 MiB -> 1 GiB of zeros", "vqa2", lambda: H.zeros_gzip(1 << 30)),
        (
            "npz bomb: 1 MiB deflated -> 1.1 GiB",
            "coco_retrieval",
            lambda: H.npz_zeros_bomb(1100 << 20),
        ),
        ("npz declaring a 3 GiB member", "coco_retrieval", lambda: H.npz_declaring(3 << 30)),
        ("npz header declaring (1e6, 1e6) float64", "coco_retrieval", H.npz_huge_shape),
        ("deep nesting: 64 MiB of '['", "vqa2", lambda: b"[" * (64 << 20)),
        ("67M empty records: [{},{},...] (200 MiB)", "vqa2", lambda: _empty_records(200 << 20)),
        ("100M numbers: [0,0,...] (200 MiB)", "vqa2", lambda: b"[" + b"0," * (100 << 20) + b"0]"),
        (
            "a valid file's records x 1000 (123 MiB)",
            "vqa2",
            lambda: orjson.dumps(orjson.loads(vqa_sub) * 1000),
        ),
        ("200M empty lines (200 MiB CSV)", "nlvr2", lambda: b"\n" * (200 << 20)),
        ("random bytes (100 MiB)", "vqa2", lambda: os.urandom(100 << 20)),
        ("the unified file itself (HDF5)", "vqa2", tiny.read_bytes),
        ("50,000 empty gzip members", "vqa2", lambda: H.gzip_members(50_000)),
    ]
    for name, task, content in cases:
        path = write(tmp, "upload", content())
        bench.run(name, task, tiny, path)
        path.unlink()


def _empty_records(size: int) -> bytes:
    count = (size - 2) // 3
    return b"[" + b"{}," * (count - 1) + b"{}]"


def legitimate(bench: Bench, tmp: Path, full: Path) -> None:
    from evalserver.metrics import load_groundtruth
    from evalserver.metrics import predictions as P
    from evalserver.metrics.chance import chance_submission

    rng = np.random.default_rng(0)
    coco = load_groundtruth(full, "coco_retrieval")
    n, m = len(coco.caption_ids), len(coco.image_ids)
    scores = rng.random((n, m), dtype=np.float32)
    matrix = P.write_score_matrix(coco.caption_ids, scores, image_ids=coco.image_ids)
    del scores
    path = write(tmp, "scores.npz", matrix)
    bench.run(f"COCO 5k score matrix {n:,} x {m:,} float32 (.npz)", "coco_retrieval", full, path)
    write(tmp, "scores.npz.gz", gzip.compress(matrix, compresslevel=1))
    del matrix
    bench.run("the same, gzip-compressed", "coco_retrieval", full, tmp / "scores.npz.gz")
    (tmp / "scores.npz.gz").unlink()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        scores=np.zeros((n, m), dtype=np.float32),
        caption_ids=coco.caption_ids,
        image_ids=coco.image_ids,
    )
    write(tmp, "zeros.npz", buffer.getvalue())
    name = "COCO 5k all-zero matrix, savez_compressed"
    bench.run(name, "coco_retrieval", full, tmp / "zeros.npz")
    (tmp / "zeros.npz").unlink()
    path.unlink()
    ranked = [rng.permutation(coco.image_ids)[:100] for _ in range(n)]
    write(tmp, "ranked.json", P.write_ranked_lists(coco.caption_ids, ranked))
    bench.run(
        f"COCO 5k ranked lists, top 100 x {n:,} (JSON)", "coco_retrieval", full, tmp / "ranked.json"
    )
    vqa = load_groundtruth(full, "vqa2", "trainval")
    sub = chance_submission(vqa)
    name = f"VQA v2 answers, {len(vqa.question_ids):,} (JSON; --phase trainval)"
    bench.run(name, "vqa2", full, write(tmp, "vqa.json", sub), "--phase", "trainval")
    write(tmp, "vqa.json.gz", gzip.compress(sub))
    bench.run("the same, gzip-compressed", "vqa2", full, tmp / "vqa.json.gz", "--phase", "trainval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="hostile files only")
    parser.add_argument("--no-hostile", action="store_true", help="legitimate files only")
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="checkout to measure (default: this one)"
    )
    options = parser.parse_args()
    bench = Bench(options.code.resolve())
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as folder:
        tmp = Path(folder)
        tiny = build(tmp / "tiny_raw", CACHE / "hostile-tiny.h5", _all_tasks(), "tiny")
        print(f"{'input':<52} {'size':>13} {'time':>9} {'peak RSS':>11}  outcome")
        idle = "a valid file (idle process: imports + ground truth)"
        bench.run(idle, "vqa2", tiny, _valid(tmp, tiny))
        if not options.no_hostile:
            hostile(bench, tmp, tiny)
        if not options.no_full:
            full = build(
                tmp / "full_raw", CACHE / "hostile-full.h5", ("coco_retrieval", "vqa2"), "full"
            )
            legitimate(bench, tmp, full)


def _all_tasks() -> tuple[str, ...]:
    from unify import tasks

    return tasks.task_names()


def _valid(tmp: Path, tiny: Path) -> Path:
    from evalserver.metrics import load_groundtruth
    from evalserver.metrics.chance import chance_submission

    return write(tmp, "valid.json", chance_submission(load_groundtruth(tiny, "vqa2")))


if __name__ == "__main__":
    main()
