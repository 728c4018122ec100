"""Data-parallel training through ``torchrun``: every rank reads the same global batch (the
data order is seeded), keeps its equal share, and the gradients are averaged across ranks
before each optimizer step, so a step equals a one-process step on the global batch.
Decisions that must agree (stop-and-go, the time budget) are taken on rank 0 and
broadcast; only rank 0 validates, logs and writes checkpoints."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import distributed as dist


def init_from_env(device: str) -> None:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(size: int, rank: int, size_world: int) -> slice:
    """This rank's rows of a global batch; the batch must split evenly."""
    if size % size_world:
        raise ValueError(f"batch size {size} does not split over {size_world} processes")
    n = size // size_world
    return slice(rank * n, (rank + 1) * n)


def slice_batch(batch: dict[str, Any], rows: slice) -> dict[str, Any]:
    return {k: v[rows] for k, v in batch.items()}


def average_gradients(model: torch.nn.Module, size_world: int) -> None:
    if size_world == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= size_world


def mean_value(value: float, size_world: int) -> float:
    if size_world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]) / size_world


def from_rank0(obj: Any, size_world: int) -> Any:
    if size_world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
