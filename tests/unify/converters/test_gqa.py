"""gqa: the real release record, string ids, the integer-ordered minval rule, all-questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.gqa import MINVAL_SIZE
from unify.reader import UnifiedFile
from unify.sample.gqa_format import GqaQuestion, write_gqa


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
