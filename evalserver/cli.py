"""The ``evalserver`` command. ``score`` scores a prediction file offline with the same
functions the server's workers call, so a number seen locally is the leaderboard's number.

Exit codes: 0 scored, 1 invalid predictions or unreadable ground truth (the report names
every problem by line or id), 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import orjson

from evalserver.metrics import TASKS, check_file, get_scorer, load_groundtruth, score_file
from evalserver.metrics.groundtruth import SchemaError
from evalserver.metrics.result import Result


@click.group()
@click.version_option(package_name="vl12")
def main() -> None:
    """vl12 evaluation: official scorers (and, later, the leaderboard server)."""


@main.command()
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unified HDF5 file holding the ground truth.",
)
@click.option("--task", required=True, type=click.Choice(TASKS), help="Task to score.")
@click.option("--split", default=None, help="Split to score (default: the task's test split).")
@click.option(
    "--variant",
    type=click.Choice(["default", "mattnet", "strict"]),
    default=None,
    help="refcoco*: IoU rule (default IoU >= 0.5).",
)
@click.option(
    "--choices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="gqa: the *_choices.json file (enables validity and plausibility).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def score(
    predictions: Path,
    data: Path,
    task: str,
    split: str | None,
    variant: str | None,
    choices: Path | None,
    as_json: bool,
) -> None:
    """Validate and score PREDICTIONS (any official format, .gz accepted) against --data."""
    scorer = get_scorer(task)
    options: dict[str, Any] = {}
    if variant is not None:
        if "variant" not in scorer.options:
            raise click.UsageError(
                f"--variant applies to refcoco, refcoco_plus, refcocog, not {task}"
            )
        options["variant"] = variant
    if choices is not None:
        if "choices" not in scorer.options:
            raise click.UsageError(f"--choices applies to gqa, not {task}")
        try:
            options["choices"] = orjson.loads(choices.read_bytes())
        except orjson.JSONDecodeError as exc:
            _fail(f"{choices}: malformed JSON at byte {exc.pos}: {exc.msg}")
    try:
        gt = load_groundtruth(data, task, split)
    except (SchemaError, KeyError, OSError) as exc:
        _fail(f"{data}: {exc}")
    problems = check_file(task, gt, predictions)
    if problems:
        lines = [f"{predictions}: {len(problems)} problem(s); nothing was scored:"]
        lines += [f"  {p}" for p in problems]
        _fail("\n".join(lines))
    result = score_file(task, gt, predictions, **options)
    if as_json:
        click.echo(
            json.dumps({"task": task, "split": split, **result.to_dict()}, indent=2, sort_keys=True)
        )
    else:
        click.echo(format_result(task, result))


def format_result(task: str, result: Result) -> str:
    """A human table: the primary metric first, then the others; direction marked."""
    names = [result.primary, *sorted(m for m in result.metrics if m != result.primary)]
    width = max(len(n) for n in names) + 2
    lines = [f"{task}  (scorer {result.version})"]
    for name in names:
        lower = name in result.lower_is_better or (
            name == result.primary and not result.higher_is_better
        )
        mark = " (primary)" if name == result.primary else ""
        arrow = "lower is better" if lower else ""
        value = result.metrics[name]
        lines.append(f"  {name:<{width}}{value:>10.2f}  {arrow}{mark}".rstrip())
    return "\n".join(lines)


def _fail(message: str) -> None:
    click.echo(message, err=True)
    raise SystemExit(1)


if __name__ == "__main__":
    main()
