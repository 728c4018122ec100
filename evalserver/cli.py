"""The ``evalserver`` command. ``score`` scores a prediction file offline with the same
functions the server's API and workers call (``validate_file`` then ``score_validated``: the
file is parsed once), so a number seen locally is the leaderboard's number.

Exit codes: 0 scored; 1 invalid predictions, unreadable ground truth or a path problem (one
message naming the path, or the report of every problem by line or id); 2 usage error.
Every message names the task, the phase and its splits, and the file scored against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from evalserver import admin_cli
from evalserver.metrics import (
    SCORERS,
    GroundTruth,
    Result,
    get_scorer,
    load_groundtruth,
    score_validated,
    tasks_of_metric,
    validate_file,
    variant_names,
)
from evalserver.metrics.groundtruth import describe_fingerprint
from evalserver.metrics.limits import Limits, format_size, parse_size
from evalserver.runcommands import COMMANDS as SERVER_COMMANDS
from evalserver.storage_cli import storage as storage_commands
from unify import tasks
from unify.clitypes import TaskName, Vl12Group
from unify.errors import DataError
from unify.tasks import TaskSpec

F = TypeVar("F", bound=Callable[..., Any])


class ByteSize(click.ParamType):
    """A size in bytes: ``1048576``, ``500M``, ``1G`` (K/M/G/T are powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _positive(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def limit_options(function: F) -> F:
    """One option per ``Limits`` field (``max_bytes`` -> ``--max-bytes``), its default and
    help taken from the dataclass: the CLI and the library cannot disagree."""
    for name, default, text, size in reversed(Limits.options()):
        shown = format_size(default) if size else f"{default:,}"
        function = click.option(
            "--" + name.replace("_", "-"),
            name,
            type=ByteSize() if size else type(default),
            default=default,
            show_default=shown,
            callback=_positive,
            help=text,
        )(function)
    return function


@click.group(cls=Vl12Group)
@click.version_option(package_name="vl12")
def main() -> None:
    """vl12 evaluation: official scorers (and, later, the leaderboard server)."""


@main.command()
@click.argument("predictions", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path, readable=False),
    help="Unified HDF5 file holding the ground truth.",
)
@click.option("--task", required=True, type=TaskName(), help="Task to score.")
@click.option(
    "--phase",
    "--split",
    "phase",
    default=None,
    help="Leaderboard phase to score, or a split's name (default: the task's default phase; "
    "see docs/metrics.md). --split is an alias.",
)
@click.option(
    "--variant",
    type=click.Choice(variant_names()),
    default=None,
    help="A named scoring rule of the task's metric (refcoco*: the IoU rule; default IoU >= 0.5).",
)
@click.option(
    "--choices",
    type=click.Path(path_type=Path, readable=False),
    hidden=True,
    help="Removed: GQA choices come from the unified file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@limit_options
def score(
    predictions: Path,
    data: Path,
    task: str,
    phase: str | None,
    variant: str | None,
    choices: Path | None,
    as_json: bool,
    **bounds: Any,
) -> None:
    """Validate and score PREDICTIONS (any official format, .gz accepted) against --data.

    Reading PREDICTIONS is bounded (--max-bytes and the other --max-* options, defaults
    shown): a file beyond a bound is refused with a message naming it, exit 1."""
    limits = Limits(**bounds)
    spec = tasks.get(task)
    scorer = get_scorer(task)
    if choices is not None:
        raise click.UsageError(
            "--choices is gone: GQA choices now come from the unified file. Put "
            "testdev_choices.json / val_choices.json in the gqa raw folder and rebuild "
            "(unify build); validity and plausibility are then reported."
        )
    options: dict[str, Any] = {}
    if variant is not None:
        if variant not in scorer.variants:
            with_variants = [t for s in _scorers_with_variants() for t in tasks_of_metric(s)]
            raise click.UsageError(f"--variant applies to {', '.join(with_variants)}, not {task}")
        options["variant"] = variant
    try:
        chosen = spec.phase(spec.default_phase if phase is None else phase)
    except DataError as exc:
        _fail(str(exc))
    where = f"{task}, phase {chosen.name} ({_splits(chosen.splits)})"
    _check_file(data, "unified file")
    _check_file(predictions, "prediction file")
    try:
        gt = load_groundtruth(data, task, chosen.name)
    except (DataError, OSError) as exc:
        _fail(f"{data}: cannot read the ground truth of {where}: {_strip(str(exc), data)}")
    against = _against(gt)
    try:
        validated = validate_file(task, gt, predictions, limits=limits)
    except OSError as exc:
        _fail(f"{predictions}: cannot read ({exc.strerror or exc})")
    if not validated.ok:
        lines = [
            f"{predictions}: {validated.total} problem(s) for {where}, scored against "
            f"{against}; nothing was scored:"
        ]
        lines += [f"  {p}" for p in validated.listing()]
        _fail("\n".join(lines))
    result = score_validated(gt, validated, **options)
    if as_json:
        summary = result.to_dict() | {
            "groundtruth": {"path": str(data), "fingerprint": gt.fingerprint}
        }
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(format_result(spec, result, against))


def format_result(spec: TaskSpec, result: Result, against: str) -> str:
    """A human table: the primary column first, then the others in the TaskSpec's order,
    each at its declared precision with its direction; then the absent columns and why."""
    names = [result.primary, *(m for m in result.metrics if m != result.primary)]
    width = max(len(n) for n in names) + 2
    lines = [
        f"{spec.name}, phase {result.phase} ({_splits(result.splits)}), scorer {result.version}",
        f"scored against {against}",
    ]
    declared = {c.name: c for c in spec.columns}
    for name in names:
        column = declared.get(name)
        lower = name in result.lower_is_better or (
            name == result.primary and not result.higher_is_better
        )
        precision = column.precision if column is not None else 2
        notes = ["lower is better"] if lower else []
        notes += ["(primary)"] if name == result.primary else []
        value = result.metrics[name]
        lines.append(f"  {name:<{width}}{value:>10.{precision}f}  {' '.join(notes)}".rstrip())
    for name, why in result.absent.items():
        lines.append(f"  {name:<{width}}{'-':>10}  (absent: {why})")
    return "\n".join(lines)


def _scorers_with_variants() -> list[str]:
    return [m for m, s in SCORERS.items() if s.variants]


def _splits(splits: tuple[str, ...]) -> str:
    return ("splits " if len(splits) > 1 else "split ") + ", ".join(splits)


def _against(gt: GroundTruth) -> str:
    return f"{gt.path} ({describe_fingerprint(gt.fingerprint)})"


def _strip(message: str, path: Path) -> str:
    """A message without a leading ``PATH: `` already said by the caller."""
    return message.removeprefix(f"{path}: ")


def _check_file(path: Path, what: str) -> None:
    """One line naming ``path`` (exit 1) when it cannot be read as a file."""
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            _fail(f"{path}: no such {what} ({parent} is a file, not a folder)")
        _fail(f"{path}: no such {what}")
    if path.is_dir():
        _fail(f"{path}: is a directory, not a {what}")
    if not os.access(path, os.R_OK):
        _fail(f"{path}: permission denied (cannot read the {what})")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(1)


# The server's operator commands (evalserver.admin_cli).
for _command in (
    admin_cli.db,
    admin_cli.load,
    admin_cli.team,
    admin_cli.admin,
    admin_cli.rescore,
    admin_cli.audit_log,
    admin_cli.api,
    storage_commands,
):
    main.add_command(_command)

# The server's process and client commands (evalserver/runcommands.py).
for _command in SERVER_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
