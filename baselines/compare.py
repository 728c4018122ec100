"""12-in-1's headline comparison on whatever file it is given: one multi-task model
against single-task models, each single-task model seeing as many examples of its task as
the multi-task run fed it (same batch size, as many of its batches)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from baselines.train import TrainConfig, Trainer
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_level
from unify import tasks as task_specs
from unify.reader import UnifiedFile


def chance_on_val(data: Path, task: str) -> float:
    with UnifiedFile(data) as uf:
        gt = load_groundtruth(uf, task, task_specs.get(task).val_split)
        return float(chance_level(gt).percent)


def compare(data: Path, out: Path, cfg: TrainConfig, progress: bool = False) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    multi = Trainer(data, out / "multi", cfg).run(progress=progress)
    rows = []
    single_params = 0
    for task in cfg.tasks:
        steps = max(1, multi["seen"][task] // cfg.batch_of(task))
        single_cfg = replace(cfg, tasks=[task], max_steps=steps, time_budget=0.0)
        single = Trainer(data, out / f"single-{task}", single_cfg).run(progress=progress)
        single_params += single["parameters"]
        rows.append(
            {
                "task": task,
                "metric": task_specs.get(task).primary,
                "split": task_specs.get(task).val_split,
                "examples": multi["seen"][task],
                "chance": chance_on_val(data, task),
                "single": single["validation"][task],
                "multi": multi["validation"][task],
            }
        )
    n = len(rows)
    summary = {
        "tasks": rows,
        "average": {k: sum(r[k] for r in rows) / n for k in ("chance", "single", "multi")},
        "parameters": {"multi": multi["parameters"], "single_total": single_params},
        "multi_steps": multi["steps"],
        "multi_seconds": multi["seconds"],
        "multi_validation_seconds": multi["validation_seconds"],
        "multi_examples_per_second": multi["examples_per_second"],
    }
    _write(out / "compare.json", json.dumps(summary, indent=2))
    _write(out / "compare.md", markdown(summary))
    return summary


def markdown(s: dict[str, Any]) -> str:
    lines = [
        "| task | metric (val split) | examples seen | chance | single-task | multi-task "
        "| multi - single |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in s["tasks"]:
        lines.append(
            f"| {r['task']} | {r['metric']} ({r['split']}) | {r['examples']} | {r['chance']:.2f} "
            f"| {r['single']:.2f} | {r['multi']:.2f} | {r['multi'] - r['single']:+.2f} |"
        )
    a = s["average"]
    lines.append(
        f"| **average** | | | {a['chance']:.2f} | {a['single']:.2f} | {a['multi']:.2f} "
        f"| {a['multi'] - a['single']:+.2f} |"
    )
    p = s["parameters"]
    lines += [
        "",
        f"Parameters: multi-task {p['multi']:,}; "
        f"single-task models together {p['single_total']:,}.",
    ]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
