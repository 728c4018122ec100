"""Statistics over per-example scores (pure numpy, no server imports): bootstrap intervals
and paired tests on resamples shared by every entry of a leaderboard."""

from evalserver.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    Design,
    Interval,
    board_seed,
    bootstrap,
    design_for,
    interval,
    paired_p_value,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "Design",
    "Interval",
    "board_seed",
    "bootstrap",
    "design_for",
    "interval",
    "paired_p_value",
]
