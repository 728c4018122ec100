"""A run resumed from its checkpoint continues with exactly the losses of a run never
stopped (data order, dropout, optimizer and schedule state are all in the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.train import Trainer
from tests.baselines.helpers import tiny_config
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks

#: One task of each group: every kind of head and batch in one short run.
ONE_PER_GROUP = [tasks.tasks_in_group(g)[0].name for g in tasks.GROUPS]


def losses(run: Path) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_gives_the_same_next_losses(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tiny_config(ONE_PER_GROUP, max_steps=6, dropout=0.1, batch_size=8)
    Trainer(featured_h5, tmp_path / "straight", cfg).run(progress=False)

    first = Trainer(featured_h5, tmp_path / "resumed", cfg)
    with (tmp_path / "resumed" / "metrics.jsonl").open("w") as log:
        for _ in range(3):
            log.write(json.dumps({"step": first.step + 1, "loss": first.train_step()}) + "\n")
    first.save()
    Trainer(featured_h5, tmp_path / "resumed", cfg, resume=True).run(progress=False)

    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert sorted(resumed) == list(range(1, 7))
    for step in range(1, 7):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6), step


def test_resume_without_checkpoint_is_an_error(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(featured_h5, tmp_path / "none", tiny_config(ONE_PER_GROUP), resume=True)
