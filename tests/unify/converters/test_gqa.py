"""gqa: the real release record, string ids, the integer-ordered minval rule, all-questions,
reasoning steps and the optional choices files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.gqa import MINVAL_SIZE, program_steps
from unify.errors import RecordError
from unify.reader import UnifiedFile
from unify.sample.gqa_format import GqaOperation, GqaQuestion, write_gqa, write_gqa_choices


def _q(qid: str, image: str, answer: str = "yes", structural: str = "verify") -> GqaQuestion:
    return {
        "id": qid,
        "imageId": image,
        "question": f"q {qid}?",
        "answer": answer,
        "fullAnswer": f"{answer}.",
        "structural": structural,
        "semantic": "attr",
        "detailed": "verifyAttr",
        "group_global": None,
        "group_local": "01-x",
        "entailed": [],
    }


def test_real_record_and_its_fields(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "gqa"
    src = real("gqa", "allennlp_fixture", "questions.json")
    place(src, d / "testdev_balanced_questions.json")
    write_gqa(d, "train_balanced_questions.json", [_q("1", "1")])
    write_gqa(d, "val_balanced_questions.json", [_q("2", "2")])
    out = tmp_path / "out.h5"
    build(raw, out, "gqa")
    ((qid, rec),) = json.loads(src.read_text()).items()
    (e,) = examples(out, "gqa", "testdev")
    assert e["id"] == qid == "202218649"
    assert e["image"] == "gqa:n578564"  # not a digit id: its own universe
    assert e["question"] == rec["question"]
    assert e["answer"] == rec["answer"] and e["full_answer"] == rec["fullAnswer"]
    assert (e["structural"], e["semantic"], e["detailed"]) == (
        rec["types"]["structural"],
        rec["types"]["semantic"],
        rec["types"]["detailed"],
    )
    assert e["group_global"] == "thing" and e["group_local"] == rec["groups"]["local"]
    assert e["entailed"] == ["202218648"]
    assert e["is_balanced"] is True
    # select, relate, query: name -> the official getStepsNum counts 2 (not the query).
    assert [op["operation"] for op in rec["semantic"]] == ["select", "relate", "query"]
    assert e["steps"] == 2
    assert "valid_answers" not in e  # no choices file in this folder


def test_minval_compares_ids_as_integers(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "gqa"
    # Ids of different lengths: as strings "999" > "1000"; as integers it is the reverse.
    ids = [str(i) for i in range(1, MINVAL_SIZE + 3)]
    ids = ids[::-1]  # release order is not id order
    val = [_q(i, "7", "no", "query") for i in ids]
    write_gqa(d, "train_balanced_questions.json", [_q("0500", "5")])
    write_gqa(d, "val_balanced_questions.json", val)
    write_gqa(d, "testdev_balanced_questions.json", [_q("9", "n1")])
    out = tmp_path / "out.h5"
    build(raw, out, "gqa")
    with UnifiedFile(out) as uf:
        minval = set(uf.split("gqa", "minval").column("id"))
        trainval = list(uf.split("gqa", "trainval").column("id"))
        vocab = uf.vocab("gqa")
    assert minval == {str(i) for i in range(3, MINVAL_SIZE + 3)}
    assert trainval == ["0500", "2", "1"]  # ids stay strings: "0500" keeps its zero
    assert vocab == ["no"]  # 3,002 "no" >= 9; the single "yes" is below the min count


def test_all_questions_files_become_extra_splits(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "gqa"
    write_gqa(d, "train_balanced_questions.json", [_q("1", "1")])
    write_gqa(d, "val_balanced_questions.json", [_q("20", "2"), _q("21", "3")])
    write_gqa(d, "testdev_balanced_questions.json", [_q("30", "4")])
    # val_all: a question on a minval image is kept, one on another image is not.
    write_gqa(
        d,
        "val_all_questions.json",
        [_q("20", "2"), {**_q("200", "2"), "isBalanced": False}, _q("999", "99")],
    )
    write_gqa(
        d, "testdev_all_questions.json", [_q("30", "4"), {**_q("31", "4"), "isBalanced": False}]
    )
    out = tmp_path / "out.h5"
    build(raw, out, "gqa")
    with UnifiedFile(out) as uf:
        assert uf.split("gqa", "minval_all").role == "extra"
        assert list(uf.split("gqa", "minval_all").column("id")) == ["20", "200"]
        assert list(uf.split("gqa", "minval_all").column("is_balanced")) == [True, False]
        assert list(uf.split("gqa", "testdev_all").column("id")) == ["30", "31"]


def test_bad_record_names_file_id_and_field(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "gqa"
    write_gqa(d, "train_balanced_questions.json", [_q("1", "1")])
    bad = {"77": {"imageId": "3", "question": "x?", "answer": 5, "types": {}, "groups": {}}}
    (d / "val_balanced_questions.json").write_text(json.dumps(bad))
    write_gqa(d, "testdev_balanced_questions.json", [_q("30", "4")])
    with pytest.raises(Exception, match=r"val_balanced_questions\.json: record 77: field 'answer'"):
        build(raw, tmp_path / "out.h5", "gqa")


def _op(operation: str, argument: str) -> GqaOperation:
    return {"operation": operation, "argument": argument, "dependencies": []}


@pytest.mark.parametrize(
    ("program", "steps"),
    [
        ([], 0),
        ([_op("select", "bowl (1)"), _op("query", "color")], 2),
        ([_op("select", "bowl (1)"), _op("query", "name")], 1),  # "query: name"
        ([_op("select", "bowl (1)"), _op("exist", "?")], 1),
        ([_op("select", "x"), _op("choose name", "cup|mug")], 1),
        ([_op("choose color", "red|blue")], 1),  # only "choose name" is left out
        ([_op("select", "existence (3)")], 0),  # substring test, as the script does it
        ([_op("query", "namespace")], 0),  # "query: namespace" contains "query: name"
        ([_op("verify", "name")], 1),
    ],
)
def test_program_steps_as_the_official_script_counts_them(
    program: list[GqaOperation], steps: int
) -> None:
    assert program_steps(program) == steps  # type: ignore[arg-type]


def _choice_tree(raw: Path) -> Path:
    d = raw / "gqa"
    write_gqa(d, "train_balanced_questions.json", [_q("1", "1")])
    write_gqa(d, "val_balanced_questions.json", [_q("20", "2"), _q("21", "3", "no")])
    testdev = [
        {**_q("30", "4"), "semantic_program": [_op("select", "a"), _op("exist", "?")]},
        {**_q("31", "4", "red", "query"), "semantic_program": [_op("select", "b")] * 3},
    ]
    write_gqa(d, "testdev_balanced_questions.json", testdev)
    # The release's choices cover every question of its split (here a few more).
    write_gqa_choices(
        d,
        "testdev_choices.json",
        [
            ("999", {"valid": ["x"], "plausible": []}),
            ("31", {"valid": ["blue", "red"], "plausible": ["red"]}),
            ("30", {"valid": ["no", "yes"], "plausible": []}),
        ],
    )
    write_gqa_choices(
        d,
        "val_choices.json",
        [(q, {"valid": ["no", "yes"], "plausible": ["yes"]}) for q in ("20", "21", "22")],
    )
    return d


def test_choices_files_become_ground_truth_columns_of_the_scored_splits(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _choice_tree(raw)
    out = tmp_path / "out.h5"
    build(raw, out, "gqa")
    testdev = examples(out, "gqa", "testdev")
    assert [e["steps"] for e in testdev] == [1, 3]
    assert [e["valid_answers"] for e in testdev] == [["no", "yes"], ["blue", "red"]]
    assert [e["plausible_answers"] for e in testdev] == [[], ["red"]]
    # 2 val questions < 3,000: both are minval; trainval (train) carries no choices.
    minval = examples(out, "gqa", "minval")
    assert [e["valid_answers"] for e in minval] == [["no", "yes"], ["no", "yes"]]
    assert "valid_answers" not in examples(out, "gqa", "trainval")[0]
    with UnifiedFile(out) as uf:
        assert uf.split("gqa", "testdev").column("steps").dtype == np.int16
        sources = {s["path"] for s in uf.sources}
    assert {"gqa/testdev_choices.json", "gqa/val_choices.json"} <= sources


def test_a_scored_question_without_choices_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _choice_tree(raw)
    write_gqa_choices(d, "testdev_choices.json", [("30", {"valid": [], "plausible": []})])
    with pytest.raises(
        RecordError,
        match=r"testdev_choices\.json: record 31: field 'valid': "
        r"no entry for this question of gqa/testdev \(1 of its 2",
    ):
        build(raw, tmp_path / "out.h5", "gqa")


def test_bad_choices_and_programs_name_the_record(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _choice_tree(raw)
    (d / "testdev_choices.json").write_text(
        json.dumps(
            {"30": {"valid": ["no"], "plausible": "yes"}, "31": {"valid": [], "plausible": []}}
        )
    )
    with pytest.raises(RecordError, match=r"record 30: field 'plausible': expected list"):
        build(raw, tmp_path / "out.h5", "gqa")
    _choice_tree(raw)
    path = d / "testdev_balanced_questions.json"
    doc = json.loads(path.read_text())
    doc["31"]["semantic"] = [{"operation": "select"}]
    path.write_text(json.dumps(doc))
    with pytest.raises(RecordError, match=r"record 31: field 'semantic': expected a list of"):
        build(raw, tmp_path / "out.h5", "gqa")
