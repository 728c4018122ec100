"""Every head learns: per task, 32 training examples are learned until the server's scorer
gives them >= 90 %. A constant or misaligned prediction (wrong ids, vocabulary rows, box
order or candidate ids) cannot pass: the sample's answers and targets vary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.baselines.helpers import learned_score, tiny_config, train
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks


@pytest.mark.slow
@pytest.mark.parametrize("task", tasks.task_names())
def test_learns_32_examples(task: str, featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    trainer = train(featured_h5, tmp_path / "run", tiny_config([task]))
    assert learned_score(trainer, task) >= 90.0


#: Tasks whose adapter points at the dataset's candidate regions (the refer tasks), where
#: ``refer_candidates`` swaps the detector's regions for those boxes.
BOX_CHOICE = [t for t in tasks.task_names() if tasks.get(t).target_adapter == "box_choice"]


@pytest.mark.slow
def test_learns_with_the_datasets_candidate_boxes(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    task = BOX_CHOICE[0]
    trainer = train(featured_h5, tmp_path / "run", tiny_config([task], refer_candidates=True))
    assert trainer.infos[0].head == "candidates"
    assert learned_score(trainer, task) >= 90.0
