"""Bootstrap intervals and paired tests of a leaderboard's primary metric.

Every entry of one (benchmark version, task, phase) is resampled with the SAME resamples:
the weights are drawn from a generator seeded by ``board_seed(fingerprint, task, phase)``,
so any worker regenerates them bit for bit, without storing them, and intervals and paired
tests of different entries are comparable.

The resampled unit is the one the metric is defined over (``Design``): examples (questions,
retrieval queries: each query's score was computed against the whole gallery, which stays
fixed), clusters of examples (nlvr2: a sentence and all its image pairs, the official
consistency unit), and within strata (refer tasks scored over several splits: each split is
resampled on its own, keeping its size). The statistic is the mean of the per-example
``score`` (``Result.per_example``, in [0, 1]; NaN: not scored by the rule) in percent.

Memory is bounded by a fixed chunk of resamples at a time: ``CHUNK`` x units draws.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHUNK",
    "DEFAULT_RESAMPLES",
    "Design",
    "Interval",
    "board_seed",
    "bootstrap",
    "design_for",
    "interval",
    "paired_p_value",
]

DEFAULT_RESAMPLES = 1000
#: Resamples drawn at once: 64 x 107,000 units is ~55 MB of int64 draws.
CHUNK = 64
LEVEL = 0.95


@dataclass(frozen=True, eq=False)
class Design:
    """Which unit each example belongs to (``cluster``: 0..k-1, one per example) and which
    stratum each unit is resampled within (``stratum``: one per unit)."""

    cluster: np.ndarray
    stratum: np.ndarray

    @property
    def n_units(self) -> int:
        return len(self.stratum)


def design_for(
    n: int, clusters: Sequence[Any] | np.ndarray | None = None,
    strata: Sequence[Any] | np.ndarray | None = None,
) -> Design:
    """The design of ``n`` examples: each its own unit unless ``clusters`` groups them
    (equal labels: one unit), resampled within ``strata`` (one label per example; a
    cluster must lie in one stratum)."""
    if clusters is None:
        cluster = np.arange(n, dtype=np.int64)
    else:
        labels = np.asarray(clusters)
        if labels.shape != (n,):
            raise ValueError(f"clusters: {labels.shape} labels for {n} examples")
        _, cluster = np.unique(labels, return_inverse=True)
        cluster = cluster.astype(np.int64)
    k = int(cluster.max()) + 1 if n else 0
    if strata is None:
        stratum = np.zeros(k, dtype=np.int64)
    else:
        labels = np.asarray(strata)
        if labels.shape != (n,):
            raise ValueError(f"strata: {labels.shape} labels for {n} examples")
        _, per_example = np.unique(labels, return_inverse=True)
        stratum = np.zeros(k, dtype=np.int64)
        stratum[cluster] = per_example
        if np.any(stratum[cluster] != per_example):
            raise ValueError("a cluster spans two strata")
    return Design(cluster, stratum)


def board_seed(fingerprint: str | None, task: str, phase: str) -> int:
    """The seed of one leaderboard's resamples: fixed, and the same on every worker."""
    text = f"vl12-bootstrap\0{fingerprint or ''}\0{task}\0{phase}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _draws(design: Design, seed: int, n_resamples: int) -> Iterator[np.ndarray]:
    """(chunk, units) int64: the units drawn in each resample (with replacement, each
    stratum keeping its size), in a fixed order for a given seed."""
    rng = np.random.default_rng(seed)
    strata = np.unique(design.stratum)
    members = [np.flatnonzero(design.stratum == s) for s in strata]
    done = 0
    while done < n_resamples:
        size = min(CHUNK, n_resamples - done)
        parts = []
        for units in members:
            draws = rng.integers(0, len(units), size=(size, len(units)))
            parts.append(draws if len(members) == 1 else units[draws])
        yield parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        done += size


def bootstrap(
    scores: Sequence[np.ndarray], design: Design, seed: int,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> np.ndarray:
    """(n_resamples, entries): the statistic of each entry's ``scores`` under each shared
    resample, in percent. NaN scores do not count (neither in sum nor in size)."""
    k = design.n_units
    sums = np.zeros((len(scores), k))
    sizes = np.zeros((len(scores), k))
    for j, values in enumerate(scores):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != design.cluster.shape:
            raise ValueError(f"entry {j}: {values.shape} scores for {design.cluster.shape}")
        valid = ~np.isnan(values)
        sums[j] = np.bincount(design.cluster[valid], values[valid], minlength=k)
        sizes[j] = np.bincount(design.cluster[valid], minlength=k)
    # One example per unit and none unscored: every resample has k examples.
    plain = [bool(np.all(sizes[j] == 1)) for j in range(len(scores))]
    out = np.empty((n_resamples, len(scores)))
    row = 0
    for draws in _draws(design, seed, n_resamples):
        end = row + len(draws)
        for j in range(len(scores)):
            total = sums[j][draws].sum(1)
            size = k if plain[j] else sizes[j][draws].sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[row:end, j] = 100.0 * total / size
        row = end
    return out


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def interval(resampled: np.ndarray, level: float = LEVEL) -> Interval:
    """The percentile interval of one entry's resampled statistic."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(resampled, [tail, 100 - tail])
    return Interval(float(low), float(high))


def paired_p_value(
    entry: np.ndarray, leader: np.ndarray, observed_entry: float, observed_leader: float
) -> float:
    """Two-sided paired bootstrap p-value of "the entry and the leader differ": the share
    of resampled differences, centred on the observed one, at least as far from it as the
    observed difference is from zero. Identical predictions give 1."""
    observed = observed_entry - observed_leader
    diffs = np.asarray(entry) - np.asarray(leader)
    diffs = diffs[~np.isnan(diffs)]
    tol = 1e-9 * max(1.0, abs(observed))
    extreme = int(np.count_nonzero(np.abs(diffs - observed) >= abs(observed) - tol))
    return min(1.0, (1 + extreme) / (1 + len(diffs)))
