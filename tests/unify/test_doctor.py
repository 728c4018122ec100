"""``unify doctor`` on the generated sample: whole, with files removed, truncated, corrupted."""

from __future__ import annotations

import gzip
import json
import pickle
import shlex
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from unify.cli import main
from unify.doctor import MANIFEST, diagnose, exit_code
from unify.download import sha256_of
from unify.sources import SOURCES, source_of
from unify.tasks import task_names


@pytest.fixture
def raw(tiny_raw: Path, tmp_path: Path) -> Path:
    """A copy of the tiny sample with the manifest ``unify sample`` writes."""
    from unify.doctor import write_manifest

    out = tmp_path / "raw"
    shutil.copytree(tiny_raw, out)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST]
    write_manifest(out, files)
    return out


def _doctor(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["doctor", *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def test_the_generated_sample_is_whole(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    assert CliRunner().invoke(main, ["sample", "--out", str(out)]).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    assert manifest["vqa2/v2_mscoco_train2014_annotations.json"]["sha256"] == sha256_of(
        out / "vqa2/v2_mscoco_train2014_annotations.json"
    )
    result = CliRunner().invoke(main, ["doctor", "--raw", str(out)])
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 checksum differences" in result.stdout
    code, report = _doctor("--raw", str(out))
    assert code == 0 and report["ok"]
    present = [f for f in report["files"] if f["status"] != "absent"]
    assert {f["task"] for f in present} == set(task_names())
    assert all(f["status"] == "ok" for f in present)
    assert all(f["reference"] == "the sample's manifest" for f in present)
    assert all(not f["required"] for f in report["files"] if f["status"] == "absent")


def test_a_missing_required_file_is_an_error_with_its_command(raw: Path) -> None:
    (raw / "vqa2/v2_mscoco_val2014_annotations.json").unlink()
    code, report = _doctor("--raw", str(raw))
    assert code == 1
    entry = _by_path(report)["vqa2/v2_mscoco_val2014_annotations.json"]
    assert entry["status"] == "missing" and entry["error"]
    assert entry["fix"] == f"unify download vqa2 --raw {raw}"
    # Only the named tasks count.
    assert _doctor("gqa", "--raw", str(raw))[0] == 0


def test_a_missing_built_file_names_its_command(raw: Path) -> None:
    (raw / "snli_ve/snli_ve_dev.jsonl").unlink()
    code, report = _doctor("snli_ve", "--raw", str(raw))
    assert code == 1
    entry = _by_path(report)["snli_ve/snli_ve_dev.jsonl"]
    assert entry["fix"] == f"unify download snli_ve --raw {raw}"
    text = CliRunner().invoke(main, ["doctor", "snli_ve", "--raw", str(raw)])
    assert "MISSING] snli_ve/snli_ve_dev.jsonl" in text.stdout


def test_a_missing_manual_file_points_to_its_page_and_steps(raw: Path) -> None:
    dest = "visual7w/dataset_v7w_pointing.json"
    (raw / dest).unlink()
    found = source_of(dest)
    assert found is not None
    manual = replace(found[0], url=None, steps=("Sign in.", "Fetch it."))
    (entry,) = diagnose(raw, ["visual7w"], sources=(manual,))
    assert entry.is_error and entry.steps == ["Sign in.", "Fetch it."]
    assert entry.fix.startswith(f"manual step, see {manual.page}")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("rel", "damage", "words"),
    [
        ("guesswhat/guesswhat.valid.jsonl.gz", _truncate, "malformed file"),
        ("vqa2/v2_OpenEnded_mscoco_val2014_questions.json", _truncate, "malformed file"),
        ("gqa/val_balanced_questions.json", _truncate, "malformed file"),
        ("nlvr2/dev.json", _truncate, "malformed file"),
        ("refcocog/refs(umd).p", _truncate, "truncated or empty pickle"),
        (
            "refcoco/refs(unc).p",
            lambda p: p.write_bytes(pickle.dumps(print, protocol=2)),
            "names the global __builtin__.print",
        ),
        (
            "guesswhat/guesswhat.test.jsonl.gz",
            lambda p: p.write_bytes(gzip.compress(b'{"id": 1}\n{"id": \n')),
            "malformed file",
        ),
    ],
    ids=[
        "gzip-truncated",
        "json-truncated",
        "streamed-json-truncated",
        "jsonl-truncated",
        "pickle-truncated",
        "pickle-global",
        "jsonl-invalid",
    ],
)
def test_an_unreadable_file_is_an_error(raw: Path, rel: str, damage, words: str) -> None:
    damage(raw / rel)
    code, report = _doctor("--raw", str(raw))
    assert code == 1
    entry = _by_path(report)[rel]
    assert entry["status"] == "unreadable" and entry["error"]
    assert words in entry["detail"], entry["detail"]
    task = rel.split("/")[0]
    # Paths are quoted for the shell where they need it: refs(unc).p does.
    assert (
        entry["fix"]
        == f"remove {shlex.quote(str(raw / rel))}, then unify download {task} --raw {raw}"
    )
    others = [f for f in report["files"] if f["path"] != rel and f["status"] != "absent"]
    assert all(f["status"] == "ok" for f in others)


def test_an_unreadable_optional_file_is_an_error_too(raw: Path) -> None:
    """The build reads an optional file when it is there, so it must parse."""
    _truncate(raw / "vqa2/v2_OpenEnded_mscoco_test2015_questions.json")
    code, report = _doctor("vqa2", "--raw", str(raw))
    assert code == 1
    assert _by_path(report)["vqa2/v2_OpenEnded_mscoco_test2015_questions.json"]["error"]


def test_a_readable_file_that_differs_warns_and_fails_only_when_strict(raw: Path) -> None:
    path = raw / "visual7w/dataset_v7w_pointing.json"
    data = path.read_bytes()
    i = data.index(b'"question":"') + len(b'"question":"')
    path.write_bytes(data[:i] + (b"Z" if data[i : i + 1] != b"Z" else b"Y") + data[i + 1 :])
    code, report = _doctor("visual7w", "--raw", str(raw))
    assert code == 0
    (entry,) = report["files"]
    assert entry["status"] == "differs" and not entry["error"]
    assert "the sample's manifest has" in entry["detail"]
    assert _doctor("visual7w", "--raw", str(raw), "--strict")[0] == 1
    text = CliRunner().invoke(main, ["doctor", "visual7w", "--raw", str(raw)])
    assert text.exit_code == 0 and "1 checksum differences (warnings)" in text.stdout


def test_a_declared_release_checksum_is_the_reference(raw: Path) -> None:
    (raw / MANIFEST).unlink()
    dest = "visual7w/dataset_v7w_pointing.json"
    found = source_of(dest)
    assert found is not None
    source, member = found
    actual = sha256_of(raw / dest)
    good = replace(source, members=(replace(member, sha256=actual),))
    (ok,) = diagnose(raw, ["visual7w"], sources=(good,))
    assert (ok.status, ok.reference) == ("ok", "the release")
    other = replace(source, members=(replace(member, sha256="f" * 64),))
    (differs,) = diagnose(raw, ["visual7w"], sources=(other,))
    assert differs.status == "differs" and "the release has " + "f" * 64 in differs.detail
    assert exit_code([differs], strict=False) == 0 and exit_code([differs], strict=True) == 1
    (bare,) = diagnose(raw, ["visual7w"], sources=SOURCES)
    assert (bare.status, bare.reference) == ("ok", "")


def test_refcoco_plus_in_its_alias_folder(raw: Path) -> None:
    (raw / "refcoco_plus").rename(raw / "refcoco+")
    code, report = _doctor("refcoco_plus", "--raw", str(raw))
    assert code == 0
    assert sorted(_by_path(report)) == ["refcoco+/instances.json", "refcoco+/refs(unc).p"]


def test_doctor_reads_with_the_limits_of_the_build(raw: Path) -> None:
    code, report = _doctor("visual7w", "--raw", str(raw), "--max-depth", "2")
    assert code == 1
    (entry,) = report["files"]
    assert entry["status"] == "unreadable"
    assert "nested deeper than 2 levels" in entry["detail"] and "--max-depth" in entry["detail"]
    assert _doctor("guesswhat", "--raw", str(raw), "--max-decompressed-bytes", "1K")[0] == 1
    assert _doctor("visual7w", "guesswhat", "--raw", str(raw))[0] == 0


def test_doctor_usage(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["doctor", "nope", "--raw", str(tmp_path)]).exit_code == 2
    missing = runner.invoke(main, ["doctor", "--raw", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
