"""vqa2 and vgqa: golden parity, the 2021 rule's quirks by hand, properties."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import predictions as P
from evalserver.metrics import vqa
from evalserver.metrics.predictions import ValidationError
from evalserver.metrics.result import Result
from unify.text import clean_whitespace, normalize_answer

from .helpers import write_json

# --------------------------------------------------------------------------- helpers


def make_gt(answer_lists: list[list[str]], types: list[str] | None = None) -> vqa.VqaGroundTruth:
    annotations = [
        {
            "question_id": 100 + i,
            "answers": [{"answer": a} for a in answers],
            "question_type": "what",
            "answer_type": (types[i] if types else "other"),
        }
        for i, answers in enumerate(answer_lists)
    ]
    return vqa.VqaGroundTruth.from_annotations(annotations)


def preds(answers: list[str], first_id: int = 100) -> P.AnswerPredictions:
    records = [{"question_id": first_id + i, "answer": a} for i, a in enumerate(answers)]
    return P.parse_vqa(json.dumps(records).encode())


def one(gt_answers: list[str], pred: str) -> float:
    """Per-question official percentage (rounded to 2 decimals) of one question."""
    result = vqa.score(make_gt([gt_answers]), preds([pred]))
    return round(100 * float(result.per_example["score"][0]), 2)


def per_question(result: Result) -> dict[str, float]:
    """The official ``perQuestion`` table from the per-example arrays."""
    values = result.per_example["score"].tolist()
    ids = result.example_ids.tolist()
    return {str(i): round(100 * v, 2) for i, v in zip(ids, values, strict=True)}


def reference_question(gt_answers: list[str], pred: str) -> float:
    """A literal reading of metrics.md's rule, one question at a time (no caching)."""
    gts = [clean_whitespace(a) for a in gt_answers]
    res = clean_whitespace(pred)
    if len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        res = normalize_answer(res)
    values = []
    for i in range(len(gts)):
        others = [a for j, a in enumerate(gts) if j != i]
        values.append(min(1, float(sum(a == res for a in others)) / 3))
    total = 0.0
    for v in values:
        total = total + v
    return total / len(values)


# --------------------------------------------------------------------------- golden parity


def _golden_case(folder: Path, annotations: Path, results: Path) -> None:
    gt = vqa.VqaGroundTruth.from_annotations(json.loads(annotations.read_text())["annotations"])
    predictions = P.parse_vqa(results)
    official = json.loads((folder / "official_eval.json").read_text())
    result = vqa.score(gt, predictions)

    assert result.metrics["overall"] == official["overall"]
    assert result.details["per_answer_type"] == official["perAnswerType"]
    assert result.details["per_question_type"] == official["perQuestionType"]
    assert per_question(result) == official["perQuestion"]
    raw = vqa.per_question_accuracy(gt, predictions)
    assert raw.tolist() == result.per_example["score"].tolist()
    raw_by_id = dict(zip(map(str, gt.question_ids.tolist()), raw.tolist(), strict=True))
    assert raw_by_id == official["perQuestionRaw"]  # bit-exact, not approximately
    assert "per_question" not in result.details  # the summary holds no per-example entry
    for name, value in official["perAnswerType"].items():
        assert result.metrics[name] == value
    assert result.version == "vqa-2021.03"


def test_golden_synthetic_n2000(golden_dir: Path) -> None:
    folder = golden_dir / "vqa2_synthetic_n2000"
    _golden_case(
        folder,
        folder / "v2_mscoco_val2014_annotations.json",
        folder / "v2_OpenEnded_mscoco_val2014_fake_results.json",
    )


def test_golden_real_val2014(golden_dir: Path, real_dir: Path) -> None:
    _golden_case(
        golden_dir / "vqa2_real_val2014",
        real_dir / "vqa_v2" / "v2_mscoco_val2014_annotations.json",
        golden_dir / "vqa2_real_val2014" / "results.json",
    )


# --------------------------------------------------------------------------- quirks by hand

TEN_YES = ["yes"] * 10
NINE_YES = ["yes"] * 9 + ["no"]


def test_all_agree_means_exact_case_sensitive_match() -> None:
    assert one(TEN_YES, "Yes.") == 0.0
    assert one(TEN_YES, "yes") == 100.0
    assert one(TEN_YES, "  yes\n") == 100.0  # whitespace cleaning still applies
    # One dissenting human turns normalisation on for both sides.
    assert one(NINE_YES, "Yes.") == 100.0


def test_number_words_only_when_answers_disagree() -> None:
    assert one(["2"] * 2 + ["3"] * 8, "two") == 60.0
    assert one(["2"] * 10, "two") == 0.0  # all agree: no normalisation at all
    assert one(["2"] * 9 + ["two"], "two") == 100.0


def test_hyphen_becomes_space_unless_it_touches_a_space() -> None:
    gt = ["t shirt"] * 3 + ["shirt"] * 7
    assert one(gt, "t-shirt") == 90.0
    assert one(gt, "T- shirt") == 90.0  # "- " present: deleted, not spaced
    assert normalize_answer("t-shirt") == "t shirt"
    assert normalize_answer("t -shirt") == "t shirt"


def test_digit_comma_digit_deletes_all_punctuation() -> None:
    gt = ["10000"] * 4 + ["many"] * 6
    assert one(gt, "10,000") == 100.0
    assert normalize_answer("10,000") == "10000"
    assert normalize_answer("1,000 (approx)") == "1000 approx"  # parens deleted, not spaced
    assert normalize_answer("red,blue") == "red blue"


def test_period_rule_removes_at_most_32_periods() -> None:
    assert one(NINE_YES, "." * 32 + "yes") == 100.0
    assert one(NINE_YES, "." * 33 + "yes") == 0.0
    assert normalize_answer("." * 33 + "yes") == ".yes"
    assert normalize_answer("3.5") == "3.5"  # a period before a digit stays
    assert normalize_answer("5.") == "5"  # the look-behind is mistyped: only the next char


def test_non_ascii_digits_are_digits_to_the_rules() -> None:
    arabic = "\u0661\u0660\u0660\u0660"  # ١٠٠٠
    gt = [arabic] * 3 + ["1000"] * 7
    assert one(gt, "\u0661,\u0660\u0660\u0660") == 90.0  # \d matches, comma deleted
    assert one(gt, "1,000") == 100.0
    assert normalize_answer("\u0663.\u0665") == "\u0663.\u0665"


def test_articles_contractions_and_case() -> None:
    gt = ["dog"] * 4 + ["cat"] * 6
    assert one(gt, "The Dog") == 100.0
    assert one(["don't"] * 3 + ["no"] * 7, "dont") == 90.0
    assert one(["0"] * 3 + ["1"] * 7, "none") == 90.0


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 30.0), (2, 60.0), (3, 90.0), (4, 100.0)])
def test_closed_form_by_number_of_matching_humans(k: int, expected: float) -> None:
    gt = ["a1"] * k + [f"other{i}" for i in range(10 - k)]
    assert one(gt, "a1") == expected


def test_unrounded_values_follow_float_summation_order() -> None:
    # Where the matching humans sit changes the float sum's last bits; the golden file
    # shows 0.8999999999999998 and 0.9 for k = 3. Both must come out as the reference.
    for positions in ([0, 1, 2], [7, 8, 9], [0, 5, 9], [3, 4, 8]):
        answers = [("x" if i in positions else f"o{i}") for i in range(10)]
        got = vqa.per_question_accuracy(make_gt([answers]), preds(["x"]))[0]
        assert got == reference_question(answers, "x")


def test_overall_and_types_are_rounded_means_of_unrounded_values() -> None:
    gt = make_gt(
        [["a"] + ["b"] * 9, ["c"] * 10, ["d"] * 2 + ["e"] * 8], ["other", "yes/no", "other"]
    )
    result = vqa.score(gt, preds(["a", "c", "d"]))
    values = [0.3, 1.0, 0.6]
    assert result.metrics["overall"] == round(100 * sum(values) / 3, 2) == 63.33
    assert result.details["unrounded"]["overall"] == pytest.approx(100 * 1.9 / 3)
    assert result.metrics["other"] == 45.0
    assert result.metrics["yes/no"] == 100.0
    assert result.details["counts"]["per_answer_type"] == {"other": 2, "yes/no": 1}


def test_variable_answer_counts() -> None:
    gt = make_gt([["a", "a", "b"], ["x"] * 19 + ["y"]])  # 20 answers: no pattern table
    values = vqa.per_question_accuracy(gt, preds(["a", "x"]))
    assert values[0] == reference_question(["a", "a", "b"], "a")
    assert values[1] == 1.0


# --------------------------------------------------------------------------- validation


def test_missing_duplicate_unknown_ids_are_named(tmp_path: Path) -> None:
    gt = make_gt([TEN_YES, TEN_YES, TEN_YES])
    path = write_json(
        tmp_path / "r.json",
        [
            {"question_id": 100, "answer": "yes"},
            {"question_id": 100, "answer": "no"},
            {"question_id": 999, "answer": "yes"},
        ],
    )
    parsed = P.parse_vqa(path)
    problems = [str(p) for p in vqa.validate(gt, parsed)]
    assert (
        "record 3, question_id 999: unknown question_id: not in the ground truth of this split"
        in problems
    )
    assert "record 2, question_id 100: duplicate question_id (first given at record 1)" in problems
    assert "question_id 101: no prediction for this question_id" in problems
    assert "question_id 102: no prediction for this question_id" in problems
    with pytest.raises(ValidationError) as info:
        vqa.score(gt, parsed)
    assert info.value.total == 4


# --------------------------------------------------------------------------- properties

WORDS = ["yes", "no", "2", "two", "Red", "red.", "t-shirt", "t shirt", "the dog", "dog", "10,000"]


@st.composite
def vqa_cases(draw: st.DrawFn) -> tuple[list[list[str]], list[str]]:
    n = draw(st.integers(1, 8))
    gts = [draw(st.lists(st.sampled_from(WORDS), min_size=10, max_size=10)) for _ in range(n)]
    answers = [draw(st.sampled_from(WORDS)) for _ in range(n)]
    return gts, answers


@settings(max_examples=40, deadline=None)
@given(vqa_cases())
def test_vectorised_equals_reference(case: tuple[list[list[str]], list[str]]) -> None:
    gts, answers = case
    got = vqa.per_question_accuracy(make_gt(gts), preds(answers))
    expected = [reference_question(g, a) for g, a in zip(gts, answers, strict=True)]
    assert got.tolist() == expected  # bit-exact


@settings(max_examples=25, deadline=None)
@given(vqa_cases(), st.randoms(use_true_random=False))
def test_permuting_the_file_changes_nothing(
    case: tuple[list[list[str]], list[str]], rnd: random.Random
) -> None:
    gts, answers = case
    gt = make_gt(gts)
    records = [{"question_id": 100 + i, "answer": a} for i, a in enumerate(answers)]
    shuffled = records[:]
    rnd.shuffle(shuffled)
    a = vqa.score(gt, P.parse_vqa(json.dumps(records).encode()))
    b = vqa.score(gt, P.parse_vqa(json.dumps(shuffled).encode()))
    assert a.metrics == b.metrics
    assert a.details == b.details
    assert a.per_example["score"].tolist() == b.per_example["score"].tolist()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(WORDS), st.lists(st.sampled_from(WORDS), max_size=6)),
        min_size=1,
        max_size=10,
    )
)
def test_answer_given_by_four_humans_scores_100(rows: list[tuple[str, list[str]]]) -> None:
    gts = [[top] * 4 + rest + [top] * (6 - len(rest)) for top, rest in rows]
    result = vqa.score(make_gt(gts), preds([top for top, _ in rows]))
    assert result.metrics["overall"] == 100.0


# --------------------------------------------------------------------------- vgqa


def vg_gt(answers: list[str], questions: list[str] | None = None) -> vqa.VgqaGroundTruth:
    return vqa.VgqaGroundTruth(np.arange(1, len(answers) + 1, dtype=np.int64), answers, questions)


def test_vgqa_normalises_both_sides() -> None:
    gt = vg_gt(
        ["Green.", "two", "A man.", "t-shirt"], ["What color?", "How many?", "Who?", "What?"]
    )
    predictions = preds(["green", "2", "man", "shirt"], first_id=1)
    result = vqa.score_vgqa(gt, predictions)
    assert result.per_example["score"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert result.example_ids.tolist() == [1, 2, 3, 4]
    assert result.metrics["accuracy"] == 75.0
    assert result.version == "vgqa-norm-exact-1"
    assert result.details["per_question_word"] == {"what": 50.0, "how": 100.0, "who": 100.0}


def test_vgqa_perfect_and_validation() -> None:
    gt = vg_gt(["Yes.", "On the table."])
    assert vqa.score_vgqa(gt, preds(["Yes.", "On the table."], first_id=1)).metrics == {
        "accuracy": 100.0
    }
    problems = vqa.validate_vgqa(gt, preds(["yes"], first_id=1))
    assert [str(p) for p in problems] == ["question_id 2: no prediction for this question_id"]
