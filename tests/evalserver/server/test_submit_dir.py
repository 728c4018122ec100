"""``evalserver submit --dir``: a folder written by ``baseline predict`` goes up as it is, one
submission per file, its task (and phase) read from the file's name; a name not understood
stops everything before anything is uploaded; the report is file by file. Against a live API
process (and a worker for ``--wait``), every process stopped by ``Live.close``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from baselines.cli import main as baseline
from evalserver.db.models import BenchmarkVersion, Status, Submission
from evalserver.metrics import SCORERS
from evalserver.prediction_files import bundle_name, task_phase_of
from tests.evalserver.server.live import ROOT, Live
from unify import tasks


# --------------------------------------------------------------------------- names
def test_every_name_baseline_predict_writes_reads_back() -> None:
    for task in tasks.task_names():
        spec = tasks.get(task)
        for phase in spec.phase_names:
            for fmt in SCORERS[spec.metric].formats:
                name = bundle_name(task, phase, fmt.kind)
                assert task_phase_of(name) == (task, phase)
                assert task_phase_of(f"some/folder/{name}.gz") == (task, phase)
        assert task_phase_of(f"{task}.json") == (task, None)
        assert task_phase_of(f"{task}.json.gz") == (task, None)  # .gz is no phase


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("notatask.x.json", "not named TASK.PHASE.EXT"),
        ("vqa2", "not named TASK.PHASE.EXT"),
        ("README.md", "not named TASK.PHASE.EXT"),
        ("vqa2.nophase.json", "vqa2 has no phase or split 'nophase'"),
    ],
)
def test_a_name_not_understood_is_named(name: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        task_phase_of(f"preds/{name}")
    assert str(caught.value).startswith(f"preds/{name}: ") and says in str(caught.value)


# --------------------------------------------------------------------------- the command
def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evalserver.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def predict(tiny_h5: Path, out: Path, task_list: list[str], phase: str = "test") -> None:
    """What the README and the docs say to run: ``baseline predict`` (chance model)."""
    done = CliRunner().invoke(baseline, ["predict", "--model", "chance", "--data", str(tiny_h5),
                                         "--phase", phase, "--tasks", ",".join(task_list),
                                         "--out", str(out)])
    assert done.exit_code == 0, done.output


def board_tasks(live: Live) -> list[str]:
    with Session(live.engine) as session:
        bench = session.scalars(select(BenchmarkVersion)).one()
        loaded = {(p.task, p.phase) for p in bench.phases}
    return [t for t in tasks.task_names() if (t, tasks.get(t).default_phase) in loaded]


def rows(live: Live) -> list[Submission]:
    with Session(live.engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Submission).order_by(Submission.task)))


def test_usage_errors_upload_nothing(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin", "VL12_TOKEN": "t",
           "VL12_URL": "http://127.0.0.1:9"}  # nothing listens there: never reached
    folder = tmp_path / "preds"
    folder.mkdir()
    (folder / "nlvr2.test1.csv").write_text("id,label\n")
    (folder / "oops.txt").write_text("")
    (folder / "vqa2.nophase.json").write_text("[]")
    done = cli(env, "submit", "--dir", str(folder))
    assert done.returncode == 2, done.stderr
    assert "nothing was submitted" in done.stderr
    assert f"{folder / 'oops.txt'}: not named TASK.PHASE.EXT" in done.stderr
    assert f"{folder / 'vqa2.nophase.json'}: vqa2 has no phase" in done.stderr
    assert "cannot reach" not in done.stderr and "Traceback" not in done.stderr
    (folder / "oops.txt").unlink()
    (folder / "vqa2.nophase.json").unlink()
    (folder / "nlvr2.csv").write_text("id,label\n")
    twice = cli(env, "submit", "--dir", str(folder), "--phase", "test1")
    assert twice.returncode == 2 and "nlvr2, phase test1, again" in twice.stderr
    clash = cli(env, "submit", "--dir", str(folder), "--phase", "dev")
    assert clash.returncode == 2
    assert "its name says phase 'test1', --phase says 'dev'" in clash.stderr
    both = cli(env, "submit", "--dir", str(folder), str(folder / "nlvr2.csv"))
    assert both.returncode == 2 and "give no FILE nor --task" in both.stderr
    neither = cli(env, "submit")
    assert neither.returncode == 2 and "--dir DIR" in neither.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no prediction file" in cli(env, "submit", "--dir", str(empty)).stderr


def test_a_bundle_is_submitted_file_by_file_then_waited_for(
    live: Live, tiny_h5: Path, tmp_path: Path
) -> None:
    url = live.api()
    env = {**live.env, "VL12_URL": url, "VL12_TOKEN": live.team_token("alpha")}
    chosen = board_tasks(live)[:3]
    assert len(chosen) == 3
    folder = tmp_path / "preds"
    predict(tiny_h5, folder, chosen)
    # A broken file for one task: reported with the validator's report, the others go.
    bad_task = chosen[-1]
    (bad,) = folder.glob(f"{bad_task}.*")
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    try:
        done = cli(env, "submit", "--dir", str(folder), "--method", "bundle")
        assert done.returncode == 1, done.stdout + done.stderr
        report = done.stdout
        for task in chosen[:-1]:
            (path,) = folder.glob(f"{task}.*")
            assert f"{path}:\n  submission " in report and ": queued" in report
        assert f"{bad}: rejected: " in report and "problem" in report
        assert "2 of 3 file(s) accepted" in done.stderr
        made = rows(live)
        assert sorted(r.task for r in made) == sorted(chosen[:-1])
        for row in made:
            assert row.phase == tasks.get(row.task).default_phase  # from the names
            assert row.method_name == "bundle" and row.status == Status.queued
            assert row.original_name == bundle_name(row.task, row.phase,
                                                    row.original_name.rsplit(".", 1)[1])

        # The good files again, with --wait and a worker: the same submissions, scored.
        bad.unlink()
        live.worker()
        again = cli(env, "submit", "--dir", str(folder), "--method", "bundle", "--wait",
                    "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        listed = json.loads(again.stdout)
        assert [Path(x["file"]).name.split(".")[0] for x in listed] == sorted(chosen[:-1])
        assert {x["submission"]["id"] for x in listed} == {r.id for r in made}
        assert all(x["submission"]["status"] == "scored" and x["error"] is None
                   for x in listed)
        assert len(rows(live)) == 2  # nothing submitted twice

        # A name without a phase takes --phase (here a split of nlvr2 that is its own board).
        if "nlvr2" in board_tasks(live):
            other = tmp_path / "dev"
            predict(tiny_h5, other, ["nlvr2"], phase="dev")
            (other / "nlvr2.dev.csv").rename(other / "nlvr2.csv")
            dev = cli(env, "submit", "--dir", str(other), "--phase", "dev", "--wait")
            assert dev.returncode == 0, dev.stdout + dev.stderr
            assert "nlvr2, phase dev" in dev.stdout and ": scored" in dev.stdout
    except AssertionError:
        print(live.logs())
        raise
