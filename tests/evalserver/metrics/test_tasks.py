"""Every task of ``unify.tasks`` on the tiny sample: build -> ground truth of the default
phase -> official prediction files -> scores.

Perfect predictions score the best value of the primary metric; a uniform guess over what
the TaskSpec's ``chance.over`` names scores within the 99% interval around the chance
level (per-example expected values, normal approximation); the Result's columns are the
TaskSpec's; the per-example arrays are aligned with the ground truth and kept out of the
summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalserver.metrics import SCORERS, GroundTruth, Result, load_groundtruth, score_file
from evalserver.metrics.chance import chance_level, chance_submission
from unify import tasks

TASKS = tasks.task_names()


def _vqa(gt: GroundTruth) -> tuple[Any, ...]:
    """The answer most humans gave (four or more in the sample: 100 each)."""
    offsets, answers = gt.answer_offsets, gt.answers
    best = [
        Counter(answers[offsets[i] : offsets[i + 1]]).most_common(1)[0][0]
        for i in range(len(offsets) - 1)
    ]
    return gt.question_ids, best, {}


def _retrieval(gt: GroundTruth) -> tuple[Any, ...]:
    scores = (gt.caption_image[:, None] == np.arange(len(gt.image_ids))).astype(np.float32)
    return gt.caption_ids, scores, {"image_ids": gt.image_ids}


def _snli_ve(gt: GroundTruth) -> tuple[Any, ...]:
    scored = np.asarray(gt.labels) >= 0
    return np.asarray(gt.pair_ids)[scored], np.asarray(gt.labels)[scored], {}


#: metric -> the right answer of every example, from its ground truth: (ids, values, extra)
PERFECT: dict[str, Callable[[GroundTruth], tuple[Any, ...]]] = {
    "vqa": _vqa,
    "gqa": lambda gt: (gt.ids[: gt.num_balanced], gt.answers[: gt.num_balanced], {}),
    "vgqa": lambda gt: (gt.qa_ids, gt.answers, {}),
    "retrieval": _retrieval,
    "refexp": lambda gt: (gt.sent_ids, gt.boxes, {}),
    "pointing": lambda gt: (gt.qa_ids, gt.gold_box_ids, {}),
    "guesswhat": lambda gt: (gt.game_ids, gt.object_ids, {}),
    "nlvr2": lambda gt: (gt.identifiers, gt.labels.astype(np.int64), {}),
    "snli_ve": _snli_ve,
}


@pytest.fixture(scope="module")
def scored(tiny_h5: Path) -> dict[str, tuple[GroundTruth, Result, Result]]:
    """Per task: its ground truth, the perfect result and the chance-level result."""
    out = {}
    for task in TASKS:
        gt = load_groundtruth(tiny_h5, task)
        ids, values, extra = PERFECT[gt.metric](gt)
        perfect = score_file(task, gt, SCORERS[gt.metric].write(ids, values, **extra))
        chance = score_file(task, gt, chance_submission(gt, seed=0))
        out[task] = (gt, perfect, chance)
    return out


def test_every_metric_has_a_perfect_submission() -> None:
    assert set(PERFECT) == set(SCORERS)


@pytest.mark.parametrize("task", TASKS)
def test_perfect_predictions_score_the_best_value(task: str, scored: dict) -> None:
    spec = tasks.get(task)
    _, perfect, _ = scored[task]
    assert spec.column(spec.primary).higher_is_better  # every primary is a percentage
    assert perfect.metrics[spec.primary] == 100.0


@pytest.mark.parametrize("task", TASKS)
def test_chance_level_file_scores_within_the_99_interval(task: str, scored: dict) -> None:
    spec = tasks.get(task)
    gt, _, chance = scored[task]
    level = chance_level(gt)
    low, high = level.interval(0.99)
    assert low <= chance.metrics[spec.primary] <= high, (level.percent, low, high)
    if spec.chance.percent is not None:  # a fixed level: the data must agree with it
        assert level.percent == pytest.approx(spec.chance.percent, abs=1e-9)
    assert 0 < level.percent < 100


@pytest.mark.parametrize("task", TASKS)
def test_result_columns_are_the_taskspec_columns(task: str, scored: dict) -> None:
    spec = tasks.get(task)
    _, perfect, _ = scored[task]
    declared = [c.name for c in spec.columns]
    assert perfect.primary == spec.primary
    assert set(perfect.metrics) <= set(declared), "a metric the TaskSpec does not declare"
    assert list(perfect.metrics) == [c for c in declared if c in perfect.metrics]  # spec order
    for column in spec.columns:
        if column.absent_when is None:
            assert column.name in perfect.metrics, f"{column.name} is declared always present"
        else:
            assert perfect.absent.get(column.name, column.absent_when) == column.absent_when
        if column.name in perfect.metrics and column.name != spec.primary:
            assert (column.name not in perfect.lower_is_better) == column.higher_is_better
    assert set(perfect.absent) == set(declared) - set(perfect.metrics)


@pytest.mark.parametrize("task", TASKS)
def test_result_records_what_it_was_scored_against(task: str, scored: dict) -> None:
    gt, perfect, _ = scored[task]
    assert (perfect.task, perfect.phase, perfect.splits) == (task, gt.phase, gt.splits)
    assert perfect.fingerprint == gt.fingerprint
    assert perfect.version in {SCORERS[gt.metric].version, *SCORERS[gt.metric].variants.values()}
    summary = perfect.to_dict()
    assert (summary["task"], summary["phase"], summary["version"]) == (
        task,
        gt.phase,
        perfect.version,
    )


def _sizes(value: Any) -> list[int]:
    """Lengths of every list and mapping nested in ``value``."""
    if isinstance(value, dict):
        return [len(value), *(n for v in value.values() for n in _sizes(v))]
    if isinstance(value, list):
        return [len(value), *(n for v in value for n in _sizes(v))]
    return []


@pytest.mark.parametrize("task", TASKS)
def test_per_example_arrays_are_aligned_and_apart(task: str, scored: dict) -> None:
    gt, perfect, chance = scored[task]
    ids = SCORERS[gt.metric].example_ids(gt.data)
    for result in (perfect, chance):
        score = result.per_example["score"]
        assert score.dtype == np.float64 and len(score) == len(ids)
        assert np.asarray(result.example_ids).tolist() == np.asarray(ids).tolist()
        defined = score[~np.isnan(score)]
        assert ((defined >= 0) & (defined <= 1)).all()
        # ``score`` is each example's share of the primary metric.
        primary = result.metrics[result.primary]
        assert 100 * defined.mean() == pytest.approx(primary, abs=0.005)
        # The summary never grows with the split: nothing in it has one entry per example.
        assert max(_sizes(result.to_dict()), default=0) < len(ids)
    assert (perfect.per_example["score"][~np.isnan(perfect.per_example["score"])] == 1).all()
