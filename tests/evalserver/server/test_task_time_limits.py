"""Per-task scoring time limits (``VL12_SCORE_TIME_LIMITS``): a task with its own limit is
stopped at it, with a message naming that limit and its setting; other tasks keep the
default; the pool's (Celery's) limit is the largest of them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import evalserver.worker.tasks as worker_tasks
from evalserver.db.models import Status
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.settings import Settings
from evalserver.worker.tasks import Outcome, WorkerState
from tests.evalserver.server.live import Live
from unify import tasks


def test_a_task_with_its_own_limit_is_stopped_there_and_others_are_not(
    live: Live, tiny_h5: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker_tasks.score_validated

    def slow(*args: Any) -> Any:  # a scorer that takes 1.5 s, whatever the task
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return real(*args)

    monkeypatch.setattr(worker_tasks, "score_validated", slow)
    settings = live.settings.model_copy(update={"score_time_limits": {"nlvr2": 0.3}})
    state = WorkerState(settings)
    nlvr2 = live.submit(live.team("a"), "nlvr2",
                        chance_submission(load_groundtruth(tiny_h5, "nlvr2"), 1), send=False)
    refcoco = live.submit(live.team("b"), "refcoco",
                          chance_submission(load_groundtruth(tiny_h5, "refcoco"), 1), send=False)
    assert state.run(nlvr2) == Outcome.FAILED
    row = live.row(nlvr2)
    assert row.status == Status.failed
    assert row.error == (
        f"scoring nlvr2, phase {row.phase} failed: time limit of 0.3 s exceeded "
        "(VL12_SCORE_TIME_LIMITS[nlvr2]); stopped"
    )
    assert row.arrays_path is None
    # The default (600 s) holds for refcoco: it is scored, slowly.
    assert state.run(refcoco) == Outcome.SCORED, live.row(refcoco).error
    # The timer is gone after the run: nothing fires later in this process.
    time.sleep(0.5)


def test_the_setting_is_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slow, quick, other = tasks.task_names()[:3]
    monkeypatch.setenv("VL12_SCORE_TIME_LIMITS", json.dumps({slow: 1200, quick: 30}))
    settings = Settings(data_dir=tmp_path)
    assert settings.score_time_limit_for(slow) == (1200, f"VL12_SCORE_TIME_LIMITS[{slow}]")
    assert settings.score_time_limit_for(quick) == (30, f"VL12_SCORE_TIME_LIMITS[{quick}]")
    assert settings.score_time_limit_for(other) == (600, "VL12_SCORE_TIME_LIMIT_S")
    assert settings.score_time_limit_max_s == 1200  # the pool's limit
    monkeypatch.setenv("VL12_SCORE_TIME_LIMITS", '{"vqa3": 10}')
    with pytest.raises(ValidationError, match=r"unknown task.*vqa3"):
        Settings(data_dir=tmp_path)
    monkeypatch.setenv("VL12_SCORE_TIME_LIMITS", json.dumps({slow: 0}))
    with pytest.raises(ValidationError, match=f"{slow} must be a positive"):
        Settings(data_dir=tmp_path)
