"""Shared test fixtures: where the real release samples live, and small raw trees.

Real records are read from ``VL12_REAL_FIXTURES`` (default ``../shared/fixtures/real`` next
to the project root) and never copied into the repository. Locally a missing folder skips
the tests that need it with the reason; in CI (``CI`` set) it is an error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shared(var: str, default: str) -> Path:
    return Path(os.environ.get(var, ROOT.parent / "shared" / default)).resolve()


REAL = _shared("VL12_REAL_FIXTURES", "fixtures/real")
GOLDEN = _shared("VL12_GOLDEN", "golden")


def shared_file(base: Path, *parts: str) -> Path:
    path = base.joinpath(*parts)
    if not path.exists():
        reason = f"shared fixture {path} is absent (set VL12_REAL_FIXTURES / VL12_GOLDEN)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def real(*parts: str) -> Path:
    """A real release sample under VL12_REAL_FIXTURES."""
    return shared_file(REAL, *parts)


def golden(*parts: str) -> Path:
    """An official scorer output under VL12_GOLDEN."""
    return shared_file(GOLDEN, *parts)


def place(src: Path, dest: Path) -> Path:
    """Copy a shared sample into a temporary raw tree under its release file name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tiny sample's raw tree (read-only by convention)."""
    from unify.sample.world import generate

    out = tmp_path_factory.mktemp("tiny_raw")
    generate(out, scale="tiny", seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_h5(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sample built with every converter."""
    from unify.build import BuildOptions, resolve_tasks, run_build

    out = tmp_path_factory.mktemp("tiny_h5") / "tiny.h5"
    run_build(tiny_raw, out, BuildOptions(tasks=resolve_tasks((), True), all=True))
    return out
