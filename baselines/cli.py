"""The ``baseline`` command: train, predict, compare.

Exit codes: 0 ok; 1 a data problem (a missing feature set, an unreadable file, a run
without a checkpoint: one line naming it); 2 a usage error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unify.cli import UNIFIED_FILE
from unify.clitypes import Vl12Group
from unify.errors import DataError
from unify.tasks import task_names

if TYPE_CHECKING:
    from baselines.train import TrainConfig

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 90s, 10m, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_tasks(text: str, available: list[str] | None = None) -> list[str]:
    known = list(task_names())
    if text == "all":
        return [t for t in known if available is None or t in available]
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chosen if t not in known]
    if bad or not chosen:
        raise click.BadParameter(
            f"unknown task(s) {', '.join(bad) or '(none)'}; tasks: {', '.join(known)}"
        )
    return chosen


def _config(path: Path | None, **overrides: object) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if path is not None:
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a JSON config ({exc})") from None
        if not isinstance(cfg, dict):
            raise DataError(f"{path}: a config is a JSON object of TrainConfig fields")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _train_config(cfg: dict[str, Any]) -> TrainConfig:
    from baselines.train import TrainConfig

    try:
        return TrainConfig.from_dict(cfg)
    except (TypeError, ValueError) as exc:
        raise DataError(f"config: {exc}") from None


def _run_guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Problems of the data or the run are one line and exit 1."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise DataError(str(exc).strip("'\"")) from None

    return wrapper


@click.group(cls=Vl12Group)
@click.version_option(package_name="vl12")
def main() -> None:
    """The reference multi-task baseline of vl12 (a small transformer over region features)."""


_common = [
    click.option(
        "--config",
        "config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="JSON of TrainConfig fields.",
    ),
    click.option(
        "--max-steps", type=click.IntRange(min=1), help="Training iterations (default 1000)."
    ),
    click.option("--time-budget", help="Stop after this long (90s, 10m, 1h)."),
    click.option(
        "--batch-size", type=click.IntRange(min=1), help="Examples per task per iteration."
    ),
    click.option(
        "--val-every",
        type=click.IntRange(min=0),
        help="Iterations between validations (0: an epoch).",
    ),
    click.option(
        "--threads", type=click.IntRange(min=0), help="CPU threads of torch (0: its default)."
    ),
    click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)."),
    click.option("--seed", type=int),
    click.option(
        "--text-encoder",
        help="A pretrained text encoder (transformers name or folder; the `text` extra).",
    ),
    click.option(
        "--text-only", is_flag=True, default=None, help="The text-only twin: no region features."
    ),
]


def _with_common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


def _overrides(opts: dict[str, Any]) -> dict[str, Any]:
    """The common options given on the command line (None: not given) as config fields."""
    out = dict(opts)
    if out.get("time_budget"):
        out["time_budget"] = parse_duration(str(out["time_budget"]))
    return out


@main.command()
@click.option(
    "--data", type=UNIFIED_FILE, required=True, help="The unified file (with region features)."
)
@click.option(
    "--tasks",
    "task_list",
    default="all",
    show_default=True,
    help="all, or names separated by commas.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder."
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@_with_common
@_run_guarded
def train(
    data: Path, task_list: str, out: Path, resume: bool, config: Path | None, **opts: object
) -> None:
    """Train on the tasks' training splits; validate on each task's val_split."""
    from baselines.train import Trainer
    from unify.reader import UnifiedFile

    with UnifiedFile(data) as uf:
        available = list(uf.tasks)
    chosen = parse_tasks(task_list, available)
    missing = [t for t in chosen if t not in available]
    if missing:
        raise DataError(
            f"{data}: no task(s) {', '.join(missing)} in this file (it has {', '.join(available)})"
        )
    cfg = _train_config(_config(config, tasks=chosen, **_overrides(opts)))
    from baselines.distributed import finish, init_from_env, world

    init_from_env(cfg.device)
    try:
        summary = Trainer(Path(data), out, cfg, resume=resume).run(progress=True)
        if world()[0] == 0:
            click.echo(json.dumps(summary))
    finally:
        finish()


@main.command()
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A run folder of `baseline train`.",
)
@click.option(
    "--model", type=click.Choice(["trained", "chance"]), default="trained", show_default=True
)
@click.option("--data", type=UNIFIED_FILE, required=True)
@click.option(
    "--phase",
    default="test",
    show_default=True,
    help="val (each task's val_split), test (its default phase), or a phase/split name.",
)
@click.option("--tasks", "task_list", default="all", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Of the chance model.")
@click.option(
    "--full-matrix-up-to",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Retrieval: the full score matrix up to this many gallery images; beyond, ranked "
    "lists (first pass, then re-ranking).",
)
@click.option(
    "--rerank-top",
    type=click.IntRange(min=10),
    default=100,
    show_default=True,
    help="Retrieval beyond --full-matrix-up-to: images per caption the alignment head re-ranks.",
)
@_run_guarded
def predict(
    run_dir: Path | None,
    model: str,
    data: Path,
    phase: str,
    task_list: str,
    out: Path,
    seed: int,
    full_matrix_up_to: int,
    rerank_top: int,
) -> None:
    """One prediction file per task, in the format `evalserver score` accepts, named
    TASK.PHASE.EXT (what `evalserver submit --dir` and the upload page's bundle read)."""
    from baselines.predict import RetrievalSettings, predict_phase, resolve_phase
    from evalserver.metrics import SCORERS, load_groundtruth
    from evalserver.metrics.chance import chance_submission
    from unify import tasks as specs
    from unify.reader import UnifiedFile

    out.mkdir(parents=True, exist_ok=True)
    if model == "chance":
        with UnifiedFile(data) as uf:
            for task in parse_tasks(task_list, list(uf.tasks)):
                p = resolve_phase(task, phase)
                blob = chance_submission(load_groundtruth(uf, task, p), seed)
                _emit(out, task, p, SCORERS[specs.get(task).metric].formats[0].kind, blob)
        return
    if run_dir is None:
        raise click.UsageError("--run is required with --model trained")
    from baselines.train import load_run

    net, infos, encoder, uf = load_run(run_dir, Path(data))
    wanted = set(parse_tasks(task_list, [i.name for i in infos]))
    settings = RetrievalSettings(full_matrix_up_to, rerank_top)
    with uf:
        for info in infos:
            if info.name in wanted:
                p = resolve_phase(info.name, phase)
                blob, ext = predict_phase(net, info, uf, p, encoder, settings)
                _emit(out, info.name, p, ext, blob)


def _emit(out: Path, task: str, phase: str, ext: str, blob: bytes) -> None:
    from evalserver.prediction_files import bundle_name

    path = out / bundle_name(task, phase, ext)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    click.echo(f"{task} {phase}: {path}")


@main.command()
@click.option("--data", type=UNIFIED_FILE, required=True)
@click.option("--tasks", "task_list", default="all", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@_with_common
@_run_guarded
def compare(data: Path, task_list: str, out: Path, config: Path | None, **opts: object) -> None:
    """Multi-task vs single-task models on the same examples: markdown and JSON tables."""
    from baselines.compare import compare as run_compare
    from unify.reader import UnifiedFile

    with UnifiedFile(data) as uf:
        chosen = parse_tasks(task_list, list(uf.tasks))
    cfg = _train_config(_config(config, tasks=chosen, **_overrides(opts)))
    run_compare(Path(data), out, cfg, progress=True)
    click.echo((out / "compare.md").read_text())


if __name__ == "__main__":
    main()
