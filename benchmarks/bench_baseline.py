"""The baseline's loader against its model: is reading ever the bottleneck?

    .venv/bin/python benchmarks/bench_baseline.py FILE.h5 [--tasks all] [--batches 20]

FILE must hold region features for every universe (the README's main job writes one). Per
task, on its training split, batches of ``--batch-size``:

- ``loader``: examples/s of what ``baseline train`` does per batch, in its process: read
  examples in the run's seeded order and encode them into tensors (tokens, regions,
  candidates, targets);
- ``dataloader_0`` / ``dataloader_2``: examples/s of ``UnifiedDataset`` + ``collate``
  through a torch ``DataLoader`` (shuffled) with 0 and 2 worker processes (the reader alone,
  no encoding);
- ``train``: examples/s the default model consumes (forward, backward, optimizer step) on
  that task alone, ``--threads`` CPU threads;
- ``loader_over_train``: how many times faster the loader is than the model.

Also the default model's parameter count and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch.utils.data import DataLoader

from baselines.model import parameter_count
from baselines.train import TrainConfig, Trainer
from benchmarks._common import report
from unify import tasks
from unify.batching import collate
from unify.dataset import UnifiedDataset


def rate(fn: Callable[[], object], batches: int, size: int) -> float:
    fn()  # warm: columns loaded, first batch
    t0 = time.perf_counter()
    for _ in range(batches):
        fn()
    return batches * size / (time.perf_counter() - t0)


def read_batch(trainer: Trainer, task: str, size: int) -> object:
    """One batch as ``baseline train`` makes it: seeded order, read, encode."""
    return trainer.encoder.batch(trainer.streams[task].take(size), trainer.infos[0])


def dataloader_rate(data: Path, task: str, workers: int, batches: int, size: int) -> float:
    split = tasks.get(task).train_splits[0]
    ds = UnifiedDataset(data, task, split, features="auto", targets=True)
    ds.preload()
    loader = DataLoader(
        ds, batch_size=size, shuffle=True, num_workers=workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    n, t0 = 0, None
    for i, batch in enumerate(loader):
        if i == 0:
            t0 = time.perf_counter()  # from the first batch on: workers started
            continue
        n += len(batch["id"])
        if i >= batches:
            break
    return n / (time.perf_counter() - t0) if t0 and n else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    chosen = list(tasks.task_names()) if args.tasks == "all" else args.tasks.split(",")
    per_task = {}
    params = 0
    with tempfile.TemporaryDirectory() as tmp:
        for task in chosen:
            cfg = TrainConfig(
                tasks=[task], max_steps=10**6, validate=False, threads=args.threads,
                batch_size=args.batch_size,
            )  # fmt: skip
            trainer = Trainer(args.data, Path(tmp) / task, cfg)
            size = args.batch_size
            loader = rate(partial(read_batch, trainer, task, size), args.batches, size)
            train = rate(trainer.train_step, args.batches, size)
            params = max(params, parameter_count(trainer.model))
            per_task[task] = {
                "loader": round(loader),
                "dataloader_0": round(dataloader_rate(args.data, task, 0, args.batches, size)),
                "dataloader_2": round(dataloader_rate(args.data, task, 2, args.batches, size)),
                "train": round(train),
                "loader_over_train": round(loader / train, 1),
            }
            print(task, per_task[task], file=sys.stderr, flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report(
        "baseline",
        {
            "per_task": per_task,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "single_task_parameters_max": params,
            "peak_rss_mb": round(rss / 2**20),
        },
    )


if __name__ == "__main__":
    main()
