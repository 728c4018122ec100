"""vqa2: real release records, and writer round trips that exercise the pinned rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.vqa2 import MIN_ANSWER_COUNT, MINVAL_SIZE
from unify.errors import RecordError
from unify.reader import UnifiedFile
from unify.sample.vqa2_format import VqaQuestion, write_vqa2
from unify.text import normalize_answer


def _expected_targets(answers: list[str], vocab: list[str]) -> dict[str, float]:
    """Soft scores computed by hand: k agreeing normalised answers -> 0.3/0.6/0.9/1.0."""
    table = {1: 0.3, 2: 0.6, 3: 0.9}
    counts = Counter(normalize_answer(a) for a in answers)
    return {a: table.get(k, 1.0) for a, k in counts.items() if a in vocab}


@pytest.fixture
def real_raw(tmp_path: Path) -> Path:
    """Real val2014 records (first 18 of the release) and a writer-made train2014."""
    raw = tmp_path / "raw"
    d = raw / "vqa2"
    write_vqa2(d, "train2014", _records(12, 1, 1, [["net"] * 5 + ["Net."] * 3 + ["two", "2"]]))
    place(
        real("vqa_v2", "v2_OpenEnded_mscoco_val2014_questions.json"),
        d / "v2_OpenEnded_mscoco_val2014_questions.json",
    )
    place(
        real("vqa_v2", "v2_mscoco_val2014_annotations.json"),
        d / "v2_mscoco_val2014_annotations.json",
    )
    return raw


def test_real_records_are_stored_exactly(real_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "vqa2.h5"
    build(real_raw, out, "vqa2")
    d = real_raw / "vqa2"
    raw_q = {
        s: json.loads((d / f"v2_OpenEnded_mscoco_{s}_questions.json").read_text())["questions"]
        for s in ("train2014", "val2014")
    }
    raw_a = {
        s: {
            a["question_id"]: a
            for a in json.loads((d / f"v2_mscoco_{s}_annotations.json").read_text())["annotations"]
        }
        for s in ("train2014", "val2014")
    }
    # 18 val questions < 3,000: the whole val file becomes minval; trainval = train only.
    assert len(raw_q["val2014"]) == 18
    trainval = examples(out, "vqa2", "trainval")
    minval = examples(out, "vqa2", "minval")
    assert [e["id"] for e in trainval] == [q["question_id"] for q in raw_q["train2014"]]
    assert [e["id"] for e in minval] == [q["question_id"] for q in raw_q["val2014"]]
    with UnifiedFile(out) as uf:
        vocab = uf.vocab("vqa2")
        assert uf.task_attrs("vqa2")["label_set"] == "vqa2"
        assert uf.split("vqa2", "minval").role == "eval"
        assert uf.split("vqa2", "trainval").role == "train"
        assert "test" not in uf.splits("vqa2")  # optional files absent
        sources = {s["path"]: s for s in uf.sources}
    assert set(sources) == {f"vqa2/{p.name}" for p in d.iterdir()}
    assert sources["vqa2/v2_mscoco_val2014_annotations.json"]["size"] == 15024
    for split, subset in ((trainval, "train2014"), (minval, "val2014")):
        for q, e in zip(raw_q[subset], split, strict=True):
            a = raw_a[subset][q["question_id"]]
            assert e["question"] == q["question"]
            assert e["image"] == f"coco:{q['image_id']}"
            assert e["subset"] == subset
            assert e["question_type"] == a["question_type"]
            assert e["answer_type"] == a["answer_type"]
            assert e["multiple_choice_answer"] == a["multiple_choice_answer"]
            assert e["answers"] == [x["answer"] for x in a["answers"]]
            got = {
                vocab[lab]: float(s)
                for lab, s in zip(e["targets"]["labels"], e["targets"]["scores"], strict=True)
            }
            assert got == pytest.approx(_expected_targets(e["answers"], vocab))
    # The vocabulary: normalised multiple-choice answers seen at least 9 times.
    counts = Counter(
        normalize_answer(a["multiple_choice_answer"]) for s in raw_a.values() for a in s.values()
    )
    assert vocab == sorted(
        (a for a, c in counts.items() if c >= MIN_ANSWER_COUNT), key=lambda a: (-counts[a], a)
    )


def _records(n: int, start_id: int, image_base: int, answers: list[list[str]]) -> list[VqaQuestion]:
    out: list[VqaQuestion] = []
    for i in range(n):
        ans = answers[i % len(answers)]
        out.append(
            {
                "question_id": start_id + i,
                "image_id": image_base + i // 3,
                "question": f"question {start_id + i}?",
                "question_type": "what",
                "answer_type": "other",
                "multiple_choice_answer": ans[0],
                "answers": ans,
            }
        )
    return out


def test_minval_holdout_and_min_count_vocabulary(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "vqa2"
    # "Red." normalises to "red": 9 multiple-choice answers -> kept; "blue" has 8 -> dropped.
    train = _records(9, 10, 1, [["Red."] * 10]) + _records(8, 100, 50, [["blue"] * 9 + ["Two"]])
    # Val ids deliberately out of order: minval must take the 3,000 LARGEST ids.
    val_ids = list(range(5000, 5000 + MINVAL_SIZE + 5))
    rng = np.random.default_rng(0)
    rng.shuffle(val_ids)
    val = [
        {**r, "question_id": qid}
        for r, qid in zip(_records(len(val_ids), 0, 900, [["green"] * 10]), val_ids, strict=True)
    ]
    write_vqa2(d, "train2014", train)
    write_vqa2(d, "val2014", val)
    out = tmp_path / "out.h5"
    build(raw, out, "vqa2")
    with UnifiedFile(out) as uf:
        vocab = uf.vocab("vqa2")
        minval_ids = uf.split("vqa2", "minval").column("id")
        trainval_ids = uf.split("vqa2", "trainval").column("id")
        first = uf.split("vqa2", "trainval").example(0)
    assert "red" in vocab and "blue" not in vocab and "green" in vocab
    assert sorted(minval_ids) == sorted(val_ids)[5:]
    assert list(trainval_ids[:17]) == [r["question_id"] for r in train]
    assert sorted(trainval_ids[17:]) == sorted(val_ids)[:5]
    # Ten "Red." answers normalise to ten "red": a full-score soft target.
    assert first["targets"]["labels"].tolist() == [vocab.index("red")]
    assert first["targets"]["scores"].tolist() == [1.0]


def test_test_splits_when_present(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / "vqa2"
    write_vqa2(d, "train2014", _records(3, 1, 1, [["a"] * 10]))
    write_vqa2(d, "val2014", _records(3, 10, 5, [["a"] * 10]))
    test = [{"question_id": 7000 + i, "image_id": 70 + i, "question": f"q{i}?"} for i in range(4)]
    write_vqa2(d, "test2015", test)
    write_vqa2(d, "test-dev2015", test[:2])
    out = tmp_path / "out.h5"
    build(raw, out, "vqa2")
    got = examples(out, "vqa2", "test")
    assert [e["id"] for e in got] == [7000, 7001, 7002, 7003]
    assert got[0]["subset"] == "test2015" and "answers" not in got[0]
    assert [e["id"] for e in examples(out, "vqa2", "test-dev")] == [7000, 7001]
    with UnifiedFile(out) as uf:
        assert uf.split("vqa2", "test-dev").role == "eval"


def test_trimmed_annotation_names_file_record_and_field(tmp_path: Path) -> None:
    """allennlp's excerpt drops question_type etc.: the error must say exactly that."""
    raw = tmp_path / "raw"
    d = raw / "vqa2"
    place(
        real("vqa_v2", "allennlp_fixture", "questions.json"),
        d / "v2_OpenEnded_mscoco_train2014_questions.json",
    )
    place(
        real("vqa_v2", "allennlp_fixture", "annotations.json"),
        d / "v2_mscoco_train2014_annotations.json",
    )
    write_vqa2(d, "val2014", _records(3, 10, 5, [["a"] * 10]))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "vqa2")
    msg = str(err.value)
    assert "v2_mscoco_train2014_annotations.json" in msg
    assert "record 458752000" in msg and "'question_type'" in msg and "missing" in msg
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("bad", [7, None, ["x"]])
def test_non_string_answer_is_named(tmp_path: Path, bad: object) -> None:
    raw = tmp_path / "raw"
    d = raw / "vqa2"
    write_vqa2(d, "train2014", _records(4, 1, 1, [["a"] * 10]))
    write_vqa2(d, "val2014", _records(3, 10, 5, [["a"] * 10]))
    ann = d / "v2_mscoco_train2014_annotations.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][2]["answers"][4]["answer"] = bad
    ann.write_text(json.dumps(doc))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "vqa2")
    assert err.value.record == 3 and err.value.field.startswith("answers[4]")
