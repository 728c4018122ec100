"""Damaged unified files through ``unify info``, ``unify leaks``, ``unify verify`` and
``evalserver score`` (the tiny build with region features, damaged byte by byte and
through HDF5: objects and attributes removed or retyped, indices out of range, offsets
backwards, image keys swapped...). What each command must refuse is
``rules.unified_verdict``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalserver.metrics import get_scorer
from tests.fuzz.runner import bad, explore, report
from tests.fuzz.seeds import PredictionSeed
from tests.fuzz.targets import UNIFIED_COMMANDS, UnifiedFuzz, unify_commands

EXAMPLES = 8


def primary_predictions(seeds: list[PredictionSeed]) -> dict[str, PredictionSeed]:
    """Each task's submission in its metric's first format."""
    return {s.task: s for s in seeds if s.format_name == get_scorer(s.task).formats[0].name}


@pytest.mark.parametrize("command", UNIFIED_COMMANDS)
def test_commands_survive_damaged_unified_file(
    command: str,
    featured_h5: Path,
    prediction_seed_list: list[PredictionSeed],
    fuzz_work: Path,
) -> None:
    if command != "score":
        assert command in unify_commands(), f"`unify {command}` does not exist"
    fuzz = UnifiedFuzz(featured_h5, command, primary_predictions(prediction_seed_list))
    seed = fuzz.run(None, fuzz_work)
    if seed.outcome.kind != "ok":
        pytest.fail("the undamaged file fails:\n" + seed.describe(), pytrace=False)
    results = explore(fuzz.strategy(), lambda c: fuzz.run(c, fuzz_work), EXAMPLES)
    assert results, "no case ran"
    if bad(results):
        pytest.fail(report(results), pytrace=False)
