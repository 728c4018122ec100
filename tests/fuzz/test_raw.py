"""Corrupted raw release files through ``unify build TASK`` (the real command, in a forked
child with a memory limit and a timeout).

One test per release file a converter declares (derived from the TaskSpecs), each running
a fixed, derandomised set of corruptions of a small valid seed: none may give a traceback,
a crash, a silent acceptance of a corruption that must be rejected (``rules``), an error
that names no file, or anything written on failure. A failure lists every bad case with
its command line. The gzip bombs are the slow ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.runner import bad, explore, report
from tests.fuzz.seeds import CASE, RawSeeds
from tests.fuzz.targets import RawFuzz, RawTarget, declared_raw_files

#: Cases per file: the converter cases build in milliseconds, the sample's in tenths.
EXAMPLES = {CASE: 4}
SAMPLE_EXAMPLES = 2
BOMB_EXAMPLES = 2

FILES = [pytest.param(task, file, id=f"{task}/{file}") for task, file in declared_raw_files()]
GZIPPED = [p for p in FILES if str(p.values[1]).endswith(".gz")]


def _fuzz(raw_seeds: RawSeeds, task: str, file: str) -> RawFuzz:
    sources = raw_seeds.sources_of(task, file)
    assert sources, (
        f"no seed holds {task}/{file}: write it in the task's converter case, the sample, "
        "or add a recipe to tests/fuzz/seeds.py DERIVED"
    )
    return RawFuzz(raw_seeds, RawTarget(task, file, sources[0]))


@pytest.mark.parametrize(("task", "file"), FILES)
def test_build_survives_corrupted_raw_file(
    task: str, file: str, raw_seeds: RawSeeds, fuzz_work: Path
) -> None:
    fuzz = _fuzz(raw_seeds, task, file)
    seed = fuzz.run(None, fuzz_work)
    if seed.outcome.kind != "ok":
        pytest.fail("the uncorrupted seed fails:\n" + seed.describe(), pytrace=False)
    examples = EXAMPLES.get(fuzz.target.source, SAMPLE_EXAMPLES)
    results = explore(fuzz.strategy(bombs="no"), lambda c: fuzz.run(c, fuzz_work), examples)
    assert results, "no case ran"
    if bad(results):
        pytest.fail(report(results), pytrace=False)


@pytest.mark.slow
@pytest.mark.parametrize(("task", "file"), GZIPPED)
def test_build_survives_gzip_bombs(
    task: str, file: str, raw_seeds: RawSeeds, fuzz_work: Path
) -> None:
    """A 3 GiB line (a reader that buffers lines runs out of the 2 GiB limit) and 32 MiB
    of blank lines (an empty file in disguise)."""
    fuzz = _fuzz(raw_seeds, task, file)
    results = explore(fuzz.strategy(bombs="only"), lambda c: fuzz.run(c, fuzz_work), BOMB_EXAMPLES)
    if bad(results):
        pytest.fail(report(results), pytrace=False)
