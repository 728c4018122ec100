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
from unify.tasks import task_names


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
    assert run("build", "vqa2", "--all", "--raw", str(tiny_raw), "--out", str(out))[0] == 2
    out.write_text("x")
    code, _, err = run("build", "vqa2", "--raw", str(tiny_raw), "--out", str(out))
    assert code == 2 and "--force" in err
    assert out.read_text() == "x"
    assert (
        run("build", "vqa2", "--raw", str(tiny_raw), "--out", str(out), "--max-examples", "0")[0]
        == 2
    )
    assert run("info", str(tmp_path / "missing.h5"))[0] == 2


def test_data_errors_exit_1_with_one_line(tiny_raw: Path, tmp_path: Path) -> None:
    code, _, err = run("build", "nosuch", "--raw", str(tiny_raw), "--out", str(tmp_path / "u.h5"))
    assert code == 1 and "unknown task(s): nosuch" in err
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


def test_list_marks_present_and_missing_files(tiny_raw: Path) -> None:
    code, text, _ = run("list", "--raw", str(tiny_raw))
    assert code == 0
    assert "[     ok] vqa2/v2_mscoco_train2014_annotations.json" in text
    assert "[ absent] gqa/val_all_questions.json  (optional" in text
    assert "download: https://visualqa.org/download.html" in text
    code, text, _ = run("list", "--raw", "/nonexistent")
    assert "[MISSING] vgqa/image_data.json" in text


def test_sample_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert run("sample", "--out", str(tmp_path / name), "--seed", "3")[0] == 0
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    # Every release file of the 12 tasks (gzip, pickles, JSON Lines too, GQA's two choices
    # files) and 4 feature TSVs.
    assert len(files) == 37
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "unify"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "build" in proc.stdout
