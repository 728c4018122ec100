"""Shared fixtures: where the golden outputs of the official scorers and real fixtures live.

Both are read in place from the shared folder (never copied into the repository), located
by tests/conftest.py (VL12_GOLDEN / VL12_REAL_FIXTURES, defaulting to ../shared/...): when
absent the parity tests are skipped with the reason, except on CI, where a missing folder
is a failure (parity must never silently stop being checked).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import GOLDEN, REAL, shared_file


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return shared_file(GOLDEN)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return shared_file(REAL)
