"""Seeds of the fuzz tests, built once per session.

The raw seeds are written into the session's own folder (the converter cases, and a copy
of the tiny sample's task folders: derived optional files are added next to them, so the
shared ``tiny_raw`` stays untouched). Predictions are scored against ``tiny_h5``; the
unified-file fuzz damages copies of ``featured_h5`` (the tiny build with region features).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fuzz.seeds import (
    CASE,
    SAMPLE,
    PredictionSeed,
    RawSeeds,
    derive_optional,
    prediction_seeds,
    task_dir,
    write_case_roots,
)
from tests.unify.reader_fixtures import featured_h5  # noqa: F401  (a session fixture)
from unify.tasks import all_tasks


@pytest.fixture(scope="session")
def raw_seeds(tmp_path_factory: pytest.TempPathFactory, tiny_raw: Path) -> RawSeeds:
    root = tmp_path_factory.mktemp("fuzz_seeds")
    cases = write_case_roots(root / CASE)
    sample = root / SAMPLE
    roots = {}
    for name, spec in all_tasks().items():
        folder = task_dir(tiny_raw, spec)
        if folder.is_dir():
            shutil.copytree(folder, sample / folder.name)
            derive_optional(sample, spec)
            roots[name] = sample
    return RawSeeds({CASE: cases, SAMPLE: roots})


@pytest.fixture(scope="session")
def fuzz_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the cases' folders are made (each removed after its run)."""
    return tmp_path_factory.mktemp("fuzz_cases")


@pytest.fixture(scope="session")
def prediction_seed_list(tiny_h5: Path) -> list[PredictionSeed]:
    return list(prediction_seeds(tiny_h5))
