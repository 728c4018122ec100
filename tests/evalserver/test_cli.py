"""`evalserver score`: the offline scorer on a real unified file built from the sample."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalserver.cli import main
from tests.unify.helpers import build
from unify.reader import UnifiedFile


@pytest.fixture(scope="module")
def qa_h5(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "qa.h5"
    build(tiny_raw, out, "vqa2", "gqa", "vgqa", clean=True)
    return out


def _vqa_predictions(h5: Path, wrong: int) -> list[dict]:
    with UnifiedFile(h5) as uf:
        view = uf.split("vqa2", "minval")
        ids = view.column("id").tolist()
        answers = view.column("multiple_choice_answer").tolist()
    return [
        {"question_id": i, "answer": "no such answer" if k < wrong else a}
        for k, (i, a) in enumerate(zip(ids, answers, strict=True))
    ]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_scores_a_gzipped_file_as_table_and_json(qa_h5: Path, tmp_path: Path) -> None:
    preds = _vqa_predictions(qa_h5, wrong=300)
    path = tmp_path / "p.json.gz"
    path.write_bytes(gzip.compress(json.dumps(preds).encode()))
    code, out, err = run(
        "score", "--data", str(qa_h5), "--task", "vqa2", "--split", "minval", str(path)
    )
    assert code == 0, err
    assert "vqa2  (scorer vqa-2021.03)" in out and "(primary)" in out
    code, out, _ = run(
        "score", "--data", str(qa_h5), "--task", "vqa2", "--split", "minval", str(path), "--json"
    )
    result = json.loads(out)
    assert result["primary"] == "overall" and result["version"] == "vqa-2021.03"
    # 300 of 3,000 answers are wrong; the others are the multiple-choice answer, which is
    # always given by at least 4 annotators in the sample -> 100 each.
    assert result["metrics"]["overall"] == pytest.approx(90.0, abs=0.5)


def test_every_problem_is_reported_and_nothing_scored(qa_h5: Path, tmp_path: Path) -> None:
    preds = _vqa_predictions(qa_h5, wrong=0)
    dropped = preds.pop(5)["question_id"]
    preds[0]["answer"] = 7
    preds.append({"question_id": 1, "answer": "x"})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preds))
    code, out, err = run(
        "score", "--data", str(qa_h5), "--task", "vqa2", "--split", "minval", str(path)
    )
    assert code == 1 and out == ""
    assert "nothing was scored" in err
    assert f"question_id {dropped}: no prediction" in err
    assert "question_id 1" in err  # the unknown id
    assert "record 1, question_id" in err and "answer must be a string" in err
    assert "Traceback" not in err


def test_bad_ground_truth_and_usage(qa_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[]")
    code, _, err = run(
        "score", "--data", str(qa_h5), "--task", "vqa2", "--split", "nope", str(path)
    )
    assert code == 1 and "no split 'nope'" in err
    code, _, err = run("score", "--data", str(qa_h5), "--task", "nlvr2", str(path))
    assert code == 1 and "nlvr2" in err
    code, _, err = run(
        "score", "--data", str(qa_h5), "--task", "vqa2", "--variant", "strict", str(path)
    )
    assert code == 2 and "--variant applies to" in err
