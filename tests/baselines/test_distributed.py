"""Data-parallel training through torchrun on CPU (gloo, 2 processes): each step's loss
equals a one-process run's on the same global batch within 1e-4 relative (dropout off)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines.train import CHECKPOINT
from tests.baselines.test_cli import TINY
from tests.baselines.test_resume import ONE_PER_GROUP, losses
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]


def train(h5: Path, out: Path, config: Path, procs: int, *extra: str) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={procs}"] if procs > 1 else [sys.executable]  # fmt: skip
    cmd = [*launcher, "-m", "baselines.cli", "train", "--data", str(h5), "--tasks",
           ",".join(ONE_PER_GROUP), "--out", str(out), "--config", str(config), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "cfg.json"
    cfg = {**TINY, "dropout": 0.0, "batch_size": 8, "max_steps": 4, "validate": False}
    config.write_text(json.dumps(cfg))
    train(featured_h5, tmp_path / "one", config, 1)
    train(featured_h5, tmp_path / "two", config, 2)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(two) == [1, 2, 3, 4]
    for step in one:
        assert set(two[step]) == set(one[step])
        for task, value in one[step].items():
            assert two[step][task] == pytest.approx(value, rel=1e-4), (step, task)


@pytest.mark.slow
def test_a_stopped_tasks_head_stays_untouched_in_both(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    """Stop-and-go leaves a stopped task's head without gradients for three steps: with
    DistributedDataParallel they must stay unset (AdamW skips the head), as in one process;
    zero gradients would move the head by its momentum and change its next loss."""
    config = tmp_path / "cfg.json"
    cfg = {**TINY, "dropout": 0.0, "batch_size": 8, "max_steps": 1, "validate": False}
    config.write_text(json.dumps(cfg))
    start = tmp_path / "start"
    train(featured_h5, start, config, 1)
    state = torch.load(start / CHECKPOINT, weights_only=False)
    stopped = ONE_PER_GROUP[0]
    state["stop_and_go"][stopped]["stopped"] = True  # trains at iterations 4, 8, ...
    torch.save(state, start / CHECKPOINT)
    config.write_text(json.dumps({**cfg, "max_steps": 5}))
    for name, procs in (("one", 1), ("two", 2)):
        shutil.copytree(start, tmp_path / name)
        train(featured_h5, tmp_path / name, config, procs, "--resume")
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [sorted(one[s]) == sorted(two[s]) for s in range(2, 6)] == [True] * 4
    assert [stopped in one[s] for s in range(2, 6)] == [False, False, False, True]
    for step in range(2, 6):
        for task, value in one[step].items():
            assert two[step][task] == pytest.approx(value, rel=1e-4), (step, task)
