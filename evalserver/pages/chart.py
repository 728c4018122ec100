"""The SVG chart of a task board's top entries: the primary metric as a dot with its 95%
interval as a bar, drawn on the server (no script, no external asset). Every label is
escaped by the template that embeds the returned numbers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chart", "ChartBar", "chart"]

WIDTH = 360
ROW = 22
LEFT = 130
RIGHT = 50


@dataclass(frozen=True)
class ChartBar:
    label: str
    value: float
    text: str
    y: float
    x: float
    lo_x: float
    hi_x: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right_edge: int
    bars: list[ChartBar]
    lo: float
    hi: float


def chart(points: list[tuple[str, float, float | None, str]], top: int = 10) -> Chart | None:
    """``points``: (label, value, half-width or None, value as shown), best first."""
    points = points[:top]
    if not points:
        return None
    lows = [v - (h or 0.0) for _, v, h, _ in points]
    highs = [v + (h or 0.0) for _, v, h, _ in points]
    lo, hi = min(lows), max(highs)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    span = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return round(LEFT + (value - lo) / (hi - lo) * span, 1)

    bars = [
        ChartBar(label[:20], value, text, 14 + i * ROW, x(value), x(lows[i]), x(highs[i]))
        for i, (label, value, _, text) in enumerate(points)
    ]
    return Chart(WIDTH, 20 + len(points) * ROW, LEFT, WIDTH - RIGHT, bars, lo, hi)
