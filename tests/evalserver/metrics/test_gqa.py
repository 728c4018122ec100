"""gqa: the official eval.py rules, extras only with their inputs, string ids."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import gqa, score_file
from evalserver.metrics import predictions as P
from evalserver.metrics.predictions import ValidationError
from tests.conftest import golden, place
from unify.build import BuildOptions, run_build
from unify.errors import SchemaError
from unify.reader import UnifiedFile
from unify.sample.gqa_format import write_gqa


def question(
    answer: str,
    structural: str = "query",
    semantic: str = "attr",
    detailed: str = "chooseAttr",
    group: str | None = "g1",
    entailed: list[str] | None = None,
    text: str = "What color is it?",
) -> dict[str, Any]:
    return {
        "question": text,
        "answer": answer,
        "isBalanced": True,
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "groups": {"global": group, "local": "l1"},
        "entailed": entailed or [],
    }


def preds(mapping: dict[str, str]) -> P.AnswerPredictions:
    records = [{"questionId": q, "prediction": p} for q, p in mapping.items()]
    return P.parse_gqa(json.dumps(records).encode())


def reference(
    questions: dict[str, dict[str, Any]],
    predictions: dict[str, str],
    balanced: set[str],
    choices: dict[str, dict[str, list[str]]] | None,
    consistency: bool,
) -> dict[str, float]:
    """The official eval.py's arithmetic, written out plainly (balanced = our scored set).

    ``questions`` is the file the script reads, in its order; sums run left to right as
    Python <= 3.11's ``sum`` does (3.12 compensates rounding).
    """

    def avg(values: list[float]) -> float:
        total = 0.0
        for v in values:
            total = total + v
        return float(total) / len(values) if values else 0

    acc, binary, open_, valid, plaus, cons = [], [], [], [], [], []
    gold_d: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    pred_d: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for qid, q in questions.items():
        if qid not in balanced:
            continue
        gold, p = q["answer"], predictions[qid]
        correct = p == gold
        score = float(1 if correct else 0)
        acc.append(score)
        (open_ if q["types"]["structural"] == "query" else binary).append(score)
        if choices is not None:
            group = ["color", "material", "shape"] if "Common" in q["types"]["detailed"] else None
            valid.append(float(p in (group or choices[qid]["valid"])))
            plaus.append(float(p in (group or choices[qid]["plausible"])))
        g = q["groups"]["global"]
        if g is not None:
            gold_d[g][gold] += 1
            pred_d[g][p] += 1
        if consistency:
            inferred = [e for e in q["entailed"] if e != qid]
            if correct and inferred:
                cons.append(
                    avg([float(predictions[e] == questions[e]["answer"]) for e in inferred])
                )
    out = {"accuracy": avg(acc) * 100, "binary": avg(binary) * 100, "open": avg(open_) * 100}
    if consistency:
        out["consistency"] = avg(cons) * 100
    if choices is not None:
        out["validity"] = avg(valid) * 100
        out["plausibility"] = avg(plaus) * 100
    if gold_d:
        sum_score, sum_overall = 0, 0
        for group, answers in gold_d.items():
            score, overall = 0, 0
            for ans, e in answers.items():
                o = pred_d[group].get(ans, 0)
                score += (float(o - e) ** 2) / e
                overall += e
            sum_score += score * overall
            sum_overall += overall
        out["distribution"] = float(sum_score) / sum_overall / 100
    return out


BALANCED = {
    "01": question("red", entailed=["05"]),
    "02": question("yes", structural="verify", semantic="rel", detailed="verifyRel", group=None),
    "03": question("no", structural="logic", semantic="obj", detailed="logicOr", group="g2"),
    "04": question("color", structural="compare", detailed="compareCommon", group="g2"),
}
ALL_EXTRA = {"05": question("red", group="g1", entailed=["01"])}
ALL = BALANCED | ALL_EXTRA


def test_accuracy_binary_open_and_types() -> None:
    gt = gqa.GqaGroundTruth.from_questions(BALANCED)
    result = gqa.score(gt, preds({"01": "red", "02": "no", "03": "no", "04": "shape"}))
    assert result.metrics["accuracy"] == 50.0
    assert result.metrics["open"] == 100.0  # only "01" is a query
    assert result.metrics["binary"] == pytest.approx(100 / 3)
    assert set(result.metrics) == {"accuracy", "binary", "open", "distribution"}
    assert result.details["per_structural_type"]["logic"] == {"accuracy": 100.0, "count": 1}
    assert result.details["per_semantic_type"]["attr"]["count"] == 2
    assert result.details["per_length"]["4"]["count"] == 4
    assert result.version == "gqa-eval-1.2"
    assert result.lower_is_better == ("distribution",)


def test_exact_match_no_normalisation() -> None:
    gt = gqa.GqaGroundTruth.from_questions({"1": question("red")})
    assert gqa.score(gt, preds({"1": "Red"})).metrics["accuracy"] == 0.0
    assert gqa.score(gt, preds({"1": "red "})).metrics["accuracy"] == 0.0


def test_validity_plausibility_only_with_choices_and_common_quirk() -> None:
    gt = gqa.GqaGroundTruth.from_questions(BALANCED)
    predictions = preds({"01": "blue", "02": "no", "03": "cat", "04": "material"})
    without = gqa.score(gt, predictions)
    assert "validity" not in without.metrics and "plausibility" not in without.metrics
    assert set(without.per_example) == {"score"}
    choices = {
        "01": {"valid": ["red", "blue"], "plausible": ["red"]},
        "02": {"valid": ["yes", "no"], "plausible": ["yes", "no"]},
        "03": {"valid": ["yes", "no"], "plausible": ["yes", "no"]},
        "04": {"valid": [], "plausible": []},  # "Common": the fixed group applies instead
    }
    # The choices are ground truth (the unified file's columns), never a scoring option.
    gt = gqa.GqaGroundTruth.from_questions(BALANCED, choices=choices)
    result = gqa.score(gt, predictions)
    assert result.metrics["validity"] == 75.0
    assert result.metrics["plausibility"] == 50.0
    assert result.per_example["valid"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert result.per_example["plausible"].tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no entry for question 04"):
        gqa.GqaGroundTruth.from_questions(
            BALANCED, choices={k: v for k, v in choices.items() if k != "04"}
        )
    with pytest.raises(TypeError):
        gqa.score(gt, predictions, choices=choices)  # type: ignore[call-arg]


def test_consistency_needs_all_question_predictions() -> None:
    gt = gqa.GqaGroundTruth.from_questions(BALANCED, ALL)
    balanced_only = {"01": "red", "02": "yes", "03": "no", "04": "color"}
    result = gqa.score(gt, preds(balanced_only))
    assert "consistency" not in result.metrics and result.metrics["accuracy"] == 100.0
    result = gqa.score(gt, preds(balanced_only | {"05": "blue"}))
    assert result.metrics["consistency"] == 0.0  # "01" right, its entailed "05" wrong
    result = gqa.score(gt, preds(balanced_only | {"05": "red"}))
    assert result.metrics["consistency"] == 100.0


def test_partial_all_questions_predictions_are_rejected() -> None:
    extra = {"05": question("red"), "06": question("blue")}
    gt = gqa.GqaGroundTruth.from_questions(BALANCED, BALANCED | extra)
    p = preds({"01": "red", "02": "yes", "03": "no", "04": "color", "05": "red"})
    assert [str(x) for x in gqa.validate(gt, p)] == [
        "questionId 06: no prediction for this questionId"
    ]


def test_distribution_matches_official_chi_square() -> None:
    gt = gqa.GqaGroundTruth.from_questions(BALANCED)
    p = {"01": "blue", "02": "no", "03": "yes", "04": "color"}
    got = gqa.score(gt, preds(p)).metrics["distribution"]
    # g1: gold {red: 1}, predicted {blue: 1}: (0 - 1)^2 / 1 = 1, weight 1.
    # g2: gold {no: 1, color: 1}, predicted {yes: 1, color: 1}: 1 + 0 = 1, weight 2.
    assert got == (1 * 1 + 1 * 2) / 3 / 100


def test_string_ids_are_never_cast() -> None:
    gt = gqa.GqaGroundTruth.from_questions({"0123": question("red")})
    problems = [str(x) for x in gqa.validate(gt, preds({"123": "red"}))]
    assert problems[0].startswith("record 1, questionId 123: unknown questionId")
    with pytest.raises(ValidationError, match="questionId must be a string, got int 123"):
        P.parse_gqa(b'[{"questionId": 123, "prediction": "red"}]')


def test_unknown_ids_rejected_without_the_all_split() -> None:
    gt = gqa.GqaGroundTruth.from_questions(BALANCED)
    p = preds({"01": "red", "02": "yes", "03": "no", "04": "color", "05": "red"})
    (problem,) = gqa.validate(gt, p)
    assert "all-questions ids need the all split" in problem.message


# --------------------------------------------------------------------------- properties

ANSWERS = ["red", "blue", "yes", "no", "color"]


@st.composite
def gqa_cases(draw: st.DrawFn) -> tuple[dict, dict, set, dict | None, bool, list]:
    n = draw(st.integers(1, 12))
    n_bal = draw(st.integers(1, n))
    ids = [f"{i:03d}" for i in range(n)]
    questions = {}
    for qid in ids:
        questions[qid] = question(
            draw(st.sampled_from(ANSWERS)),
            structural=draw(st.sampled_from(["query", "verify", "logic"])),
            detailed=draw(st.sampled_from(["x", "compareCommon"])),
            group=draw(st.sampled_from([None, "g1", "g2"])),
            entailed=draw(st.lists(st.sampled_from(ids), max_size=3)),
        )
    predictions = {qid: draw(st.sampled_from(ANSWERS)) for qid in ids}
    choices = None
    if draw(st.booleans()):
        choices = {
            q: {"valid": draw(st.lists(st.sampled_from(ANSWERS))), "plausible": ANSWERS[:2]}
            for q in ids
        }
    all_order = draw(st.permutations(ids))  # the all-questions file lists them differently
    return questions, predictions, set(ids[:n_bal]), choices, draw(st.booleans()), all_order


@settings(max_examples=40, deadline=None)
@given(gqa_cases(), st.randoms(use_true_random=False))
def test_equals_official_arithmetic(case: tuple, rnd: random.Random) -> None:
    questions, predictions, balanced, choices, consistency, all_order = case
    bal = {q: r for q, r in questions.items() if q in balanced}
    all_questions = {q: questions[q] for q in all_order}
    gt = gqa.GqaGroundTruth.from_questions(bal, all_questions, choices)
    given_preds = predictions if consistency else {q: predictions[q] for q in bal}
    if consistency and not gt.has_all_questions:
        consistency = False
    items = list(given_preds.items())
    rnd.shuffle(items)  # the prediction file's order must not matter
    result = gqa.score(gt, preds(dict(items)))
    # The script reads the all-questions file with --consistency; otherwise the balanced
    # questions followed by the others (the golden README's balanced run).
    read = all_questions if consistency else bal | all_questions
    assert result.metrics == reference(read, predictions, balanced, choices, consistency)


@settings(max_examples=20, deadline=None)
@given(gqa_cases())
def test_perfect_predictions_score_100(case: tuple) -> None:
    questions, _, balanced, _, _, _ = case
    gt = gqa.GqaGroundTruth.from_questions({q: r for q, r in questions.items() if q in balanced})
    result = gqa.score(gt, preds({q: questions[q]["answer"] for q in balanced}))
    assert result.metrics["accuracy"] == 100.0
    if "distribution" in result.metrics:
        assert result.metrics["distribution"] == 0.0


# --------------------------------------------------------------------------- golden parity
# ../shared/golden/gqa_synthetic_testdev: the official eval.py's outputs (README row). The
# unified file is built from those inputs by the real converter; every figure the script
# reports must come out bit for bit.

GOLDEN_DIR = ("gqa_synthetic_testdev",)
TRAINVAL_STUB = {
    "question": "Is it?",
    "answer": "yes",
    "structural": "verify",
    "semantic": "attr",
    "detailed": "verifyAttr",
    "group_global": None,
    "group_local": "01-x",
}


def _golden_build(tmp_path: Path, *, all_questions: bool, choices: bool) -> Path:
    d = tmp_path / "raw" / "gqa"
    names = ["testdev_balanced_questions.json"]
    names += ["testdev_all_questions.json"] if all_questions else []
    names += ["testdev_choices.json"] if choices else []
    for name in names:
        place(golden(*GOLDEN_DIR, name), d / name)
    write_gqa(d, "train_balanced_questions.json", [{"id": "1", "imageId": "1", **TRAINVAL_STUB}])
    write_gqa(d, "val_balanced_questions.json", [{"id": "2", "imageId": "2", **TRAINVAL_STUB}])
    out = tmp_path / "gqa.h5"
    run_build(d.parent, out, BuildOptions(tasks=("gqa",), clean=False))
    return out


def _golden_predictions(tmp_path: Path, only: set[str] | None = None) -> Path:
    records = json.loads(golden(*GOLDEN_DIR, "testdev_predictions.json").read_text())
    if only is not None:
        records = [r for r in records if r["questionId"] in only]
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(records))
    return path


def _as_official(result: Any) -> dict[str, Any]:
    """Our Result in the layout of the official script's output (null where not reported)."""
    m, d = result.metrics, result.details
    counts = d["counts"]

    def per(key: str) -> dict[str, list[float]]:
        return {k: [v["accuracy"], v["count"]] for k, v in d[key].items()}

    n = counts["balanced_questions"]
    return {
        **{k: m.get(k) for k in ("binary", "open", "accuracy", "consistency", "validity")},
        "plausibility": m.get("plausibility"),
        "grounding": None,
        "distribution": m["distribution"],
        "accuracyPerStructuralType": per("per_structural_type"),
        "accuracyPerSemanticType": per("per_semantic_type"),
        "accuracyPerSteps": per("per_steps"),
        "accuracyPerLength": per("per_length"),
        "counts": {
            "binary": counts["binary"],
            "open": counts["open"],
            "accuracy": n,
            "consistency": counts["consistency_questions"] if "consistency" in m else None,
            "validity": n if "validity" in m else None,
            "plausibility": n if "plausibility" in m else None,
            "grounding": None,
            "distributionQuestions": counts["distribution_questions"],
            "distributionGroups": counts["distribution_groups"],
        },
    }


def _score_golden(out: Path, predictions: Path) -> Any:
    with UnifiedFile(out) as uf:
        gt = gqa.groundtruth(uf, "gqa", ("testdev",))
    return score_file("gqa", gt, predictions)


def test_golden_balanced_without_consistency_or_choices(tmp_path: Path) -> None:
    want = json.loads(golden(*GOLDEN_DIR, "official_balanced.json").read_text())
    out = _golden_build(tmp_path, all_questions=False, choices=False)
    balanced = set(json.loads(golden(*GOLDEN_DIR, "testdev_balanced_questions.json").read_text()))
    result = _score_golden(out, _golden_predictions(tmp_path, balanced))
    assert _as_official(result) == want
    assert result.details["summation_order"] == "balanced file"
    assert len(result.per_example["score"]) == 1500
    assert result.per_example["score"].mean() * 100 == want["accuracy"]


def test_golden_consistency_and_choices_in_the_all_questions_order(tmp_path: Path) -> None:
    want = json.loads(golden(*GOLDEN_DIR, "official_consistency_choices.json").read_text())
    out = _golden_build(tmp_path, all_questions=True, choices=True)
    result = _score_golden(out, _golden_predictions(tmp_path))
    assert _as_official(result) == want
    assert result.details["summation_order"] == "all-questions file"
    # The two official runs differ in the last bits of distribution: the order matters.
    balanced = json.loads(golden(*GOLDEN_DIR, "official_balanced.json").read_text())
    assert result.metrics["distribution"] != balanced["distribution"]


def test_golden_balanced_mode_on_the_full_file(tmp_path: Path) -> None:
    """The same file scored without all-questions predictions: the balanced run's figures
    (balanced file order), plus validity and plausibility from the file's choices."""
    want = json.loads(golden(*GOLDEN_DIR, "official_balanced.json").read_text())
    choices = json.loads(golden(*GOLDEN_DIR, "official_consistency_choices.json").read_text())
    out = _golden_build(tmp_path, all_questions=True, choices=True)
    balanced = set(json.loads(golden(*GOLDEN_DIR, "testdev_balanced_questions.json").read_text()))
    got = _as_official(_score_golden(out, _golden_predictions(tmp_path, balanced)))
    for key in ("validity", "plausibility"):
        assert got[key] == choices[key]
        got[key] = got["counts"][key] = None
    assert got == want


def test_the_sample_build_carries_choices_and_steps(tiny_h5: Path, tmp_path: Path) -> None:
    """The tiny sample has the choices files: validity comes from the unified file."""
    with UnifiedFile(tiny_h5) as uf:
        gt = gqa.groundtruth(uf, "gqa", ("testdev",))
        with pytest.raises(SchemaError, match="split 'nope' not in task 'gqa'"):
            gqa.groundtruth(uf, "gqa", ("nope",))
    assert gt.choices is not None and gt.steps is not None and not gt.has_all_questions
    records = [{"questionId": q, "prediction": a} for q, a in zip(gt.ids, gt.answers, strict=True)]
    path = tmp_path / "perfect.json"
    path.write_text(json.dumps(records))
    result = score_file("gqa", gt, path)
    assert result.metrics["accuracy"] == result.metrics["validity"] == 100.0
    assert result.details["reported"]["per_steps"] is True
    assert set(result.details["per_steps"]) == {"1", "2", "3"}  # exist 1, attr 2, category 3
