"""Parse once, save the validated form, score it in another process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from evalserver.metrics import (
    Result,
    ValidationError,
    load_groundtruth,
    load_validated,
    score_validated,
    validate_file,
)
from evalserver.metrics import predictions as P
from evalserver.metrics.chance import chance_submission
from tests.conftest import ROOT
from unify import tasks
from unify.errors import DataError


@pytest.fixture
def parse_counter(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts runs of the parsers' row loops and reads of a file from disk."""
    calls: Counter[str] = Counter()

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            source = args[0] if args else None
            if name != "read_source" or isinstance(source, str | Path):
                calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    for name in ("_parse_json_rows", "_parse_csv_labels", "_parse_npz", "read_source"):
        monkeypatch.setattr(P, name, counted(name, getattr(P, name)))
    return calls


@pytest.mark.parametrize(
    ("task", "parser"),
    [
        ("vqa2", "_parse_json_rows"),
        ("nlvr2", "_parse_csv_labels"),
        ("coco_retrieval", "_parse_npz"),
    ],
)
def test_validate_then_score_parses_once(
    task: str, parser: str, tiny_h5: Path, tmp_path: Path, parse_counter: Counter[str]
) -> None:
    gt = load_groundtruth(tiny_h5, task)
    path = tmp_path / "predictions"
    path.write_bytes(chance_submission(gt))
    parse_counter.clear()
    validated = validate_file(task, gt, path)
    assert validated.ok and validated.listing() == []
    score_validated(gt, validated)
    assert parse_counter == Counter({parser: 1, "read_source": 1})


def test_saved_form_keeps_every_problem(tmp_path: Path, tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "vqa2")
    records = [{"question_id": "x", "answer": 1}] * 60
    validated = validate_file("vqa2", gt, json.dumps(records).encode())
    assert not validated.ok and validated.total == 60 + len(gt.question_ids)
    back = load_validated(validated.save(tmp_path / "bad.npz"))
    assert [str(p) for p in back.listing()] == [str(p) for p in validated.listing()]
    assert back.total == validated.total and back.phase == "minval"
    with pytest.raises(ValidationError) as info:
        score_validated(gt, back)
    assert info.value.total == validated.total
    unreadable = validate_file("vqa2", gt, b"\x1f\x8bbroken")
    assert unreadable.predictions is None
    again = load_validated(unreadable.save(tmp_path / "unreadable.npz"))
    assert again.predictions is None and str(again.problems[0]).startswith("not a valid gzip")


def test_scored_only_against_what_it_was_validated_against(tiny_h5: Path, tmp_path: Path) -> None:
    gt = load_groundtruth(tiny_h5, "refcoco")  # phase all
    validated = validate_file("refcoco", gt, chance_submission(gt))
    with pytest.raises(
        DataError, match=r"validated against refcoco, phase all .*not against phase testA"
    ):
        score_validated(load_groundtruth(tiny_h5, "refcoco", "testA"), validated)
    with pytest.raises(ValueError, match="the ground truth is of task 'refcoco', not 'refcocog'"):
        validate_file("refcocog", gt, b"[]")
    rebuilt = shutil.copyfile(tiny_h5, tmp_path / "rebuilt.h5")
    with h5py.File(rebuilt, "a") as f:
        f.attrs["fingerprint"] = "cd" * 32
    other = load_groundtruth(rebuilt, "refcoco")
    signed = validate_file("refcoco", other, chance_submission(other))
    assert signed.fingerprint == "cd" * 32
    assert score_validated(other, signed).fingerprint == "cd" * 32
    with h5py.File(rebuilt, "a") as f:
        f.attrs["fingerprint"] = "ef" * 32
    with pytest.raises(
        DataError, match=r"fingerprint cdcdcdcdcdcd.*fingerprint efefefefefef: another build"
    ):
        score_validated(load_groundtruth(rebuilt, "refcoco"), signed)


def test_other_files_are_refused_with_their_path(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"not an archive")
    with pytest.raises(DataError, match=r"x\.npz: cannot read as a validated predictions file"):
        load_validated(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(DataError, match=r"y\.npz: not a validated predictions file"):
        load_validated(tmp_path / "y.npz")
    with pytest.raises(DataError, match=r"y\.npz: not a saved result"):
        Result.load(tmp_path / "y.npz")


_WORKER = """
import sys
from pathlib import Path
from evalserver.metrics import load_groundtruth, load_validated, score_validated
h5, folder = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(folder.glob("*.validated.npz")):
    task = path.name.split(".")[0]
    result = score_validated(load_groundtruth(h5, task), load_validated(path))
    result.save(folder / f"{task}.result.npz")
"""


def _same(a: Result, b: Result) -> None:
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    assert a.per_example.keys() == b.per_example.keys()
    for name, values in a.per_example.items():
        np.testing.assert_array_equal(values, b.per_example[name])  # NaN == NaN here
        assert values.dtype == b.per_example[name].dtype
    np.testing.assert_array_equal(a.example_ids, b.example_ids)


def test_save_load_score_in_another_process_gives_the_same_result(
    tiny_h5: Path, tmp_path: Path
) -> None:
    """The API process validates and saves; a worker process loads, scores and saves the
    Result; it equals scoring in one process, summary and per-example arrays alike."""
    here: dict[str, Result] = {}
    for task in tasks.task_names():
        gt = load_groundtruth(tiny_h5, task)
        validated = validate_file(task, gt, chance_submission(gt, seed=3))
        assert validated.ok
        validated.save(tmp_path / f"{task}.validated.npz")
        here[task] = score_validated(gt, validated)
    subprocess.run(
        [sys.executable, "-c", _WORKER, str(tiny_h5), str(tmp_path)],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    for task, result in here.items():
        _same(result, Result.load(tmp_path / f"{task}.result.npz"))
