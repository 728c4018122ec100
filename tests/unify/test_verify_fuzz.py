"""Random damage to a unified file (hypothesis): never a traceback, never a wrong answer.

The longer run is `benchmarks/fuzz_unified.py` (hundreds of cases, every command, crashes
counted in forked children); here a few cases per run, in process: `unify verify` never
raises, opening and describing the file either works or is one ``SchemaError`` line, and
whenever verify calls the file sound, `unify info` says what it said of the sound file.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unify.damage import KINDS, damage, objects_of
from unify.cli import describe
from unify.errors import SchemaError
from unify.reader import UnifiedFile
from unify.verify import verify_file


def _describe(path: Path) -> dict:
    with UnifiedFile(path, checksums=True) as uf:
        summary = describe(uf)
    return summary


@pytest.fixture(scope="module")
def sound(tiny_h5: Path) -> tuple[dict, tuple]:
    return _describe(tiny_h5), objects_of(tiny_h5)


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=st.sampled_from(KINDS), rng=st.randoms(use_true_random=False))
def test_random_damage_is_refused_in_one_line_or_harmless(
    kind: str, rng: random.Random, tiny_h5: Path, tmp_path: Path, sound: tuple[dict, tuple]
) -> None:
    path = tmp_path / "fuzzed.h5"
    shutil.copyfile(tiny_h5, path)
    what = damage(path, kind, rng, sound[1])
    report = verify_file(path)  # never raises
    assert all(p.line(path).count("\n") == 0 for p in report.problems), what
    try:
        summary = _describe(path)
    except SchemaError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), what
        assert not report.ok, f"{what}: the reader refused what verify passed"
        return
    if report.ok:
        assert summary == sound[0] or kind == "attr", f"{what}: silently different"
