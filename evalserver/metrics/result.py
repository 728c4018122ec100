"""What every scorer returns, and the float helpers that keep official arithmetic exact.

A leaderboard stores a ``Result`` next to the submission: the headline metrics, the
breakdowns a participant needs to understand them, and the scorer version that produced
them, so a changed rule can be detected and re-scored instead of silently mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Result", "jsonable", "percent", "sequential_sum"]


@dataclass(frozen=True, eq=False)
class Result:
    """The outcome of one scoring run.

    ``metrics`` holds the leaderboard columns (floats); ``details`` holds breakdowns (per
    answer type, per split, per question, ...) that are too many or too nested to rank by.
    ``primary`` names the metric that orders the leaderboard and ``higher_is_better`` its
    direction; ``lower_is_better`` lists the other metrics whose direction is reversed
    (median rank, chi-square distance), so a server never guesses a column's direction.
    ``per_example`` holds arrays aligned with the ground truth's example order (at least
    ``score``: the example's contribution to the primary metric), kept apart from the
    summary so that confidence intervals and subset scores never bloat ``details``.
    """

    metrics: dict[str, float]
    details: dict[str, Any]
    version: str
    primary: str
    higher_is_better: bool = True
    lower_is_better: tuple[str, ...] = field(default=())
    per_example: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary not in self.metrics:
            raise ValueError(f"primary metric {self.primary!r} is not among the metrics")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (numpy scalars and arrays become Python numbers and lists)."""
        return jsonable(
            {
                "version": self.version,
                "primary": self.primary,
                "higher_is_better": self.higher_is_better,
                "lower_is_better": list(self.lower_is_better),
                "metrics": self.metrics,
                "details": self.details,
            }
        )


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
