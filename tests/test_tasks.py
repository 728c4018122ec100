"""The TaskSpecs are the one list of tasks: everything derived from them must agree.

Also the claim of docs/adding-a-dataset.md: a 13th task that reuses an existing raw format
and metric is one TaskSpec plus one converter module in its own package, registered through
the ``vl12.tasks`` entry-point group; build -> ground truth -> score then work with no file
of vl12 edited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from unify.converters import registry
from unify.converters.base import Converter
from unify.errors import DataError
from unify.features import UNIVERSES as FEATURE_UNIVERSES
from unify.reader import UnifiedFile
from unify.sample.snli_ve_format import write_snli_ve
from unify.schema import ROLES, TASK_GROUPS
from unify.tasks import BUILTIN, GROUPS, UNIVERSES, Phase, all_tasks, get, task_names

REPO = Path(__file__).resolve().parents[1]
SPECS = list(all_tasks().values())


def test_names_are_unique_and_in_canonical_order() -> None:
    assert len(set(task_names())) == len(task_names()) == len(BUILTIN)
    assert task_names() == tuple(s.name for s in BUILTIN)


def test_groups_and_universes_agree_with_the_schema_and_feature_import() -> None:
    assert tuple(GROUPS) == TASK_GROUPS
    assert set(UNIVERSES) == set(FEATURE_UNIVERSES)
    for spec in SPECS:
        assert {s.role for s in spec.splits} <= set(ROLES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_converter_is_bound_to_its_spec(spec) -> None:  # type: ignore[no-untyped-def]
    conv = registry()[spec.name]
    assert isinstance(conv, Converter)
    assert conv.spec is spec and conv.name == spec.name
    assert conv.raw_files and any(f.required for f in conv.raw_files)
    assert conv.homepage.startswith("http")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_phases_and_selection_split(spec) -> None:  # type: ignore[no-untyped-def]
    assert spec.role(spec.val_split) == "eval"
    assert spec.default_phase in spec.phase_names
    for phase in spec.phases:
        assert all(spec.role(s) == "eval" for s in phase.splits), phase
    # A split's name is accepted where a phase is expected.
    assert spec.phase(spec.val_split).splits == (spec.val_split,)
    with pytest.raises(DataError, match="no phase or split 'nope'"):
        spec.phase("nope")
    assert set(spec.inputs) & {"image"}
    assert spec.chance.percent is None or 0 < spec.chance.percent < 100


def test_bad_declarations_are_refused() -> None:
    vqa2 = get("vqa2")
    with pytest.raises(ValueError, match="val_split 'x' is not a split"):
        replace(vqa2, val_split="x")
    with pytest.raises(ValueError, match="primary 'nope' is not a column"):
        replace(vqa2, primary="nope")
    with pytest.raises(ValueError, match="phase 'p' names unknown split 'q'"):
        replace(vqa2, phases=(Phase("p", ("q",)),))
    with pytest.raises(ValueError, match="universe 'mars' is unknown"):
        replace(vqa2, universes=("mars",))


def test_a_built_file_holds_the_declared_splits_roles_and_universes(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        assert uf.tasks == sorted(task_names()) or set(uf.tasks) == set(task_names())
        for spec in SPECS:
            splits = set(uf.splits(spec.name)) - {"mteval"}
            assert splits <= set(spec.split_names), spec.name
            assert spec.train_splits[0] in splits and spec.val_split in splits
            for split in splits:
                view = uf.split(spec.name, split)
                assert view.role == spec.role(split)
                prefixes = {str(k).split(":", 1)[0] for k in view.image_keys().ravel()}
                assert prefixes <= set(spec.universes), (spec.name, split, prefixes)


# --------------------------------------------------------------------------- plug-in


PLUGIN = '''
"""A 13th task: SNLI-VE's format and metric under another name, with its own raw folder."""
from dataclasses import replace

from unify.tasks import BUILTIN

SPEC = replace(
    next(s for s in BUILTIN if s.name == "snli_ve"),
    name="snli_ve_copy",
    title="SNLI-VE (a copy, registered as a plug-in)",
    converter="vl12_extra_task.converter:SnliVeCopy",
)
#: A declaration that takes a built-in task's name (must be refused, never override it).
CLASH = replace(SPEC, name="snli_ve")
'''

CONVERTER = '''
from unify.converters.snli_ve import SnliVe


class SnliVeCopy(SnliVe):
    """The release format of SNLI-VE, read from raw/snli_ve_copy/."""

    version = "1.0.0"
'''


def _plugin(root: Path) -> Path:
    pkg = root / "vl12_extra_task"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (pkg / "converter.py").write_text(textwrap.dedent(CONVERTER))
    dist = root / "vl12_extra_task-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vl12-extra-task\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vl12.tasks]\nsnli_ve_copy = vl12_extra_task:SPEC\n")
    return root


def _pairs(split: str, n: int) -> list[dict[str, str]]:
    labels = ("entailment", "neutral", "contradiction")
    return [
        {
            "flickr_id": str(1000 + k),
            "pair_id": f"{1000 + k}.jpg#0r{split}{k}",  # release layout: <captionID>r...
            "caption_id": f"{1000 + k}.jpg#0",
            "gold_label": labels[k % 3],
            "premise": "A photo.",
            "hypothesis": f"Something {k}.",
        }
        for k in range(n)
    ]


def test_a_thirteenth_task_is_one_spec_and_one_converter_module(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path / "plugin")
    raw = tmp_path / "raw"
    for split, n in (("train", 6), ("dev", 3), ("test", 9)):
        write_snli_ve(raw / "snli_ve_copy", split, _pairs(split, n))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)])}
    bin_dir = Path(sys.executable).parent

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)

    listed = run(str(bin_dir / "unify"), "list")
    assert listed.returncode == 0, listed.stderr
    assert "snli_ve_copy" in listed.stdout

    out = tmp_path / "copy.h5"
    built = run(
        str(bin_dir / "unify"), "build", "snli_ve_copy", "--raw", str(raw), "--out", str(out)
    )
    assert built.returncode == 0, built.stderr

    gold = {p["pair_id"]: p["gold_label"] for p in _pairs("test", 9)}
    preds = tmp_path / "preds.csv"
    preds.write_text("".join(f"{k},{v}\n" for k, v in gold.items()))
    scored = run(
        str(bin_dir / "evalserver"), "score", "--data", str(out), "--task", "snli_ve_copy",
        "--json", str(preds),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    metrics = result.get("metrics") or result["summary"]["metrics"]
    assert metrics["accuracy"] == 100.0

    # A plug-in may not take a built-in task's name: one line, exit 1, in both commands.
    (plugin / "vl12_extra_task-0.1.dist-info" / "entry_points.txt").write_text(
        "[vl12.tasks]\nsnli_ve = vl12_extra_task:CLASH\n"
    )
    for command in (
        (str(bin_dir / "unify"), "list"),
        (str(bin_dir / "unify"), "build", "snli_ve", "--raw", str(raw), "--out", str(out)),
        (str(bin_dir / "evalserver"), "score", "--data", str(out), "--task", "snli_ve", str(preds)),
    ):
        clash = run(*command)
        assert clash.returncode == 1, (command, clash.stderr)
        assert clash.stderr == (
            "error: entry point snli_ve (vl12_extra_task:CLASH): task 'snli_ve' is already "
            "declared\n"
        )


def test_docs_tasks_page_is_the_rendering_of_the_specs() -> None:
    """docs/tasks.md is generated; regenerate it with `unify tasks --markdown`."""
    from unify.taskdoc import render_markdown

    assert (REPO / "docs" / "tasks.md").read_text() == render_markdown()


def test_unify_tasks_command_prints_the_specs() -> None:
    from click.testing import CliRunner

    from unify.cli import main

    listed = CliRunner().invoke(main, ["tasks", "--json"])
    assert listed.exit_code == 0, listed.output
    records = json.loads(listed.stdout)
    assert [r["name"] for r in records] == list(task_names())
    refcoco = records[task_names().index("refcoco")]
    assert {"name": "all", "splits": ["val", "testA", "testB"]}.items() <= refcoco["phases"][
        -1
    ].items()
    page = CliRunner().invoke(main, ["tasks", "--markdown"])
    assert page.stdout == (REPO / "docs" / "tasks.md").read_text()
    both = CliRunner().invoke(main, ["tasks", "--markdown", "--json"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr
