"""What every scorer returns, and the float helpers that keep official arithmetic exact.

A leaderboard stores a ``Result`` next to the submission: a small summary (the task's
leaderboard columns, the per-type breakdowns a participant needs to understand them), the
scorer version that produced it and what it was scored against (task, phase and its splits,
the benchmark fingerprint of the unified file), so that a changed rule or a rebuilt
benchmark can be detected and re-scored instead of silently mixed in.

Per-example figures (each question's accuracy, each caption's rank) are arrays kept apart
from the summary in ``per_example``, aligned with the ground truth's example order and its
``example_ids``: confidence intervals and subset scores (seen/unseen, per source) are
computed from them later, and the summary never grows with the split.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unify.errors import DataError
from unify.writer import atomic_output

__all__ = ["RESULT_FORMAT", "Result", "jsonable", "percent", "sequential_sum"]

#: Written into a saved result; ``Result.load`` refuses any other.
RESULT_FORMAT = "vl12-result-1"


@dataclass(frozen=True, eq=False)
class Result:
    """The outcome of one scoring run.

    ``metrics`` holds the leaderboard columns (floats); ``details`` holds breakdowns (per
    answer type, per split, per fold, ...) that are too nested to rank by, never one entry
    per example. ``primary`` names the metric that orders the leaderboard and
    ``higher_is_better`` its direction; ``lower_is_better`` lists the other metrics whose
    direction is reversed (median rank, chi-square distance), so a server never guesses a
    column's direction.

    ``per_example`` holds 1-D arrays aligned with the ground truth's example order (and with
    ``example_ids`` when set), at least ``score``: the example's contribution to the primary
    metric in [0, 1] (NaN for an example the rule does not score).

    What it was scored against is filled by ``score_validated`` (a scorer called directly
    knows only the ground-truth object): ``task``, ``phase`` and its ``splits``, the
    unified file's ``fingerprint`` (None for a file built before fingerprints), and
    ``absent``: the task's leaderboard columns this run could not report, with the reason.
    """

    metrics: dict[str, float]
    details: dict[str, Any]
    version: str
    primary: str
    higher_is_better: bool = True
    lower_is_better: tuple[str, ...] = field(default=())
    per_example: Mapping[str, np.ndarray] = field(default_factory=dict)
    example_ids: np.ndarray | None = field(default=None, kw_only=True)
    task: str | None = field(default=None, kw_only=True)
    phase: str | None = field(default=None, kw_only=True)
    splits: tuple[str, ...] = field(default=(), kw_only=True)
    fingerprint: str | None = field(default=None, kw_only=True)
    absent: Mapping[str, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        if self.primary not in self.metrics:
            raise ValueError(f"primary metric {self.primary!r} is not among the metrics")
        lengths = {name: np.shape(values) for name, values in self.per_example.items()}
        if any(len(shape) != 1 for shape in lengths.values()):
            raise ValueError(f"per_example arrays must be 1-D, got shapes {lengths}")
        sizes = {shape[0] for shape in lengths.values()}
        if self.example_ids is not None:
            sizes.add(len(self.example_ids))
        if len(sizes) > 1:
            raise ValueError(f"per_example arrays and example_ids differ in length: {lengths}")

    @property
    def num_examples(self) -> int | None:
        """Examples the per-example arrays cover (None when there are none)."""
        for values in self.per_example.values():
            return len(values)
        return None if self.example_ids is None else len(self.example_ids)

    def replace(self, **changes: Any) -> Result:
        """A copy with ``changes`` (the context ``score_validated`` adds)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The summary, JSON-ready (numpy scalars become Python numbers): never per-example
        data, so its size does not grow with the split."""
        return jsonable(
            {
                "task": self.task,
                "phase": self.phase,
                "splits": list(self.splits),
                "fingerprint": self.fingerprint,
                "version": self.version,
                "primary": self.primary,
                "higher_is_better": self.higher_is_better,
                "lower_is_better": list(self.lower_is_better),
                "metrics": self.metrics,
                "absent": dict(self.absent),
                "details": self.details,
                "num_examples": self.num_examples,
            }
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the summary and the per-example arrays to one ``.npz`` (atomically).

        The summary is JSON inside the archive (``Result.load`` restores it exactly,
        floats included: JSON keeps every bit of a float64); the arrays are stored as they
        are, without pickle.
        """
        summary = self.to_dict() | {"format": RESULT_FORMAT}
        arrays: dict[str, np.ndarray] = {"summary": json_array(summary)}
        if self.example_ids is not None:
            arrays["example_ids"] = plain_array(self.example_ids)
        for name, values in self.per_example.items():
            arrays[f"per_example__{name}"] = plain_array(values)
        return save_arrays(Path(path), arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Result:
        """A result written by ``save``; a ``DataError`` naming the file otherwise."""
        arrays = load_arrays(Path(path), RESULT_FORMAT, "saved result")
        summary = json.loads(arrays.pop("summary").tobytes())
        per_example = {
            name.removeprefix("per_example__"): values
            for name, values in arrays.items()
            if name.startswith("per_example__")
        }
        return cls(
            summary["metrics"],
            summary["details"],
            summary["version"],
            summary["primary"],
            summary["higher_is_better"],
            tuple(summary["lower_is_better"]),
            per_example,
            example_ids=arrays.get("example_ids"),
            task=summary["task"],
            phase=summary["phase"],
            splits=tuple(summary["splits"]),
            fingerprint=summary["fingerprint"],
            absent=summary["absent"],
        )


def plain_array(values: Any) -> np.ndarray:
    """An array ``np.load(allow_pickle=False)`` can read back: object strings become str."""
    array = np.asarray(values)
    if array.dtype == object:
        array = array.astype(str)
    return array


def json_array(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(jsonable(value)).encode(), dtype=np.uint8)


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez`` (uncompressed: a score matrix would take seconds to deflate) to a
    temporary file renamed over ``path`` when complete; the name is kept as given."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_arrays(path: Path, expected_format: str, what: str) -> dict[str, np.ndarray]:
    """Every array of an archive written by ``save_arrays``, its format checked."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as a {what} ({exc})") from None
    key = "summary" if "summary" in arrays else "meta"
    try:
        header = json.loads(arrays[key].tobytes())
        found = header.get("format")
    except (KeyError, ValueError, AttributeError):
        found = None
    if found != expected_format:
        raise DataError(f"{path}: not a {what} (format {found!r}, expected {expected_format!r})")
    return arrays


def jsonable(value: Any) -> Any:
    """Convert numpy types inside nested dicts/lists so ``json.dumps`` accepts them."""
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else str(jsonable(k))): jsonable(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def sequential_sum(values: Iterable[float] | np.ndarray) -> float:
    """Left-to-right float sum, as Python <= 3.11 ``sum()`` computes it.

    The official scorers sum floats with the builtin ``sum``; from Python 3.12 the builtin
    uses compensated summation, which can change the last bit and, after rounding to two
    decimals, occasionally the reported figure. Summing explicitly left to right keeps the
    scorers equal to the official outputs whatever interpreter runs them. ``np.cumsum`` is
    a strictly sequential scan, so it gives the same bits as the Python loop, fast.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return 0.0
    return float(np.cumsum(array)[-1])


def percent(count: int | float, total: int) -> float:
    """100 * count / total as the reference scripts write it; NaN when nothing is scored."""
    if total == 0:
        return float("nan")
    return 100.0 * float(count) / total
