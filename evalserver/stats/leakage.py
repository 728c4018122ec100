"""Leakage-aware scores: the primary metric on the evaluation examples whose image is
"seen" (its identity group, ``/images/group``, also holds an image of some task's RAW
training split) and on the rest ("unseen"), with their counts.

Raw training = every split of role ``train`` plus ``mteval`` (the training examples a
cleaned build removed because they share an evaluation image's group): so a cleaned and an
uncleaned build of the same data give the same answer. An image pair is seen if either
image is; a retrieval query by its own image (the gallery is not the question).

Reads only the unified file (``unify.reader``); no server code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unify.reader import UnifiedFile
from unify.schema import IMAGES, MTEVAL_SPLIT

__all__ = ["SeenUnseen", "example_seen", "seen_unseen", "training_groups"]


def _groups(uf: UnifiedFile) -> np.ndarray:
    return np.asarray(uf.read(uf.h5[IMAGES]["group"]), dtype=np.int64)


def training_groups(uf: UnifiedFile) -> np.ndarray:
    """Sorted identity groups of every task's raw training images."""
    groups = _groups(uf)
    found: list[np.ndarray] = []
    for task in uf.tasks:
        for name in uf.splits(task):
            view = uf.split(task, name, select=[], cache=False)
            if view.role == "train" or name == MTEVAL_SPLIT:
                found.append(groups[np.asarray(view.column("image")).ravel()])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def example_seen(
    uf: UnifiedFile, task: str, splits: Sequence[str], example_ids: np.ndarray | None, n: int
) -> np.ndarray | None:
    """One bool per scored example (the ground truth's order): seen in raw training. By
    ``example_ids`` when the result has them, else by position over ``splits`` in order;
    None when neither lines up."""
    groups = _groups(uf)
    train = training_groups(uf)
    ids: list[np.ndarray] = []
    seen: list[np.ndarray] = []
    for name in splits:
        view = uf.split(task, name, select=[], cache=False)
        rows = np.asarray(view.column("image"))
        hit = np.isin(groups[rows], train)
        seen.append(hit.any(axis=1) if hit.ndim == 2 else hit)
        ids.append(np.asarray(view.column("id")).astype(str))
    all_seen = np.concatenate(seen) if seen else np.zeros(0, bool)
    if example_ids is not None and len(example_ids) == n:
        all_ids = np.concatenate(ids) if ids else np.zeros(0, str)
        order = np.argsort(all_ids, kind="stable")
        wanted = np.asarray(example_ids).astype(str)
        at = np.searchsorted(all_ids[order], wanted)
        at = np.minimum(at, len(order) - 1)
        if len(order) and np.all(all_ids[order][at] == wanted):
            return all_seen[order][at]
    return all_seen if len(all_seen) == n else None


@dataclass(frozen=True)
class SeenUnseen:
    seen: float | None
    unseen: float | None
    n_seen: int
    n_unseen: int

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "unseen": self.unseen, "n_seen": self.n_seen,
                "n_unseen": self.n_unseen}


def seen_unseen(scores: np.ndarray, seen: np.ndarray) -> SeenUnseen:
    """The mean score (percent) on seen and unseen examples; unscored (NaN) ones do not
    count."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = ~np.isnan(scores)

    def part(mask: np.ndarray) -> tuple[float | None, int]:
        chosen = scores[mask & valid]
        return (100.0 * float(chosen.mean()) if len(chosen) else None), len(chosen)

    s, n_s = part(seen)
    u, n_u = part(~seen)
    return SeenUnseen(s, u, n_s, n_u)
