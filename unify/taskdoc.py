"""docs/tasks.md, rendered from the TaskSpecs (``unify tasks --markdown`` prints it).

The page is generated, never edited by hand: a test compares the committed file with this
rendering, so the documented tasks, splits, phases and columns cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from unify.tasks import GROUPS, TaskSpec, all_tasks

HEADER = """# Tasks

<!-- Generated from unify/tasks.py by `unify tasks --markdown > docs/tasks.md`; do not edit. -->

One `TaskSpec` per task (`unify/tasks.py`) declares everything below; converters, scorers,
CLI choices and tests derive from it. A **phase** is what a leaderboard column, a
submission and a prediction file are for: one split, or several scored together from one
file. Options that take a split (`--phase`, `--split`) accept a phase name too.
"""


def _columns(spec: TaskSpec) -> str:
    parts = []
    for c in spec.columns:
        arrow = "↑" if c.higher_is_better else "↓"
        note = f" (absent when {c.absent_when})" if c.absent_when else ""
        bold = f"**{c.name}**" if c.name == spec.primary else f"`{c.name}`"
        parts.append(f"{bold} {arrow} .{c.precision}f{note}")
    return "; ".join(parts)


def _chance(spec: TaskSpec) -> str:
    if spec.chance.percent is not None:
        return f"{spec.chance.percent:.2f} (uniform over {spec.chance.over})"
    return f"data-dependent: uniform guess over {spec.chance.over}"


def render_markdown() -> str:
    """The whole page."""
    specs = list(all_tasks().values())
    lines = [HEADER, "## Overview", ""]
    lines.append(
        "| task | group | universes | id | one example = | metric | primary | default phase |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for s in specs:
        lines.append(
            f"| `{s.name}` | {s.group} | {', '.join(s.universes)} | `{s.id_field}` "
            f"({s.id_kind.__name__}) | {s.example_unit} | `{s.metric}` | `{s.primary}` "
            f"| `{s.default_phase}` |"
        )
    for group, title in GROUPS.items():
        lines += ["", f"## {title} (`{group}`)"]
        for s in (spec for spec in specs if spec.group == group):
            lines += ["", f"### `{s.name}`: {s.title}", ""]
            lines.append("| split | role | what |")
            lines.append("|---|---|---|")
            lines += [f"| `{sp.name}` | {sp.role} | {sp.description} |" for sp in s.splits]
            lines.append("")
            phases = ", ".join(f"`{p.name}` ({' + '.join(p.splits)})" for p in s.phases)
            selection = f"default `{s.default_phase}`; model selection on `{s.val_split}`"
            lines.append(f"- phases: {phases}; {selection}")
            hidden = ", ".join(f"`{h}`" for h in s.hidden) or "none"
            lines.append(f"- hidden splits (answers held by the organisers): {hidden}")
            targets = f"{', '.join(s.targets)} (adapter `{s.target_adapter}`)"
            lines.append(f"- inputs: {', '.join(s.inputs)}; targets: {targets}")
            lines.append(f"- columns: {_columns(s)}")
            lines.append(f"- chance level of `{s.primary}`: {_chance(s)}")
            lines.append(f"- converter: `{s.converter}`")
    return "\n".join(lines) + "\n"


def spec_record(spec: TaskSpec) -> dict[str, Any]:
    """A TaskSpec as plain JSON data (``unify tasks --json``)."""
    record = asdict(spec)
    record["id_kind"] = spec.id_kind.__name__
    return record
