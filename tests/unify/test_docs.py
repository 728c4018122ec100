"""The docs hold what the code does: schema.md, cli.md and raw-layout.md cannot drift.

docs/schema.md is checked against ``unify.schema``'s constants, ``BuildOptions`` and a real
build (root, task and leakage-report attributes; how datasets are chunked and compressed);
its per-task table and raw-layout.md's canonical table against ``unify.tasks`` (the single
list of tasks); docs/cli.md against the ``unify`` command itself (every command and option
documented, no documented option that does not exist, defaults and choices as the CLI has
them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import h5py
import pytest

from unify import schema
from unify.build import BuildOptions
from unify.cli import main
from unify.leakage import LeakagePolicy
from unify.tasks import GROUPS, all_tasks, task_names

DOCS = Path(__file__).resolve().parents[2] / "docs"


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under the first heading that starts with ``heading``, to the next heading."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    assert starts, f"no heading {heading!r}"
    start = starts[0]
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def table(text: str, first_header: str) -> list[list[str]]:
    """Rows (cells stripped) of the first markdown table whose header starts with a cell."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table with header {first_header!r}")


def ticked(cell: str) -> list[str]:
    """The `code` spans of a cell, in order."""
    return re.findall(r"`([^`]+)`", cell)


def row(rows: list[list[str]], name: str) -> list[str]:
    matches = [r for r in rows if ticked(r[0])[:1] == [name] or r[0] == name]
    assert len(matches) == 1, f"{name}: {len(matches)} rows"
    return matches[0]


# --------------------------------------------------------------------------- schema.md


@pytest.fixture(scope="module")
def schema_md() -> str:
    return doc("schema.md")


def test_schema_version(schema_md: str) -> None:
    title = f"# The unified HDF5 schema, version {schema.SCHEMA_VERSION}"
    assert schema_md.splitlines()[0] == title
    root = table(schema_md, "attribute")
    assert row(root, "schema_version")[2] == f'`"{schema.SCHEMA_VERSION}"`'
    assert schema.SCHEMA_VERSION.split(".")[0] == str(schema.SCHEMA_MAJOR)


def test_storage_paragraph_matches_the_constants(schema_md: str) -> None:
    text = " ".join(schema_md.split())
    assert (
        f"Numeric datasets are gzip-compressed (level {schema.GZIP_LEVEL}, with the shuffle "
        f"filter) in chunks of {schema.NUMERIC_CHUNK_ROWS} rows"
    ) in text
    assert (
        f"String datasets are chunked by {schema.STRING_CHUNK_ROWS} rows and not compressed"
    ) in text


def test_storage_paragraph_matches_a_build(tiny_h5: Path) -> None:
    """What the paragraph (and its constants) say is what the writer does."""
    seen = {"numeric": 0, "string": 0}
    with h5py.File(tiny_h5) as f:

        def visit(name: str, obj: object) -> None:
            if not isinstance(obj, h5py.Dataset) or name.startswith(schema.FEATURES):
                return
            n = len(obj)
            if h5py.check_string_dtype(obj.dtype) is not None:
                seen["string"] += 1
                assert obj.compression is None, name
                if n:
                    assert obj.chunks[0] == min(n, schema.STRING_CHUNK_ROWS), name
            elif n:
                seen["numeric"] += 1
                assert obj.compression == "gzip" and obj.shuffle, name
                assert obj.compression_opts == schema.GZIP_LEVEL, name
                assert obj.chunks[0] == min(n, schema.NUMERIC_CHUNK_ROWS), name
            else:
                assert obj.chunks is None and obj.compression is None, name

        f.visititems(visit)
    assert seen["numeric"] > 50 and seen["string"] > 50


def test_group_names(schema_md: str) -> None:
    documented = set(re.findall(r"^## `/(\w+)", schema_md, flags=re.M))
    constants = {
        schema.IMAGES,
        schema.LINKS,
        schema.TASKS,
        schema.VOCAB,
        schema.FEATURES,
        schema.LEAKAGE,
    }
    assert documented == constants
    assert f"holding `{schema.OFFSETS}` (int64" in schema_md


def test_roles(schema_md: str) -> None:
    match = re.search(r"Attributes: `role` \(([^)]*)\) and `num_examples`", schema_md)
    assert match is not None
    assert tuple(ticked(match.group(1))) == schema.ROLES
    assert f"`{schema.MTEVAL_SPLIT}` (role `extra`)" in schema_md


def test_task_attributes(schema_md: str, tiny_h5: Path) -> None:
    rows = table(section(schema_md, "## `/tasks/<task>`"), "attribute")
    documented = {ticked(r[0])[0] for r in rows}
    with h5py.File(tiny_h5) as f:
        written = {a for task in f[schema.TASKS].values() for a in task.attrs}
    assert documented == written
    specs = all_tasks().values()
    assert tuple(ticked(row(rows, "task_group")[1])) == schema.TASK_GROUPS == tuple(GROUPS)
    assert set(ticked(row(rows, "metric")[1])) == {t.metric for t in specs}
    assert set(ticked(row(rows, "example_unit")[1])) == {t.example_unit for t in specs}


def _keys_by_depth(text: str) -> dict[int, list[str]]:
    """The quoted keys of a JSON-like sketch, by brace depth (1 = top level)."""
    keys: dict[int, list[str]] = {}
    depth = 0
    for match in re.finditer(r'[{}]|"(\w+)":', text):
        if match.group() == "{":
            depth += 1
        elif match.group() == "}":
            depth -= 1
        else:
            keys.setdefault(depth, []).append(match.group(1))
    return keys


def test_root_attributes_and_build_options(schema_md: str, tiny_h5: Path) -> None:
    rows = table(schema_md, "attribute")
    with h5py.File(tiny_h5) as f:
        assert {ticked(r[0])[0] for r in rows} == set(f.attrs)
        written_options = json.loads(f.attrs["build_options"])
    keys = _keys_by_depth(row(rows, "build_options")[2])
    record = BuildOptions(tasks=()).as_record()
    assert keys[1] == list(record) and set(written_options) == set(record)
    policy = LeakagePolicy().as_record()
    assert keys[2] == list(policy) and set(written_options["policy"]) == set(policy)


def test_leakage_report_keys(schema_md: str, tiny_h5: Path) -> None:
    rows = table(section(schema_md, "## `/leakage`"), "key")
    with h5py.File(tiny_h5) as f:
        report = json.loads(f[schema.LEAKAGE].attrs["report"])
        columns = set(f[schema.LEAKAGE])
    assert {ticked(r[0])[0] for r in rows} == set(report)
    text = " ".join(section(schema_md, "## `/leakage`").split())
    match = re.search(r"The same pairs as columns: (.*?) \(comma-joined", text)
    assert match is not None
    assert set(ticked(match.group(1))) == columns


def _splits_cell(cell: str) -> dict[str, tuple[str, bool]]:
    """``trainval (train), test* (eval)`` -> {split: (role, optional)}."""
    out = {}
    for part in cell.split(", "):
        m = re.fullmatch(r"([\w-]+)(\*?) \((\w+)(?::[^)]*)?\)", part.strip())
        assert m is not None, f"cannot read split {part!r} in {cell!r}"
        out[m.group(1)] = (m.group(3), m.group(2) == "*")
    return out


def test_fields_per_task_table(schema_md: str) -> None:
    """Every task once, with exactly its TaskSpec's splits and roles."""
    rows = table(section(schema_md, "### Fields per task"), "task")
    named: list[str] = []
    for cells in rows:
        tasks = [t.strip() for t in cells[0].split(",")]
        named += tasks
        splits = _splits_cell(cells[1])
        for task in tasks:
            spec = all_tasks()[task]
            assert {s: r for s, (r, _) in splits.items()} == {
                s.name: s.role for s in spec.splits
            }, task
    assert sorted(named) == sorted(task_names())


# ------------------------------------------------------------------------ raw-layout.md


def test_raw_layout_table_names_every_task_once() -> None:
    rows = table(section(doc("raw-layout.md"), "## The canonical table"), "task")
    assert tuple(r[0] for r in rows) == task_names()


# ------------------------------------------------------------------------------ cli.md


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, path)
        else:
            out.append((" ".join(path), cmd))
    return out


COMMANDS = _commands(main)
OPTION = re.compile(r"(?<![\w`-])(--?[a-z][a-z0-9-]*)")


def _bullets(text: str) -> dict[str, str]:
    """Option bullets (``- `--opt ARG` / `-o`: ...``, continued lines joined) by option."""
    bullets: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines()[1:]:
        m = re.match(r"- `([^`]*)`(?: / `([^`]*)`)?", line)
        if m:
            current = [o for span in m.groups() if span for o in OPTION.findall(span)]
            for option in current:
                bullets[option] = line
        elif line.startswith("  ") and current:
            for option in current:
                bullets[option] += " " + line.strip()
        else:
            current = []
    return bullets


def _documented_options(text: str) -> set[str]:
    """Options in the heading and in option bullets."""
    return set(OPTION.findall(text.splitlines()[0].replace("`unify", ""))) | set(_bullets(text))


@pytest.fixture(scope="module")
def cli_md() -> str:
    return doc("cli.md").split("# The `evalserver` command")[0]


def test_every_command_has_a_section(cli_md: str) -> None:
    headings = re.findall(r"^## `unify ([a-z ]+?)(?= [^a-z]|`)", cli_md, flags=re.M)
    assert sorted(headings) == sorted(name for name, _ in COMMANDS)


@pytest.mark.parametrize("name,command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_options_match_the_doc(cli_md: str, name: str, command: click.Command) -> None:
    text = section(cli_md, f"## `unify {name} ")
    options = [p for p in command.params if isinstance(p, click.Option)]
    real = {o for p in options for o in p.opts}
    documented = _documented_options(text)
    assert documented - real == set(), f"documented options that do not exist: {name}"
    missing = [p.opts[0] for p in options if not set(p.opts) & documented]
    assert missing == [], f"undocumented options of unify {name}"
    bullets = _bullets(text)
    ctx = click.Context(command)
    for p in options:
        bullet = next((bullets[o] for o in p.opts if o in bullets), None)
        assert bullet is not None, f"unify {name}: no bullet for {p.opts[0]}"
        # The annotation right after the option: (required), (repeatable), (default `x`).
        m = re.match(r"- `[^`]*`(?: / `[^`]*`)?(?: \(([^)]*)\))?:", bullet)
        assert m is not None, bullet
        notes = m.group(1) or ""
        default = p.get_default(ctx)
        has_default = isinstance(default, (str, int, float)) and not p.is_flag
        assert f"default `{default}`" in notes if has_default else "default" not in notes, p
        assert ("required" in notes) == p.required, p.opts
        assert ("repeatable" in notes) == p.multiple, p.opts
        if isinstance(p.type, click.Choice) and tuple(p.type.choices) != task_names():
            assert f"`{p.opts[0]} {'|'.join(p.type.choices)}`" in bullet, p.opts


def test_top_level_options_and_exit_codes(cli_md: str) -> None:
    intro = cli_md.split("\n## ")[0]
    for p in main.params:
        assert any(f"`unify {o}`" in intro for o in p.opts), p.opts
    exit_codes = " ".join(intro.split()).split("Exit codes: ")[1].split(". ")[0]
    assert re.findall(r"`(\d)`", exit_codes) == ["0", "1", "2", "3"]
