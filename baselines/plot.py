"""The per-task validation curves of a run, as a PNG next to its metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def curves_png(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    steps = [h["step"] for h in history]
    colors = plt.get_cmap("tab20").colors  # one colour per task up to 20
    for i, task in enumerate(history[-1]["scores"]):
        values = [h["scores"].get(task, float("nan")) for h in history]
        ax.plot(steps, values, marker="o", label=task, color=colors[i % len(colors)])
    ax.set_xlabel("iteration")
    ax.set_ylabel("primary metric on val_split (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
