"""The whole chain on the tiny sample: ``baseline train`` -> ``baseline predict`` ->
``evalserver score`` accepts every file of every task (each gives a number)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from baselines.cli import main as baseline
from evalserver.cli import main as evalserver
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks

TINY = {"dim": 32, "layers": 1, "attention_heads": 2, "ff": 64, "threads": 1, "batch_size": 8}


def score(h5: Path, path: Path) -> float:
    task, phase = path.name.split(".")[:2]
    args = ["score", "--data", str(h5), "--task", task, "--phase", phase, "--json", str(path)]
    r = CliRunner().invoke(evalserver, args)
    assert r.exit_code == 0, (path.name, r.output)
    d = json.loads(r.output)
    return float(d["metrics"][d["primary"]])


@pytest.mark.slow
def test_train_predict_score_every_task(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    r = CliRunner().invoke(
        baseline,
        ["train", "--data", str(featured_h5), "--tasks", "all", "--out", str(run),
         "--config", str(config), "--max-steps", "2", "--val-every", "1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (run / "checkpoint.pt").exists() and (run / "validation.png").exists()
    validations = [
        json.loads(x)["validation"]
        for x in (run / "metrics.jsonl").read_text().splitlines()
        if "validation" in x
    ]
    assert [v["step"] for v in validations] == [1, 2]
    assert set(validations[-1]["scores"]) == set(tasks.task_names())
    # throughput leaves the validations out: each says how long it took
    summary = json.loads(r.output[r.output.index('{"steps"') :])
    assert all(v["seconds"] >= 0 for v in validations)
    assert summary["validation_seconds"] == pytest.approx(sum(v["seconds"] for v in validations))
    assert summary["seconds"] >= summary["validation_seconds"]
    assert summary["examples_per_second"] > 0
    for phase in ("test", "val"):
        out = tmp_path / f"pred-{phase}"
        r = CliRunner().invoke(
            baseline,
            ["predict", "--run", str(run), "--data", str(featured_h5), "--phase", phase,
             "--out", str(out)],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        files = sorted(out.iterdir())
        assert sorted(f.name.split(".")[0] for f in files) == sorted(tasks.task_names())
        for f in files:
            task, p = f.name.split(".")[:2]
            spec = tasks.get(task)
            assert p == (spec.val_split if phase == "val" else spec.default_phase)
            assert math.isfinite(score(featured_h5, f))


def test_chance_predictions_score(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "chance"
    r = CliRunner().invoke(
        baseline, ["predict", "--model", "chance", "--data", str(featured_h5), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert len(list(out.iterdir())) == len(tasks.task_names())
    for f in out.iterdir():
        assert 0.0 <= score(featured_h5, f) <= 100.0


def test_missing_features_is_one_clear_error(tiny_h5: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        baseline,
        ["train", "--data", str(tiny_h5), "--tasks", tasks.task_names()[0], "--out",
         str(tmp_path / "run"), "--max-steps", "1"],
    )  # fmt: skip
    assert r.exit_code == 1
    assert "universe" in r.output and "unify features import" in r.output
    assert "Traceback" not in r.output


def test_usage_errors_exit_2(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    for args in (
        ["train", "--data", str(featured_h5), "--tasks", "nope", "--out", str(tmp_path / "r")],
        ["train", "--data", str(featured_h5), "--out", str(tmp_path / "r"), "--time-budget", "x"],
        ["predict", "--data", str(featured_h5), "--out", str(tmp_path / "p")],
    ):
        r = CliRunner().invoke(baseline, args)
        assert r.exit_code == 2, (args, r.output)


def test_predict_without_a_run_is_exit_1(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    r = CliRunner().invoke(
        baseline,
        ["predict", "--run", str(tmp_path / "none"), "--data", str(featured_h5), "--out",
         str(tmp_path / "p")],
    )  # fmt: skip
    assert r.exit_code == 1 and "no checkpoint" in r.output


def test_durations() -> None:
    from baselines.cli import parse_duration

    assert [parse_duration(x) for x in ("90", "90s", "10m", "1.5h")] == [90, 90, 600, 5400]


def test_time_budget_stops_training(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "validate": False}))
    r = CliRunner().invoke(
        baseline,
        ["train", "--data", str(featured_h5), "--tasks", tasks.task_names()[0], "--out",
         str(tmp_path / "run"), "--config", str(config), "--max-steps", "100000",
         "--time-budget", "2s"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index('{"steps"') :])
    assert 1 <= summary["steps"] < 100000
    assert summary["seconds"] < 60
