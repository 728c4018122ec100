"""A ``torch.utils.data.Dataset`` over one task/split of a unified file.

HDF5 handles must not cross a fork: each DataLoader worker opens the file itself, lazily,
on its first ``__getitem__`` (never in ``__init__``), and reopens if it finds itself in a
new process. The columns a process has loaded into memory (``unify.columns``) are plain
numpy, so they *do* cross a fork: call ``preload()`` in the parent and forked workers share
them copy-on-write instead of each loading its own copy. Pickling (spawn-based workers)
drops both.

Batch with ``unify.batching.collate`` (``DataLoader(ds, batch_size=..., collate_fn=collate)``):
torch's default collate cannot batch ragged fields.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from unify.columns import ColumnCache
from unify.reader import FeatureRequest, MissingFeatures, SplitView, UnifiedFile
from unify.targets import adapter_for


class UnifiedDataset(Dataset):
    """Examples of ``task``/``split`` as dicts, optionally passed through ``transform``.

    ``features``: ``None``, ``"auto"`` (the set of each image's universe), a set name or a
    list of names; ``targets``: add ``example["target"]`` (``unify.targets``); ``select``:
    the columns to carry (``id`` and ``image`` always); ``cache``: keep columns in memory
    (default; ``False`` reads HDF5 per example); ``chunk_cache_bytes``: HDF5 chunk cache of
    each dataset (region features). Feature choices are checked here, at construction, with
    a short-lived handle, so a mistake fails in the main process, not in a worker.
    """

    def __init__(
        self,
        path: Path | str,
        task: str,
        split: str,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        features: FeatureRequest = None,
        *,
        targets: bool = False,
        select: Sequence[str] | None = None,
        cache: bool = True,
        missing_features: MissingFeatures = "error",
        chunk_cache_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.task = task
        self.split = split
        self.transform = transform
        self.features = features
        self.targets = targets
        self.select = select
        self.cache = cache
        self.missing_features = missing_features
        self.chunk_cache_bytes = chunk_cache_bytes
        self._view: SplitView | None = None
        self._file: UnifiedFile | None = None
        self._pid: int | None = None
        self._columns: ColumnCache | None = None
        # A short-lived handle, closed at once: nothing open is inherited by workers.
        with UnifiedFile(self.path) as uf:
            options = {**self._options(False), "targets": False}  # bound per process
            self._length = uf.split(task, split, **options).num_examples
        if targets:
            adapter_for(task)  # an unknown adapter fails here, not in a worker

    def _options(self, cache: bool | ColumnCache) -> dict[str, Any]:
        return {
            "features": self.features,
            "targets": self.targets,
            "select": self.select,
            "cache": cache,
            "missing_features": self.missing_features,
        }

    def __len__(self) -> int:
        return self._length

    def _split(self) -> SplitView:
        pid = os.getpid()
        if self._view is None or self._pid != pid:
            if self._columns is None and self.cache:
                self._columns = ColumnCache()
            self._file = UnifiedFile(self.path, chunk_cache_bytes=self.chunk_cache_bytes)
            cache = self._columns if self._columns is not None else False
            self._view = self._file.split(self.task, self.split, **self._options(cache))
            self._pid = pid
        return self._view

    def preload(self) -> UnifiedDataset:
        """Load the columns now, so that forked workers share them (copy-on-write)."""
        self._split().preload()
        return self

    @property
    def memory_bytes(self) -> int:
        """Bytes of columns held in memory by this process."""
        return self._columns.nbytes if self._columns is not None else 0

    def __getitem__(self, index: int) -> Any:
        example = self._split().example(int(index))
        return self.transform(example) if self.transform else example

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_view=None, _file=None, _pid=None, _columns=None)
        return state
