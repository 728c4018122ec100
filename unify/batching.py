"""Batches for torch: a collate function for every task, and a block-reading IterableDataset.

``collate`` turns a list of examples of one task (``UnifiedDataset`` items) into a batch.
The rule is by type, never by the data, so every batch of a task has the same structure:

- numbers (``int``, ``float``, ``bool``) -> a tensor ``[B]``;
- ``str`` -> a list of ``str``; ``None`` -> a list;
- a list of ``str`` (VQA answers, an image pair's keys) -> a list of lists;
- a list of numbers (a fixed-shape row: ``bbox``, ``candidate_boxes``, an image pair's
  rows) -> a tensor ``[B, ...]``; rows of different shapes are an error;
- a ragged row, i.e. a dict holding numpy arrays (``regions``, ``objects``, ``dialogue``,
  ``targets``, region ``features``, a ``vqa_soft`` target) -> the same dict with every
  array padded to the batch's longest row (``[B, L, ...]``, zeros) and a ``mask``
  (bool ``[B, L]``); arrays of strings become lists of lists; other keys recurse;
- a bare numpy array (a numeric ragged column with one value array) -> ``{"values",
  "mask"}`` padded the same way;
- a list of ragged rows (an image pair's region features) -> the dict with a pair axis:
  ``[B, 2, L, ...]`` and ``mask`` ``[B, 2, L]``.

``UnifiedIterableDataset`` reads whole epochs in blocks: the blocks of a split are shuffled
with a seed (and the rows within each block), then dealt to DataLoader workers (and
distributed ranks) so that each example is read exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from unify.reader import FeatureRequest, MissingFeatures, UnifiedFile

__all__ = ["UnifiedIterableDataset", "block_order", "collate", "dense_soft_scores"]

MASK = "mask"


def collate(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A batch of examples of one task (see the module docstring for the rules)."""
    if not examples:
        raise ValueError("collate: empty batch")
    tasks = {ex.get("task") for ex in examples}
    if len(tasks) > 1:
        raise ValueError(
            f"collate: one batch mixes tasks {sorted(map(str, tasks))}; batch each task "
            "apart (one DataLoader or batch sampler per task)"
        )
    return _collate_dict(examples, "")


def _collate_dict(rows: Sequence[dict[str, Any]], where: str) -> dict[str, Any]:
    keys = list(rows[0])
    for r in rows:
        if list(r) != keys:
            raise ValueError(
                f"collate: {where or 'examples'} have different keys: {keys} / {list(r)}"
            )
    return {k: _collate([r[k] for r in rows], f"{where}{k}") for k in keys}


def _collate(values: list[Any], where: str) -> Any:
    first = values[0]
    if any(v is None for v in values):  # e.g. features=None (missing_features="none")
        return list(values)
    if isinstance(first, dict):
        if any(isinstance(v, np.ndarray) for v in first.values()):
            return _pad_rows(values, where)
        return _collate_dict(values, where + ".")
    if isinstance(first, np.ndarray):
        return _pad_rows([{"values": v} for v in values], where)
    if isinstance(first, bool | int | float | np.number | np.bool_):
        return torch.as_tensor(np.asarray(values))
    if isinstance(first, str):
        return list(values)
    if isinstance(first, list | tuple):
        if not first or isinstance(first[0], str):
            return [list(v) for v in values]
        if isinstance(first[0], dict | type(None)):
            return _pad_pairs(values, where)
        try:
            return torch.as_tensor(np.asarray(values))
        except ValueError:
            shapes = sorted({np.shape(v) for v in values})
            raise ValueError(
                f"collate: {where} has rows of different shapes {shapes[:3]}; a fixed-shape "
                "field was expected (ragged fields are dicts of arrays)"
            ) from None
    raise TypeError(f"collate: {where}: cannot batch a {type(first).__name__}")


def _pad_rows(rows: Sequence[dict[str, Any]], where: str) -> dict[str, Any]:
    """Dicts of per-row arrays sharing a first axis -> padded tensors and a mask."""
    if MASK in rows[0]:
        raise ValueError(f"collate: {where} already has a key {MASK!r}")
    arrays = [k for k, v in rows[0].items() if isinstance(v, np.ndarray)]
    lengths = np.asarray([len(r[arrays[0]]) for r in rows], dtype=np.int64)
    longest = int(lengths.max(initial=0))
    out: dict[str, Any] = {}
    for k, v0 in rows[0].items():
        if not isinstance(v0, np.ndarray):
            out[k] = _collate([r[k] for r in rows], f"{where}.{k}")
        elif v0.dtype == object:
            out[k] = [r[k].tolist() for r in rows]
        else:
            padded = np.zeros((len(rows), longest, *v0.shape[1:]), dtype=v0.dtype)
            for j, r in enumerate(rows):
                values = r[k]
                if len(values) != lengths[j]:
                    raise ValueError(
                        f"collate: {where}.{k} of row {j} has {len(values)} values, "
                        f"{arrays[0]} has {lengths[j]}"
                    )
                padded[j, : len(values)] = values
            out[k] = torch.from_numpy(padded)
    out[MASK] = torch.from_numpy(np.arange(longest)[None, :] < lengths[:, None])
    return out


def _pad_pairs(values: list[Any], where: str) -> dict[str, Any]:
    """Lists of k ragged rows (an image pair's features) -> one padded dict, pair axis 1."""
    width = len(values[0])
    if any(len(v) != width for v in values):
        raise ValueError(f"collate: {where} has lists of different lengths")
    flat = [row for v in values for row in v]
    if any(row is None for row in flat):
        return [list(v) for v in values]  # missing features (missing_features="none")
    batch = _pad_rows(flat, where)
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            batch[k] = v.reshape(len(values), width, *v.shape[1:])
        else:
            batch[k] = [v[j * width : (j + 1) * width] for j in range(len(values))]
    return batch


def dense_soft_scores(target: dict[str, Any]) -> torch.Tensor:
    """A collated ``vqa_soft`` target as dense scores ``[B, num_classes]`` (for BCE)."""
    labels, scores, mask = target["labels"], target["scores"], target[MASK]
    num = int(target["num_classes"][0]) if len(target["num_classes"]) else 0
    dense = torch.zeros(labels.shape[0], num, dtype=scores.dtype)
    dense.scatter_(1, torch.where(mask, labels, 0), torch.where(mask, scores, 0))
    return dense


# ----------------------------------------------------------------------- iterable dataset
def block_order(
    num_examples: int, block: int, seed: int, epoch: int, shuffle: bool = True
) -> list[tuple[int, int]]:
    """The epoch's blocks ``(start, stop)``, shuffled with ``(seed, epoch)``."""
    blocks = [(a, min(num_examples, a + block)) for a in range(0, num_examples, block)]
    if shuffle:
        rng = np.random.default_rng([seed, epoch])
        blocks = [blocks[i] for i in rng.permutation(len(blocks))]
    return blocks


class UnifiedIterableDataset(IterableDataset):
    """Whole epochs of one split, read in blocks (one HDF5 read per column and block).

    Block-shuffled: the order of blocks and of rows within a block is drawn from
    ``(seed, epoch)``; call ``set_epoch`` before each epoch (as with a DistributedSampler).
    Blocks are dealt round-robin to the ``world_size * num_workers`` readers, so each
    example is read once per epoch; readers may get a few examples more than others.
    Opens the file in the reading process only (nothing HDF5 crosses a fork).
    """

    def __init__(
        self,
        path: Path | str,
        task: str,
        split: str,
        *,
        features: FeatureRequest = None,
        targets: bool = False,
        select: Sequence[str] | None = None,
        missing_features: MissingFeatures = "error",
        transform: Callable[[dict[str, Any]], Any] | None = None,
        block: int = 1024,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        chunk_cache_bytes: int | None = None,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.path = Path(path)
        self.task, self.split = task, split
        self.features, self.targets, self.select = features, targets, select
        self.missing_features = missing_features
        self.transform = transform
        self.block, self.shuffle, self.seed = block, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.chunk_cache_bytes = chunk_cache_bytes
        self.epoch = 0
        # Validate now (features, names) with a short-lived handle, not in a worker later.
        with self._open() as uf:
            self._length = uf.split(task, split, **self._split_options()).num_examples

    def _open(self) -> UnifiedFile:
        return UnifiedFile(self.path, chunk_cache_bytes=self.chunk_cache_bytes)

    def _split_options(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "targets": self.targets,
            "select": self.select,
            "missing_features": self.missing_features,
            "cache": False,
        }

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._length

    def shard(self) -> tuple[int, int]:
        """(this reader's index, number of readers) over ranks and DataLoader workers."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[Any]:
        index, readers = self.shard()
        blocks = block_order(self._length, self.block, self.seed, self.epoch, self.shuffle)
        mine = blocks[index::readers]
        order = None
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 1 + index])

            def order(start: int, stop: int) -> Sequence[int]:
                return (start + rng.permutation(stop - start)).tolist()

        with self._open() as uf:
            view = uf.split(self.task, self.split, **self._split_options())
            for ex in view.iter_blocks(mine, order):
                yield self.transform(ex) if self.transform else ex
