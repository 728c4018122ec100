"""The registry (derived from the TaskSpecs), file-level entry points, import hygiene."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalserver.metrics import (
    GROUNDTRUTH,
    SCORERS,
    ValidationError,
    check_file,
    get_scorer,
    nlvr2,
    refexp,
    retrieval,
    score_file,
    tasks_of_metric,
    variant_names,
    vqa,
)
from evalserver.metrics.chance import CHANCE
from unify import tasks
from unify.errors import DataError


def test_every_taskspec_metric_has_a_scorer_a_reader_and_a_chance_model() -> None:
    metrics = {spec.metric for spec in tasks.all_tasks().values()}
    assert metrics <= set(SCORERS)
    assert set(SCORERS) == set(GROUNDTRUTH) == set(CHANCE)
    for metric, scorer in SCORERS.items():
        assert scorer.metric == metric and scorer.version and scorer.formats
    for spec in tasks.all_tasks().values():
        assert get_scorer(spec.name) is SCORERS[spec.metric]
        assert spec.name in tasks_of_metric(spec.metric)


def test_scorers_are_reached_through_the_taskspec() -> None:
    assert get_scorer("refcocog").version == "refexp-iou-ge0.5"
    assert get_scorer("coco_retrieval") is get_scorer("flickr30k_retrieval")
    with pytest.raises(DataError, match="unknown task 'vqa'; known: vqa2, gqa"):
        get_scorer("vqa")


def test_variants_come_from_the_registry() -> None:
    assert variant_names() == tuple(refexp.VARIANTS)
    assert dict(get_scorer("refcoco").variants) == refexp.VARIANTS
    assert not get_scorer("vqa2").variants


def _code_strings(path: Path) -> set[str]:
    """String constants of a module's code (docstrings and comments left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def test_no_module_lists_tasks() -> None:
    """The evalserver package's code never names a task: tasks come from unify.tasks."""
    import evalserver

    names = {t for t in tasks.task_names() if t not in SCORERS}  # metric names may match
    offenders = {
        (path.name, text)
        for path in Path(evalserver.__path__[0]).rglob("*.py")
        for text in _code_strings(path) & names
    }
    assert offenders == set()


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
    assert result.task == "vqa2" and result.phase is None  # a bare ground-truth object
    assert result.per_example["score"].tolist() == [1.0, 0.0]
    assert result.example_ids.tolist() == [1, 2]
    json.dumps(result.to_dict())  # JSON-ready
    with pytest.raises(ValidationError):
        score_file("vqa2", GT, b"[]")
    with pytest.raises(TypeError, match="takes no option"):
        score_file("vqa2", GT, ok.encode(), variant="strict")


def test_unknown_variant_is_refused() -> None:
    gt = refexp.RefExpGroundTruth(np.array([1]), np.array([[0.0, 0, 10, 10]]), ["val"])
    data = json.dumps([{"sent_id": 1, "bbox": [0, 0, 10, 10]}]).encode()
    assert score_file("refcoco", gt, data, variant="strict").version == "refexp-iou-gt0.5"
    with pytest.raises(ValueError, match="unknown refexp variant 'loose'"):
        score_file("refcoco", gt, data, variant="loose")


def test_metrics_import_nothing_from_web_db_or_queue() -> None:
    code = (
        "import sys, evalserver.metrics, evalserver.metrics.chance, evalserver.cli\n"
        "bad = {'fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'alembic', 'celery', 'kombu',"
        " 'redis', 'psycopg', 'httpx', 'torch'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_file_csv_and_npz_report_everything() -> None:
    gt = nlvr2.Nlvr2GroundTruth.from_records(
        {"identifier": i, "label": lab}
        for i, lab in (("d-1-0-0", "True"), ("d-1-1-0", "False"), ("d-2-0-0", "True"))
    )
    problems = [str(p) for p in check_file("nlvr2", gt, b"d-1-0-0,maybe\nd-9-0-0,True\n")]
    assert problems == [
        "line 1, identifier d-1-0-0: prediction must be False or True, got 'maybe'",
        "line 2, identifier d-9-0-0: unknown identifier: not in the ground truth of this split",
        "identifier d-1-1-0: no prediction for this identifier",
        "identifier d-2-0-0: no prediction for this identifier",
    ]
    rgt = retrieval.RetrievalGroundTruth(np.array([1, 2]), np.array([0, 1]), np.array([10, 20]))
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.array([[np.nan, 0.0]]), caption_ids=[1], image_ids=[10, 20])
    problems = [str(p) for p in check_file("coco_retrieval", rgt, buffer.getvalue())]
    assert problems == [
        "scores, caption_id 1: scores row 0 has a non-finite value (first: image_id 10 = nan)",
        "caption_id 2: no prediction for this caption_id",
    ]


# --------------------------------------------------------------------------- format hints


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.eye(2), caption_ids=[1, 2], image_ids=[10, 20])
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("task", "content", "hint"),
    [
        (
            "vqa2",
            b"dev-1-0-0,True\ndev-1-1-0,false\n",
            "this looks like an NLVR2 predictions CSV (the format of nlvr2), not a VQA results "
            "JSON, the format of vqa2",
        ),
        (
            "vqa2",
            b'[{"questionId": "01", "prediction": "yes"}]',
            "this looks like a GQA predictions JSON (the format of gqa), not a VQA results JSON",
        ),
        (
            "nlvr2",
            b'[{"question_id": 1, "answer": "yes"}]',
            "this looks like a VQA results JSON (the format of vqa2, vgqa), not an NLVR2 "
            "predictions CSV, the format of nlvr2",
        ),
        (
            "visual7w",
            _npz(),
            "this looks like a retrieval score-matrix NPZ (the format of coco_retrieval, "
            "flickr30k_retrieval), not a Visual7W pointing JSON",
        ),
        (
            "snli_ve",
            b'[{"sent_id": 1, "bbox": [0, 0, 1, 1]',  # truncated: still recognised
            "this looks like a referring-expression boxes JSON (the format of refcoco, "
            "refcoco_plus, refcocog), not an SNLI-VE predictions CSV or an SNLI-VE "
            "predictions JSON, the format of snli_ve",
        ),
    ],
)
def test_a_file_of_another_format_says_what_it_looks_like(
    task: str, content: bytes, hint: str
) -> None:
    gt = vqa.VqaGroundTruth(np.array([1]), np.array([0, 1]), ["a"], ["w"], ["other"])
    problems = check_file(task, gt if task == "vqa2" else _any_gt(task), content)
    assert str(problems[0]).startswith(hint)
    assert len(problems) > 1  # the parser's own problems are still listed


def _any_gt(task: str) -> object:
    from evalserver.metrics import pointing, snli_ve

    if task == "nlvr2":
        return nlvr2.Nlvr2GroundTruth.from_records([{"identifier": "d-1-0-0", "label": "True"}])
    if task == "visual7w":
        return pointing.PointingGroundTruth(np.array([1]), np.array([[1, 2, 3, 4]]), np.array([0]))
    return snli_ve.SnliVeGroundTruth(np.array(["a"]), np.array([0], dtype=np.int8))


def test_no_hint_for_a_broken_file_of_the_right_format() -> None:
    problems = check_file("vqa2", GT, b'[{"question_id": 1, "answer": 3}]')
    assert not any("looks like" in str(p) for p in problems)


def test_docs_phase_table_matches_the_taskspecs() -> None:
    """docs/metrics.md restates each task's metric and default phase: it must agree."""
    text = (Path(__file__).parents[3] / "docs" / "metrics.md").read_text()
    section = text.split("## Tasks, metrics and phases", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    seen: list[str] = []
    for row in rows[1:]:  # after the header
        names, metric, default, others = (c.strip() for c in row.strip("|").split("|"))
        for name in names.split(", "):
            spec = tasks.get(name)
            seen.append(name)
            assert metric == f"`{spec.metric}`", name
            phase = spec.phase(spec.default_phase)
            expected = (
                phase.name
                if phase.splits == (phase.name,)
                else (f"{phase.name} ({', '.join(phase.splits)})")
            )
            assert default == expected, name
            listed = {w.strip(",") for w in others.split() if w.strip(",") in spec.phase_names}
            assert listed == set(spec.phase_names) - {spec.default_phase}, name
    assert sorted(seen) == sorted(tasks.task_names())
