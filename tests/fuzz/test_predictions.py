"""Corrupted prediction files through ``evalserver score`` against the tiny build.

One test per task and format of its metric's scorer (derived from the TaskSpecs and the
scorer registry), plain and gzipped. The server runs these parsers on uploads from the
public: every id exactly once, values as docs/metrics.md says, bounded memory (the bombs,
slow, are a 3 GiB gzip and a 3 GiB NPZ member).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalserver.metrics import get_scorer, tasks_of_metric
from tests.fuzz.runner import bad, explore, report
from tests.fuzz.seeds import PredictionSeed
from tests.fuzz.targets import PredictionFuzz
from unify.tasks import all_tasks

EXAMPLES = 4
GZ_EXAMPLES = 2
BOMB_EXAMPLES = 2

FORMATS = [
    pytest.param(task, fmt.name, gz, id=f"{task}:{fmt.kind}{'.gz' if gz else ''}:{fmt.name}")
    for task in all_tasks()
    for fmt in get_scorer(task).formats
    for gz in (False, True)
]
#: Bombs once per metric and format (its first task): the parser is the metric's.
BOMBS = [
    pytest.param(task, fmt.name, False, id=f"{metric}:{fmt.kind}")
    for metric in dict.fromkeys(spec.metric for spec in all_tasks().values())
    for task in tasks_of_metric(metric)[:1]
    for fmt in get_scorer(task).formats
]


def _seed(seeds: list[PredictionSeed], task: str, fmt: str) -> PredictionSeed:
    return next(s for s in seeds if s.task == task and s.format_name == fmt)


@pytest.mark.parametrize(("task", "fmt", "gz"), FORMATS)
def test_score_survives_corrupted_predictions(
    task: str,
    fmt: str,
    gz: bool,
    prediction_seed_list: list[PredictionSeed],
    tiny_h5: Path,
    fuzz_work: Path,
) -> None:
    fuzz = PredictionFuzz(_seed(prediction_seed_list, task, fmt), tiny_h5, gz)
    seed = fuzz.run(None, fuzz_work)
    if seed.outcome.kind != "ok":
        pytest.fail("the uncorrupted seed fails:\n" + seed.describe(), pytrace=False)
    examples = GZ_EXAMPLES if gz else EXAMPLES
    results = explore(fuzz.strategy(bombs="no"), lambda c: fuzz.run(c, fuzz_work), examples)
    assert results, "no case ran"
    if bad(results):
        pytest.fail(report(results), pytrace=False)


@pytest.mark.slow
@pytest.mark.parametrize(("task", "fmt", "gz"), BOMBS)
def test_score_survives_bombs(
    task: str,
    fmt: str,
    gz: bool,
    prediction_seed_list: list[PredictionSeed],
    tiny_h5: Path,
    fuzz_work: Path,
) -> None:
    seed = _seed(prediction_seed_list, task, fmt)
    fuzz = PredictionFuzz(seed, tiny_h5, gz=seed.kind != "npz")
    results = explore(fuzz.strategy(bombs="only"), lambda c: fuzz.run(c, fuzz_work), BOMB_EXAMPLES)
    if bad(results):
        pytest.fail(report(results), pytrace=False)
