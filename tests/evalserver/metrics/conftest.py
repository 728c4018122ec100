"""Shared fixtures: where the golden outputs of the official scorers and real fixtures live.

The golden outputs of the official scorers and the real-format fixtures are read in place
from the shared folder (never copied into the repository). Their location comes from
VL12_GOLDEN / VL12_REAL_FIXTURES, defaulting to ../shared/... next to the repository. When
absent the parity tests are skipped with the reason, except on CI (env CI set), where a
missing folder is a failure: parity must never silently stop being checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _shared_dir(variable: str, default: Path) -> Path:
    path = Path(os.environ.get(variable, default))
    if not path.is_dir():
        message = f"{path} not found (set {variable} to the folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _shared_dir("VL12_GOLDEN", REPO_ROOT.parent / "shared" / "golden")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return _shared_dir("VL12_REAL_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "real")
