"""The `unify` command line: exit codes 0/1/2, messages, list/info/sample/build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from unify.cli import main
from unify.schema import SCHEMA_VERSION
from unify.tasks import UNIVERSES, task_names


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_build_info_roundtrip(tiny_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.h5"
    code, _, err = run("build", "--all", "--raw", str(tiny_raw), "--out", str(out))
    assert code == 0, err
    assert f"wrote {out}" in err
    code, text, _ = run("info", str(out))
    assert code == 0
    assert "vqa2                  minval        eval         3000" in text
    code, json_text, _ = run("info", str(out), "--json")
    summary = json.loads(json_text)
    assert summary["schema_version"] == SCHEMA_VERSION
    assert f"fingerprint: {summary['fingerprint']}\n" in text and len(summary["fingerprint"]) == 64
    assert summary["tasks"]["gqa"]["splits"]["trainval"]["role"] == "train"
    assert summary["build_options"]["tasks"] == list(task_names())
    assert summary["vocabularies"]["vqa2"]["min_count"] == 9
    assert {s["path"] for s in summary["sources"]} >= {"vgqa/image_data.json"}


def test_usage_errors_exit_2(tiny_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.h5"
    assert run("build", "--raw", str(tiny_raw), "--out", str(out))[0] == 2  # no tasks
    # An unknown task name is a bad argument (click's exit 2), naming the known ones.
    code, _, err = run("build", "nosuch", "--raw", str(tiny_raw), "--out", str(out))
    assert code == 2 and "'nosuch' is not a task; tasks: vqa2, gqa" in err
    assert not out.exists()
    assert run("build", "vqa2", "--all", "--raw", str(tiny_raw), "--out", str(out))[0] == 2
    out.write_text("x")
    code, _, err = run("build", "vqa2", "--raw", str(tiny_raw), "--out", str(out))
    assert code == 2 and "--force" in err
    assert out.read_text() == "x"
    assert (
        run("build", "vqa2", "--raw", str(tiny_raw), "--out", str(out), "--max-examples", "0")[0]
        == 2
    )


def test_data_errors_exit_1_with_one_line(tiny_raw: Path, tmp_path: Path) -> None:
    # A missing input is a data error (it used to be click's exit 2 with a usage banner).
    code, _, err = run("info", str(tmp_path / "missing.h5"))
    assert code == 1 and err == f"error: unified file {tmp_path / 'missing.h5'} does not exist\n"
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw)
    (raw / "gqa" / "testdev_balanced_questions.json").unlink()
    code, _, err = run("build", "--all", "--raw", str(raw), "--out", str(tmp_path / "u.h5"))
    assert code == 1
    assert err.startswith("error: required raw files are missing:")
    assert "testdev_balanced_questions.json" in err and "Traceback" not in err
    assert not (tmp_path / "u.h5").exists()
    (tmp_path / "junk.h5").write_text("junk")
    code, _, err = run("info", str(tmp_path / "junk.h5"))
    assert code == 1 and "cannot open as HDF5" in err


def test_list_marks_present_and_missing_files(tiny_raw: Path, tmp_path: Path) -> None:
    code, text, _ = run("list", "--raw", str(tiny_raw))
    assert code == 0
    assert "[     ok] vqa2/v2_mscoco_train2014_annotations.json" in text
    assert "[ absent] gqa/val_all_questions.json  (optional" in text
    assert "download: https://visualqa.org/download.html" in text
    code, text, _ = run("list", "--raw", str(tmp_path))
    assert code == 0 and "[MISSING] vgqa/image_data.json" in text


def test_list_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    code, text, err = run("list", "--raw", str(tmp_path / "nosuch"))
    assert code == 1 and text == ""
    assert err == f"error: raw folder {tmp_path / 'nosuch'} does not exist\n"


def test_sample_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert run("sample", "--out", str(tmp_path / name), "--seed", "3")[0] == 0
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    # Every release file of the 12 tasks (gzip, pickles, JSON Lines too, GQA's two choices
    # files and its submission questions), one feature TSV per image universe, the
    # organisers' answers of the hidden splits (vqa2 test2015, gqa submission) and the
    # manifest `unify doctor` verifies (deterministic too: checked below with the rest).
    organiser = [f for f in files if f.parts[0] == "organiser"]
    assert sorted(f.as_posix() for f in organiser) == [
        "organiser/gqa/submission_all_questions.json",
        "organiser/vqa2/v2_mscoco_test2015_annotations.json",
    ]
    assert len(files) == 34 + len(UNIVERSES) + len(organiser) + 1
    assert {f.name for f in files if f.parent.name == "features"} == {
        f"{u}.tsv" for u in UNIVERSES
    }
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "unify"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "build" in proc.stdout


def _summary(err: str) -> tuple[dict[str, dict[str, int]], str]:
    """The per-split counts and the cleaning line of a build summary."""
    lines = err.splitlines()
    start = lines.index("examples per split in the file:") + 1
    holds = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            return holds, line
        task, _, sizes = line.strip().partition(": ")
        holds[task] = {s.rsplit(" ", 1)[0]: int(s.rsplit(" ", 1)[1]) for s in sizes.split(", ")}
    raise AssertionError(f"no cleaning line in {err!r}")


def test_build_summary_is_what_the_file_holds(tiny_raw: Path, tmp_path: Path) -> None:
    from unify.reader import UnifiedFile

    out = tmp_path / "u.h5"
    code, _, err = run("build", "--all", "--raw", str(tiny_raw), "--out", str(out))
    assert code == 0, err
    holds, cleaning = _summary(err)
    with UnifiedFile(out) as uf:
        in_file = {t: {s: uf.split(t, s).num_examples for s in uf.splits(t)} for t in uf.tasks}
        read_counts = {t: uf.build_report[t]["counts"] for t in uf.tasks}
    assert holds == in_file
    # The converters' counts are taken before cleaning: the summary must not print them.
    assert holds["vqa2"]["trainval"] < read_counts["vqa2"]["trainval"]
    moved = {t: s["mteval"] for t, s in in_file.items() if "mteval" in s}
    assert moved and "nlvr2" not in moved  # the tiny sample's NLVR2 touches no eval image
    listing = ", ".join(f"{t} {n}" for t, n in moved.items())
    assert cleaning == f"leakage cleaning moved to mteval: {listing} (see `unify leaks`)"


def test_build_summary_without_cleaning(tiny_raw: Path, tmp_path: Path) -> None:
    from unify.reader import UnifiedFile

    out = tmp_path / "u.h5"
    code, _, err = run("build", "--all", "--raw", str(tiny_raw), "--out", str(out), "--no-clean")
    assert code == 0, err
    holds, cleaning = _summary(err)
    assert all("mteval" not in splits for splits in holds.values())
    with UnifiedFile(out) as uf:
        leaking = uf.build_report["leakage"]["leaking_training_examples"]
    assert leaking > 0
    assert cleaning == (
        f"not cleaned (--no-clean): {leaking} training examples touch evaluation images "
        "(see `unify leaks`)"
    )
    code, _, err = run("build", "vqa2", "--raw", str(tiny_raw), "--out", str(out), "--force", "-q")
    assert (code, err) == (0, "")


def test_sample_needs_force_for_a_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert run("sample", "--out", str(out), "--no-features")[0] == 0
    question = out / "vqa2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    original = question.read_bytes()
    question.write_text("edited by the user")
    (out / "mine.txt").write_text("keep")
    code, _, err = run("sample", "--out", str(out), "--no-features")
    assert code == 2
    assert err == f"error: sample folder {out} is not empty; use --force to write over its files\n"
    assert question.read_text() == "edited by the user"
    code, _, err = run("sample", "--out", str(out), "--no-features", "--force")
    assert code == 0, err
    assert question.read_bytes() == original
    assert (out / "mine.txt").read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("sample", "--out", str(empty), "--no-features")[0] == 0  # empty: no --force


def test_exit_codes_usage_2_data_1_leaks_3(tiny_raw: Path, tiny_h5: Path, tmp_path: Path) -> None:
    """click's convention for usage errors everywhere; data errors 1; leaks found 3."""
    h5 = tmp_path / "copy.h5"
    shutil.copyfile(tiny_h5, h5)
    tsv = str(tiny_raw / "features" / "coco.tsv")
    imp = ("features", "import", str(h5), tsv, "--name", "f", "--universe", "coco")
    assert run(*imp)[0] == 0
    usage = [
        ("build", "vqa2", "--raw", str(tiny_raw)),  # no --out
        ("build", "vqa2", "--raw", str(tiny_raw), "--out", str(h5)),  # exists, no --force
        ("build", "vqa2", "--raw", str(tiny_raw), "--out", "x", "--keep-train", "vqa3"),
        ("build", "vqa2", "--raw", str(tiny_raw), "--out", "x", "--frobnicate"),
        ("leaks", str(h5), "--against", tsv),  # no --universe
        ("leaks", str(h5), "--universe", "mars"),
        imp,  # the feature set exists, no --force
        ("features", "import", str(h5), tsv, "--name", "g", "--universe", "imagenet"),
        ("sample", "--out", str(tiny_raw)),  # not empty, no --force
        ("sample", "--out", str(tmp_path / "s"), "--scale", "huge"),
        ("info",),
        ("nosuch",),
    ]
    for args in usage:
        assert run(*args)[0] == 2, args
    bad = tmp_path / "ids.txt"
    bad.write_text("12\nnot-an-id\n")
    data = [
        ("info", str(tmp_path / "nosuch.h5")),
        ("leaks", str(h5), "--against", str(bad), "--universe", "coco"),
        ("build", "vqa2", "--raw", str(tmp_path), "--out", str(tmp_path / "u.h5")),
    ]
    for args in data:
        assert run(*args)[0] == 1, args
    dirty = tmp_path / "dirty.h5"
    assert run("build", "--all", "--raw", str(tiny_raw), "--out", str(dirty), "--no-clean")[0] == 0
    assert run("leaks", str(dirty))[0] == 3
    assert run("leaks", str(h5))[0] == 0
