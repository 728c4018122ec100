"""`evalserver score`: the offline scorer on the tiny sample built by the converters."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from evalserver.cli import main
from evalserver.metrics import load_groundtruth
from evalserver.metrics import predictions as P
from evalserver.metrics.chance import chance_submission
from evalserver.metrics.groundtruth import describe_fingerprint
from tests.evalserver.metrics.test_hostile import CASES as HOSTILE
from tests.evalserver.metrics.test_hostile import build_case
from unify import tasks
from unify.reader import UnifiedFile


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


def _against(h5: Path) -> str:
    with UnifiedFile(h5) as uf:
        fingerprint = uf.h5.attrs.get("fingerprint")
    return f"{h5} ({describe_fingerprint(fingerprint)})"


def test_scores_a_gzipped_file_as_table_and_json(tiny_h5: Path, tmp_path: Path) -> None:
    preds = _vqa_predictions(tiny_h5, wrong=300)
    path = tmp_path / "p.json.gz"
    path.write_bytes(gzip.compress(json.dumps(preds).encode()))
    code, out, err = run("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    assert code == 0, err
    lines = out.splitlines()
    # No phase named: the TaskSpec's default phase, said in the output.
    assert lines[0] == "vqa2, phase minval (split minval), scorer vqa-2021.03"
    assert lines[1] == f"scored against {_against(tiny_h5)}"
    assert re.fullmatch(r"  overall +\d+\.\d\d  \(primary\)", lines[2])
    code, out, _ = run(
        "score", "--data", str(tiny_h5), "--task", "vqa2", "--split", "minval", str(path), "--json"
    )
    result = json.loads(out)
    assert result["primary"] == "overall" and result["version"] == "vqa-2021.03"
    assert (result["task"], result["phase"], result["splits"]) == ("vqa2", "minval", ["minval"])
    assert result["groundtruth"]["path"] == str(tiny_h5)
    assert "fingerprint" in result["groundtruth"] and "fingerprint" in result
    # 300 of 3,000 answers are wrong; the others are the multiple-choice answer, which is
    # always given by at least 4 annotators in the sample -> 100 each.
    assert result["metrics"]["overall"] == pytest.approx(90.0, abs=0.5)
    assert list(result["metrics"]) == ["number", "other", "overall", "yes/no"]  # sort_keys


def test_multi_split_phase_and_variant(tiny_h5: Path, tmp_path: Path) -> None:
    gt = load_groundtruth(tiny_h5, "refcoco")
    path = tmp_path / "r.json"
    path.write_bytes(chance_submission(gt))
    code, out, err = run(
        "score", "--data", str(tiny_h5), "--task", "refcoco", "--variant", "strict", str(path)
    )
    assert code == 0, err
    assert out.startswith("refcoco, phase all (splits val, testA, testB), scorer refexp-iou-gt0.5")
    assert "accuracy_testB" in out
    code, out, err = run(
        "score", "--data", str(tiny_h5), "--task", "refcoco", "--phase", "testA", str(path)
    )
    assert code == 1 and "refcoco, phase testA (split testA)" in err  # other splits' ids


def test_absent_columns_are_listed_with_their_reason(tiny_h5: Path, tmp_path: Path) -> None:
    """A ranked-list submission cannot give i2t, medr, meanr or rsum: the table says why."""
    gt = load_groundtruth(tiny_h5, "flickr30k_retrieval")
    ranked = [np.roll(gt.image_ids, -int(i))[:10] for i in gt.caption_image]
    path = tmp_path / "ranked.json"
    path.write_bytes(P.write_ranked_lists(gt.caption_ids, ranked))
    code, out, err = run(
        "score", "--data", str(tiny_h5), "--task", "flickr30k_retrieval", str(path)
    )
    assert code == 0, err
    spec = tasks.get("flickr30k_retrieval")
    assert re.search(r"  t2i_r1 +100\.00  \(primary\)", out)
    for name in ("i2t_r1", "t2i_medr", "rsum"):
        line = next(line for line in out.splitlines() if line.split()[0] == name)
        assert line.endswith(f"-  (absent: {spec.column(name).absent_when})")
    gt = load_groundtruth(tiny_h5, "gqa")
    path.write_bytes(chance_submission(gt))
    code, out, err = run("score", "--data", str(tiny_h5), "--task", "gqa", str(path))
    assert code == 0, err
    assert re.search(r"  distribution +\d\.\d{4}  lower is better", out)  # its precision


def test_every_problem_is_reported_and_nothing_scored(tiny_h5: Path, tmp_path: Path) -> None:
    preds = _vqa_predictions(tiny_h5, wrong=0)
    dropped = preds.pop(5)["question_id"]
    preds[0]["answer"] = 7
    preds.append({"question_id": 1, "answer": "x"})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preds))
    code, out, err = run("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    assert code == 1 and out == ""
    first = err.splitlines()[0]
    assert first == (
        f"{path}: 3 problem(s) for vqa2, phase minval (split minval), scored against "
        f"{_against(tiny_h5)}; nothing was scored:"
    )
    assert f"question_id {dropped}: no prediction" in err
    assert "question_id 1" in err  # the unknown id
    assert "record 1, question_id" in err and "answer must be a string" in err
    assert "Traceback" not in err


def test_the_file_is_parsed_once(
    tiny_h5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    real = P._parse_json_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["parse"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "_parse_json_rows", counted)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_vqa_predictions(tiny_h5, wrong=0)))
    code, _, err = run("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    assert code == 0, err
    assert calls == Counter({"parse": 1})


def test_a_file_of_another_task_says_what_it_looks_like(tiny_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(chance_submission(load_groundtruth(tiny_h5, "nlvr2")))
    code, _, err = run("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    assert code == 1
    assert err.splitlines()[1] == (
        "  this looks like an NLVR2 predictions CSV (the format of nlvr2), not a VQA results "
        "JSON, the format of vqa2"
    )


def test_ground_truth_problems_name_task_phase_and_file(tiny_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[]")
    code, _, err = run(
        "score", "--data", str(tiny_h5), "--task", "vqa2", "--phase", "nope", str(path)
    )
    assert code == 1
    assert err.strip() == (
        "vqa2 has no phase or split 'nope' (phases: minval, test-dev, test; "
        "splits: trainval, minval, test, test-dev)"
    )
    code, _, err = run(
        "score", "--data", str(tiny_h5), "--task", "vqa2", "--split", "test", str(path)
    )
    assert code == 1
    assert err.strip() == (
        f"{tiny_h5}: cannot read the ground truth of vqa2, phase test (split test): the "
        "answers of vqa2/test are not in this file (it was built without organiser files: "
        "build with `unify build --organiser DIR`)"
    )
    code, _, err = run("score", "--data", str(path), "--task", "vqa2", str(path))
    assert code == 1 and err.startswith(
        f"{path}: cannot read the ground truth of vqa2, phase minval (split minval): "
    )
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("which", ["predictions", "data"])
def test_path_problems_are_one_line_naming_the_path(
    which: str, tiny_h5: Path, tmp_path: Path
) -> None:
    good = tmp_path / "p.json"
    good.write_text("[]")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = {
        tmp_path / "missing.json": "no such",
        tmp_path: "is a directory, not a",
        afile / "below.json": f"({afile} is a file, not a folder)",
    }
    for bad, message in cases.items():
        args = (
            [str(good), "--data", str(bad)]
            if which == "data"
            else [str(bad), "--data", str(tiny_h5)]
        )
        code, out, err = run("score", "--task", "vqa2", *args)
        assert code == 1 and out == ""
        assert err.startswith(f"{bad}: ") and message in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unreadable_file_is_one_line(
    tiny_h5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission bits do not stop root (CI runs as root): the denial is simulated."""
    path = tmp_path / "p.json"
    path.write_text("[]")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == path else real_access(p, mode)
    )
    code, _, err = run("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    assert (
        code == 1 and err.strip() == f"{path}: permission denied (cannot read the prediction file)"
    )


def test_usage_errors_exit_2(tiny_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[]")
    code, _, err = run(
        "score", "--data", str(tiny_h5), "--task", "vqa2", "--variant", "strict", str(path)
    )
    assert code == 2 and "--variant applies to refcoco, refcoco_plus, refcocog, not vqa2" in err
    code, _, err = run(
        "score", "--data", str(tiny_h5), "--task", "gqa", "--choices", "c.json", str(path)
    )
    assert code == 2
    assert "GQA choices now come from the unified file" in err
    assert "testdev_choices.json / val_choices.json in the gqa raw folder and rebuild" in err
    code, _, err = run("score", "--data", str(tiny_h5), "--task", "nope", str(path))
    assert code == 2 and "'nope' is not a task; tasks: vqa2, gqa" in err
    code, _, err = run(
        "score", "--data", str(tiny_h5), "--task", "refcoco", "--variant", "loose", str(path)
    )
    assert code == 2 and "'loose' is not one of 'default', 'mattnet', 'strict'" in err


@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
def test_hostile_files_get_the_report_and_exit_1(case: Any, tiny_h5: Path, tmp_path: Path) -> None:
    """Every hostile or corrupted file of tests/evalserver/metrics/test_hostile.py through
    the command: the report (first line naming the file, then the problems), exit 1,
    nothing on stdout, no traceback."""
    path = tmp_path / "upload"
    path.write_bytes(build_case(case, tiny_h5, tmp_path))
    code, out, err = run("score", "--data", str(tiny_h5), "--task", case.task, str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"{path}: ") and "nothing was scored" in err.splitlines()[0]
    for text in case.expect:
        assert text in err
    assert "Traceback" not in err
    assert not (tmp_path / "tripwire").exists()


def test_limits_are_options(tiny_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_vqa_predictions(tiny_h5, wrong=0)))
    base = ("score", "--data", str(tiny_h5), "--task", "vqa2", str(path))
    code, _, err = run(*base, "--max-bytes", "1K")
    assert code == 1 and "more than the limit of 1 KiB (Limits.max_bytes)" in err
    code, _, err = run(*base, "--max-rows-per-example", "0.5", "--extra-rows", "1")
    assert code == 1 and "the file holds 3,000 records, but the ground truth has 3,000 ids" in err
    code, _, err = run(*base, "--max-bytes", "1G", "--max-depth", "3")
    assert code == 0, err
    code, _, err = run(*base, "--max-bytes", "lots")
    assert code == 2 and "not a size: 'lots'" in err
    code, _, err = run(*base, "--max-depth", "0")
    assert code == 2 and "must be positive, got 0" in err
    code, out, _ = run("score", "--help")
    assert "--max-decompressed-bytes SIZE" in out and "--max-expansion" in out
