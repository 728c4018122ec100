"""The sample's tasks come from the TaskSpecs: each spec names its generator (``sample``),
``generate`` writes exactly those tasks, and a task's files do not depend on the others."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from unify.cli import main
from unify.errors import DataError
from unify.hidden import ORGANISER
from unify.sample import world as world_module
from unify.sample.world import SCALES, World, generate, sample_writer, unsampled_tasks
from unify.tasks import TaskSpec, all_tasks, get

SAMPLED = [spec for spec in all_tasks().values() if spec.sample is not None]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_every_builtin_task_has_a_sample_generator() -> None:
    assert unsampled_tasks() == ()
    assert [s.name for s in SAMPLED] == list(all_tasks())


@pytest.mark.parametrize("spec", SAMPLED, ids=lambda s: s.name)
def test_each_sample_names_a_callable(spec: TaskSpec) -> None:
    writer = sample_writer(spec)
    assert callable(writer)
    assert f"{writer.__module__}:{writer.__name__}" == spec.sample


@pytest.mark.parametrize("spec", SAMPLED, ids=lambda s: s.name)
def test_each_sample_module_has_numbers_for_every_scale(spec: TaskSpec) -> None:
    module = importlib.import_module(str(spec.sample).partition(":")[0])
    table = getattr(module, "SAMPLE_SCALES", None)
    if table is not None:
        assert set(table) == set(SCALES)


def test_generate_writes_a_folder_for_exactly_the_sampled_tasks(tiny_raw: Path) -> None:
    folders = {p.name for p in tiny_raw.iterdir() if p.is_dir()} - {"features", ORGANISER}
    assert folders == {spec.name for spec in SAMPLED}
    for name in folders:
        assert any((tiny_raw / name).iterdir()), name
    # The organisers' answers: a folder for exactly the sampled tasks with hidden splits.
    organiser = {p.name for p in (tiny_raw / ORGANISER).iterdir()}
    assert organiser == {spec.name for spec in SAMPLED if spec.hidden}


def test_the_same_seed_gives_the_same_bytes(tiny_raw: Path, tmp_path: Path) -> None:
    generate(tmp_path, scale="tiny", seed=0)
    assert _files(tmp_path) == _files(tiny_raw)


@pytest.mark.parametrize("spec", SAMPLED, ids=lambda s: s.name)
def test_a_task_alone_gives_the_files_it_gives_among_all(
    spec: TaskSpec, tiny_raw: Path, tmp_path: Path
) -> None:
    """Every draw is keyed by task: adding or dropping a task changes no other's files."""
    files = generate(tmp_path, scale="tiny", seed=0, features=False, tasks=[spec])
    own = (tmp_path / spec.name, tmp_path / ORGANISER / spec.name)  # and its answers
    assert files and all(p.parent in own for p in files)
    prefixes = (f"{spec.name}/", f"{ORGANISER}/{spec.name}/")
    assert _files(tmp_path) == {
        k: v for k, v in _files(tiny_raw).items() if k.startswith(prefixes)
    }


def test_a_spec_without_a_generator_is_skipped(tmp_path: Path) -> None:
    nlvr2 = get("nlvr2")
    bare = replace(nlvr2, name="nlvr2_bare", sample=None)
    generate(tmp_path, scale="tiny", seed=0, tasks=[bare, nlvr2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "nlvr2"]
    # The world's universes, and the one NLVR2's sample module owns.
    tsvs = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert tsvs == ["coco.tsv", "flickr.tsv", "nlvr2.tsv", "vg.tsv"]
    assert unsampled_tasks([bare, nlvr2]) == ("nlvr2_bare",)


def test_unify_sample_says_which_tasks_it_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nlvr2 = get("nlvr2")
    tasks = {"nlvr2": nlvr2, "extra": replace(nlvr2, name="extra", sample=None)}
    monkeypatch.setattr(world_module, "all_tasks", lambda: tasks)
    out = tmp_path / "raw"
    result = CliRunner().invoke(main, ["sample", "--out", str(out), "--no-features"])
    assert result.exit_code == 0, result.output
    assert "not written (their TaskSpec names no sample generator): extra" in result.stderr
    # The tasks written, and the manifest of their checksums that `unify doctor` verifies.
    assert sorted(p.name for p in out.iterdir()) == ["nlvr2", "vl12-sample-manifest.json"]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("unify.sample.vqa2_format", "is not 'module:function'"),
        ("unify.sample.no_such_module:write_sample", "cannot be imported"),
        ("unify.sample.vqa2_format:no_such_function", "is not a function"),
        ("unify.sample.vqa2_format:SAMPLE_SCALES", "is not a function"),
    ],
)
def test_a_bad_sample_name_is_an_error_before_anything_is_written(
    tmp_path: Path, sample: str, message: str
) -> None:
    bad = replace(get("snli_ve"), name="bad", sample=sample)
    with pytest.raises(DataError, match=f"task bad: sample .*{message}"):
        generate(tmp_path, tasks=[get("nlvr2"), bad])
    assert list(tmp_path.iterdir()) == []


def test_the_refer_generator_refuses_a_release_it_does_not_know(tmp_path: Path) -> None:
    spec = replace(get("refcoco"), name="refclef")
    with pytest.raises(DataError, match="no release named 'refclef'"):
        generate(tmp_path, tasks=[spec], features=False)


def test_a_task_without_numbers_for_the_scale_is_an_error() -> None:
    w = World("tiny", seed=0, feature_dim=4)
    with pytest.raises(DataError, match="the sample of vqa2 has no numbers for scale 'tiny'"):
        w.sized({"full": 1}, "vqa2")
