"""Data-parallel training through torchrun on CPU (gloo, 2 processes): each step's loss
equals a one-process run's on the same global batch within 1e-4 relative (dropout off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.baselines.test_cli import TINY
from tests.baselines.test_resume import ONE_PER_GROUP, losses
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]


def train(h5: Path, out: Path, config: Path, procs: int) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={procs}"] if procs > 1 else [sys.executable]  # fmt: skip
    cmd = [*launcher, "-m", "baselines.cli", "train", "--data", str(h5), "--tasks",
           ",".join(ONE_PER_GROUP), "--out", str(out), "--config", str(config)]  # fmt: skip
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
