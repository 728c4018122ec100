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
    for task in history[-1]["scores"]:
        ax.plot(
            steps, [h["scores"].get(task, float("nan")) for h in history], marker="o", label=task
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel("primary metric on val_split (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
