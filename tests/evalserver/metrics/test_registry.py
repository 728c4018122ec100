"""The registry: all twelve tasks, file-level entry points, and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evalserver.metrics import SCORERS, TASKS, check_file, get_scorer, score_file, vqa
from evalserver.metrics.groundtruth import BUILDERS, DEFAULT_SPLITS
from evalserver.metrics.predictions import ValidationError

TWELVE = {
    "vqa2",
    "gqa",
    "vgqa",
    "coco_retrieval",
    "flickr30k_retrieval",
    "refcoco",
    "refcoco_plus",
    "refcocog",
    "visual7w",
    "guesswhat",
    "nlvr2",
    "snli_ve",
}


def test_every_task_has_a_scorer_and_a_builder() -> None:
    assert set(TASKS) == TWELVE == set(BUILDERS) == set(DEFAULT_SPLITS)
    for task, scorer in SCORERS.items():
        assert scorer.task == task and scorer.version and scorer.primary
    assert get_scorer("refcocog").version == "refexp-iou-ge0.5"
    with pytest.raises(ValueError, match="no scorer for task 'vqa'; tasks: vqa2, gqa"):
        get_scorer("vqa")


GT = vqa.VqaGroundTruth(
    np.array([1, 2]), np.array([0, 10, 20]), ["a"] * 20, ["w"] * 2, ["other"] * 2
)


def test_check_file_lists_problems_without_raising() -> None:
    assert check_file("vqa2", GT, b"not json")[0].message.startswith("not valid JSON")
    problems = check_file("vqa2", GT, json.dumps([{"question_id": 1, "answer": "a"}]).encode())
    assert [str(p) for p in problems] == ["question_id 2: no prediction for this question_id"]
    ok = json.dumps([{"question_id": 1, "answer": "a"}, {"question_id": 2, "answer": "b"}])
    assert check_file("vqa2", GT, ok.encode()) == []
    many = json.dumps([{"question_id": "x", "answer": 1}] * 60).encode()
    # 60 bad records, then questions 1 and 2 missing: 62 problems, 50 listed.
    assert str(check_file("vqa2", GT, many)[-1]) == "... and 12 more problem(s) not listed"


def test_row_and_id_problems_are_reported_together() -> None:
    content = json.dumps([{"question_id": 1, "answer": 7}, {"question_id": 9, "answer": "a"}])
    expected = [
        "record 1, question_id 1: answer must be a string, got int 7",
        "record 2, question_id 9: unknown question_id: not in the ground truth of this split",
        "question_id 2: no prediction for this question_id",
    ]
    assert [str(p) for p in check_file("vqa2", GT, content.encode())] == expected
    with pytest.raises(ValidationError) as info:
        score_file("vqa2", GT, content.encode())
    assert [str(p) for p in info.value.problems] == expected  # question 1 is not "missing" too


def test_score_file() -> None:
    ok = json.dumps([{"question_id": 1, "answer": "a"}, {"question_id": 2, "answer": "b"}])
    result = score_file("vqa2", GT, ok.encode())
    assert result.metrics["overall"] == 50.0 and result.primary == "overall"
    json.dumps(result.to_dict())  # JSON-ready
    with pytest.raises(ValidationError):
        score_file("vqa2", GT, b"[]")
    with pytest.raises(TypeError, match="takes no option"):
        score_file("vqa2", GT, ok.encode(), variant="strict")


def test_metrics_import_nothing_from_web_db_or_queue() -> None:
    code = (
        "import sys, evalserver.metrics, evalserver.metrics.groundtruth\n"
        "bad = {'fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'alembic', 'celery', 'kombu',"
        " 'redis', 'psycopg', 'httpx', 'torch'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_file_csv_and_npz_report_everything() -> None:
    from evalserver.metrics import nlvr2, retrieval

    gt = nlvr2.Nlvr2GroundTruth(
        np.array(["d-1-0-0", "d-1-1-0", "d-2-0-0"]), np.array([1, 0, 1]) == 1
    )
    problems = [str(p) for p in check_file("nlvr2", gt, b"d-1-0-0,maybe\nd-9-0-0,True\n")]
    assert problems == [
        "line 1, identifier d-1-0-0: prediction must be False or True, got 'maybe'",
        "line 2, identifier d-9-0-0: unknown identifier: not in the ground truth of this split",
        "identifier d-1-1-0: no prediction for this identifier",
        "identifier d-2-0-0: no prediction for this identifier",
    ]
    import io

    rgt = retrieval.RetrievalGroundTruth(np.array([1, 2]), np.array([0, 1]), np.array([10, 20]))
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.array([[np.nan, 0.0]]), caption_ids=[1], image_ids=[10, 20])
    problems = [str(p) for p in check_file("coco_retrieval", rgt, buffer.getvalue())]
    assert problems == [
        "scores, caption_id 1: scores row 0 has a non-finite value (first: image_id 10 = nan)",
        "caption_id 2: no prediction for this caption_id",
    ]
