"""Fuzzing the prediction parsers: every task's valid submission, corrupted at random
(bits flipped, spans deleted or repeated, truncation, hostile tokens: NUL, surrogates,
huge numbers, nesting, magic bytes; gzip-wrapped or not), must give a ``Validated``:
never an exception, and a file with problems lists them (a longer run is
benchmarks/bench_hostile_predictions.py's job; tests/evalserver/metrics/test_hostile.py
holds the named cases)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalserver.metrics import GroundTruth, load_groundtruth, validate_file
from evalserver.metrics.chance import chance_submission
from unify import tasks

TOKENS = [
    b"\x00",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00",
    b"\xff",
    b"\xed\xa0\x80",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b'"',
    b"\\",
    b"1e400",
    b"-0",
    b"1180591620717411303424",
    b"1.1805916207174113e+21",
    b"true",
    b"null",
    b"NaN",
    b"\r",
    b"\n",
    b"\x1c",
    "\u2028".encode(),
    b"[" * 40,
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x93NUMPY",
    b"\x89HDF\r\n\x1a\n",
]


@cache
def _ground_truth(h5: Path, task: str) -> tuple[GroundTruth, bytes]:
    gt = load_groundtruth(h5, task)
    return gt, chance_submission(gt)


@st.composite
def corrupted(draw: st.DrawFn, content: bytes) -> bytes:
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "set"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(0, 256))]
        else:
            data[at : at + 1] = draw(st.sampled_from(TOKENS))
    out = bytes(data)
    return gzip.compress(out) if draw(st.booleans()) else out


@pytest.mark.parametrize("task", tasks.task_names())
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_corrupted_files_give_a_report_never_an_exception(
    task: str, data: st.DataObject, tiny_h5: Path
) -> None:
    gt, valid = _ground_truth(tiny_h5, task)
    content = data.draw(corrupted(valid))
    validated = validate_file(task, gt, content)
    if not validated.ok:
        listing = validated.listing()
        assert listing and all(str(p).strip() for p in listing)
        assert validated.total >= len(validated.problems)
