"""Data-parallel training through ``torchrun``: every rank reads the same global batch (the
data order is seeded), keeps its equal share, and ``DistributedDataParallel`` averages the
gradients across ranks during the backward pass, so a step equals a one-process step on
the global batch. Decisions that must agree (stop-and-go, the time budget) are taken on
rank 0 and broadcast; only rank 0 validates, logs and writes checkpoints (of the unwrapped
model, so resume and predict do not care how many processes trained)."""

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


def finish() -> None:
    """Leave the process group (if this process joined one), so ranks exit cleanly."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


def wrap(step: torch.nn.Module, size_world: int) -> torch.nn.Module:
    """``step`` in ``DistributedDataParallel`` when there are several processes (itself
    otherwise). ``find_unused_parameters``: a round-robin step leaves the heads of tasks
    that do not train in it (stop-and-go) without gradients; DDP then leaves those
    gradients unset on every rank, as a one-process step does. No ``device_ids``: the model
    moves its inputs to its device itself (one device per process)."""
    if size_world == 1:
        return step
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(step, find_unused_parameters=True)


def mean_values(values: torch.Tensor, size_world: int) -> torch.Tensor:
    """The mean over ranks of a float64 tensor (one all-reduce)."""
    if size_world == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / size_world


def from_rank0(obj: Any, size_world: int) -> Any:
    if size_world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
