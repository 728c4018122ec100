"""Reader throughput per task: random access, with features, block iteration, IterableDataset.

Targets (docs/benchmarks.md, full-scale build, one process): >= 10,000 random examples/s
for every task without features, >= 5,000/s with the sample's region features.

    .venv/bin/python benchmarks/bench_reader.py FILE [--features FEATURED] [--n 20000]
    .venv/bin/python benchmarks/bench_reader.py --dim2048      # 36 x 2048 features, tiny scale

Each task runs in a fresh process (memory is that process's), on its training split (the
largest). Per task:

- ``load``: seconds to the first example (every column of the split loaded into memory),
  ``cache_mb`` (bytes of the in-memory columns) and ``rss_mb`` (resident memory growth);
- ``random``: examples/s over ``n`` uniformly random rows (warm), no features, no targets;
- ``random_targets``: the same with ``targets=True``;
- ``random_features``: ``features="auto"`` and targets, on FEATURED (a copy of FILE with
  feature sets for every universe the task uses), after one untimed pass over the same
  rows (so the features read are in the page cache: the reader's cost, not the disk's);
- ``collate``: random examples with features and targets batched by 256 with ``collate``;
- ``blocks``: block iteration (``iter(view)``) over up to ``5 n`` examples;
- ``iterable``: ``UnifiedIterableDataset`` (block-shuffled, targets, one process) over
  ``n`` examples; ``iterable_start_s``: its seconds to the first example.

Iteration rates are counted from the first example on (opening and decoding the image keys
once is ``iterable_start_s``).

``--memory TASK``: bytes of the split's strings packed against as Python ``str`` objects,
and the private memory of two DataLoader workers after 40 batches, when each loads the
columns itself and when the parent preloaded them (shared copy-on-write after fork).

``--baseline-reader OLD.py`` times random access (ms per example) through another version
of unify/reader.py, e.g. ``git show 04f27f7:unify/reader.py > /tmp/old_reader.py``.

``--dim2048`` writes (once, cached under .bench-cache/reader) the tiny sample, a TSV of
36 boxes x 2048 dims for each of its COCO images, imports it, and measures vqa2 random
access with those features.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import CACHE, ROOT
from unify import tasks
from unify.reader import UnifiedFile

BATCH = 256


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else float("inf")


def split_of(path: Path, task: str) -> str:
    spec = tasks.get(task)
    with UnifiedFile(path) as uf:
        have = uf.splits(task)
    for name in spec.train_splits:
        if name in have:
            return name
    return have[0]


def measure(path: Path, featured: Path | None, task: str, n: int, seed: int = 0) -> dict[str, Any]:
    """Every measure for one task (run in a fresh process by ``main``)."""
    split = split_of(path, task)
    out: dict[str, Any] = {"task": task, "split": split}
    rng = np.random.default_rng(seed)
    with UnifiedFile(path) as uf:
        view = uf.split(task, split)
        size = len(view)
        out["examples"] = size
        rows = rng.integers(0, size, n).tolist()
        rss0, t0 = _rss(), time.perf_counter()
        view.example(rows[0])
        out["load_s"] = round(time.perf_counter() - t0, 2)
        out["cache_mb"] = round(view.memory_bytes / 1e6, 1)
        out["rss_mb"] = round((_rss() - rss0) / 1e6, 1)
        t0 = time.perf_counter()
        for i in rows:
            view.example(i)
        out["random"] = _rate(n, time.perf_counter() - t0)

        tview = uf.split(task, split, targets=True, cache=view._cache)
        tview.example(rows[0])
        t0 = time.perf_counter()
        for i in rows:
            tview.example(i)
        out["random_targets"] = _rate(n, time.perf_counter() - t0)

        out["blocks"] = _steady(view.iter_blocks(_blocks(min(size, 5 * n))), 5 * n)[0]

    from unify.batching import UnifiedIterableDataset

    ds = UnifiedIterableDataset(path, task, split, targets=True)
    out["iterable"], out["iterable_start_s"] = _steady(iter(ds), n)

    if featured is not None:
        out.update(_with_features(featured, task, split, rows))
    return out


def _steady(examples: Iterator[Any], n: int) -> tuple[float, float]:
    """(examples/s after the first, seconds to the first: opening, keys, targets bound)."""
    t0 = time.perf_counter()
    next(examples)
    t1, count = time.perf_counter(), 0
    for _ in examples:
        count += 1
        if count == n:
            break
    return _rate(count, time.perf_counter() - t1), round(t1 - t0, 2)


def _blocks(m: int, block: int = 4096) -> Iterator[tuple[int, int]]:
    return ((a, min(m, a + block)) for a in range(0, m, block))


def _with_features(path: Path, task: str, split: str, rows: list[int]) -> dict[str, Any]:
    from unify.batching import collate

    out: dict[str, Any] = {}
    with UnifiedFile(path) as uf:
        try:
            view = uf.split(task, split, "auto", targets=True)
        except Exception as exc:  # reported, not fatal: the table says why
            return {"random_features": f"error: {exc}"}
        view.preload()
        for i in rows:  # warm-up: the rows' features into the page cache (reported warm)
            view.example(i)
        t0 = time.perf_counter()
        for i in rows:
            view.example(i)
        out["random_features"] = _rate(len(rows), time.perf_counter() - t0)
        t0 = time.perf_counter()
        for a in range(0, len(rows), BATCH):
            collate([view.example(i) for i in rows[a : a + BATCH]])
        out["collate"] = _rate(len(rows), time.perf_counter() - t0)
        out["feature_dim"] = view._features.sets[0].dim if view._features else None
    return out


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = (
    "task",
    "split",
    "examples",
    "load_s",
    "cache_mb",
    "rss_mb",
    "random",
    "random_targets",
    "random_features",
    "collate",
    "blocks",
    "iterable",
    "iterable_start_s",
)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        cells = [r.get(c, "") for c in COLUMNS]
        lines.append(
            "| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in cells) + " |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- 36 x 2048 features
DIM, BOXES = 2048, 36


def dim2048(n: int) -> dict[str, Any]:
    """vqa2 random access with 36 x 2048 float16 features per image (tiny-scale build)."""
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.features import import_features
    from unify.sample.features_format import RegionRow, write_tsv
    from unify.sample.world import generate

    base = CACHE / "reader"
    h5 = base / "tiny-2048.h5"
    if not h5.exists():
        raw = base / "raw"
        if not (raw / "vqa2").exists():
            generate(raw, scale="tiny", seed=0, features=False)
        run_build(raw, base / "tiny.h5", BuildOptions(tasks=resolve_tasks((), True), all=True))
        with UnifiedFile(base / "tiny.h5") as uf:
            coco = [str(k).split(":", 1)[1] for k in uf.image_keys if str(k).startswith("coco:")]

        def rows() -> Iterator[RegionRow]:
            rng = np.random.default_rng(0)
            for image_id in coco:
                xy = rng.uniform(0, 400, size=(BOXES, 2)).astype(np.float32)
                boxes = np.concatenate([xy, xy + 50], axis=1)
                yield RegionRow(image_id, 640, 480, boxes, rng.random((BOXES, DIM), np.float32))

        tsv = write_tsv(base / "coco-2048.tsv", rows())
        import_features(base / "tiny.h5", [tsv], "bottomup_coco", "coco")
        tsv.unlink()
        (base / "tiny.h5").rename(h5)
    from unify.batching import collate

    out: dict[str, Any] = {"file": str(h5)}
    with UnifiedFile(h5) as uf:
        fs = uf.feature_set("bottomup_coco")
        out["images"], out["feature_mb"] = len(fs.offsets) - 1, round(fs.features.ds.nbytes / 1e6)
        view = uf.split("vqa2", "trainval", "auto", targets=True)
        rows = np.random.default_rng(0).integers(0, len(view), n).tolist()
        for i in rows:  # warm-up, as above
            view.example(i)
        t0 = time.perf_counter()
        for i in rows:
            view.example(i)
        out["random_features"] = _rate(n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for a in range(0, n, BATCH):
            collate([view.example(i) for i in rows[a : a + BATCH]])
        out["collate"] = _rate(n, time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------- another reader
def baseline(path: Path, reader_file: Path, tasks_: list[str], n: int) -> dict[str, Any]:
    """Random access through another version of unify/reader.py (e.g. from ``git show``):
    milliseconds per example, each task's training split."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("baseline_reader", reader_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_reader"] = module
    spec.loader.exec_module(module)
    out: dict[str, Any] = {}
    with module.UnifiedFile(path) as uf:
        for task in tasks_:
            view = uf.split(task, split_of(path, task))
            rows = np.random.default_rng(0).integers(0, len(view), n).tolist()
            view.example(rows[0])
            t0 = time.perf_counter()
            for i in rows:
                view.example(i)
            out[task] = round((time.perf_counter() - t0) / n * 1e3, 2)
    return out


# ------------------------------------------------------------------------------- memory
def _private_mb(pid: int) -> float:
    """Memory only this process holds (private pages: what copy-on-write did not share)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return round(total / 1e6, 1)


def memory(path: Path, task: str, batches: int = 40) -> dict[str, Any]:
    """Packed strings against Python strings; DataLoader workers with and without preload."""
    from torch.utils.data import DataLoader, RandomSampler

    from unify.batching import collate
    from unify.columns import PackedStrings
    from unify.dataset import UnifiedDataset

    split = split_of(path, task)
    out: dict[str, Any] = {"task": task, "split": split}
    with UnifiedFile(path) as uf:
        view = uf.split(task, split).preload()
        packed = python = 0
        for name in view.selected:
            column = view.cached(name)
            values = getattr(column, "values", None)
            arrays = values.values() if isinstance(values, dict) else [values]
            for v in arrays:
                if isinstance(v, PackedStrings):
                    packed += v.nbytes
                    strings = v.strings(0, len(v.offsets) - 1)
                    python += sum(sys.getsizeof(x) + 8 for x in strings)  # object + pointer
        out["strings_packed_mb"] = round(packed / 1e6, 1)
        out["strings_as_python_mb"] = round(python / 1e6, 1)
        out["cache_mb"] = round(view.memory_bytes / 1e6, 1)
    for preload in (False, True):
        ds = UnifiedDataset(path, task, split)
        if preload:
            ds.preload()
        sampler = RandomSampler(ds, num_samples=batches * 256 * 2)
        loader = DataLoader(ds, batch_size=256, sampler=sampler, num_workers=2, collate_fn=collate)
        it = iter(loader)
        for _ in range(batches):
            next(it)
        pids = [w.pid for w in it._workers]  # the two worker processes
        key = "workers_private_mb_" + ("preloaded" if preload else "each_loads")
        out[key] = [_private_mb(pid) for pid in pids]
        del it, loader
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--features", type=Path, help="a copy of FILE with feature sets")
    parser.add_argument("--tasks", nargs="*", default=list(tasks.task_names()))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one task, JSON out
    parser.add_argument("--dim2048", action="store_true")
    parser.add_argument("--memory", metavar="TASK", help="strings and DataLoader-worker memory")
    parser.add_argument("--baseline-reader", type=Path, help="ms/example through this reader.py")
    args = parser.parse_args()
    if args.dim2048:
        print(json.dumps({"benchmark": "reader_36x2048", **dim2048(args.n)}, indent=2))
        return
    if args.file is None:
        parser.error("FILE is required (or --dim2048)")
    if args.baseline_reader:
        ms = baseline(args.file, args.baseline_reader, args.tasks, args.n)
        print(json.dumps({"benchmark": "reader_baseline_ms_per_example", **ms}))
        return
    if args.memory:
        print(json.dumps({"benchmark": "reader_memory", **memory(args.file, args.memory)}))
        return
    if args.one:
        print(json.dumps(measure(args.file, args.features, args.one, args.n)))
        return
    results = []
    for task in args.tasks:
        extra = ["--features", str(args.features)] if args.features else []
        results.append(_child([str(args.file), "--one", task, "--n", str(args.n), *extra]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
