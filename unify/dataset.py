"""A ``torch.utils.data.Dataset`` over one task/split of a unified file.

HDF5 handles must not cross a fork: each DataLoader worker opens the file itself, lazily,
on its first ``__getitem__`` (never in ``__init__``), and reopens if it finds itself in a
new process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
from torch.utils.data import Dataset

from unify.reader import SplitView, UnifiedFile
from unify.schema import TASKS


class UnifiedDataset(Dataset):
    """Examples of ``task``/``split`` as dicts, optionally passed through ``transform``."""

    def __init__(
        self,
        path: Path | str,
        task: str,
        split: str,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        features: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.task = task
        self.split = split
        self.transform = transform
        self.features = features
        self._view: SplitView | None = None
        self._file: UnifiedFile | None = None
        self._pid: int | None = None
        self._length: int | None = None

    def __len__(self) -> int:
        if self._length is None:
            # A short-lived handle, closed at once: nothing open is inherited by workers.
            with h5py.File(self.path, "r") as f:
                self._length = int(f[TASKS][self.task][self.split].attrs["num_examples"])
        return self._length

    def _split(self) -> SplitView:
        pid = os.getpid()
        if self._view is None or self._pid != pid:
            self._file = UnifiedFile(self.path)
            self._view = self._file.split(self.task, self.split, self.features)
            self._pid = pid
        return self._view

    def __getitem__(self, index: int) -> Any:
        example = self._split().example(int(index))
        return self.transform(example) if self.transform else example

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_view=None, _file=None, _pid=None)
        return state
