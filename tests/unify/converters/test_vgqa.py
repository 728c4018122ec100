"""vgqa: real VG records, the val hold-out, normalisation, vocabulary choice and links."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.vgqa import VAL_SIZE
from unify.reader import UnifiedFile
from unify.sample.vgqa_format import write_vgqa
from unify.sample.vqa2_format import write_vqa2
from unify.text import normalize_answer


def test_real_records(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    qa_src = place(
        real("visual_genome", "allennlp_fixture", "question_answers.json"),
        raw / "vgqa" / "question_answers.json",
    )
    img_src = place(real("visual_genome", "image_data.json"), raw / "vgqa" / "image_data.json")
    out = tmp_path / "out.h5"
    build(raw, out, "vgqa")
    qas = [qa for entry in json.loads(qa_src.read_text()) for qa in entry["qas"]]
    assert len(qas) == 8 < VAL_SIZE  # every QA pair lands in val
    got = examples(out, "vgqa", "val")
    assert [e["id"] for e in got] == [qa["qa_id"] for qa in qas]
    for e, qa in zip(got, qas, strict=True):
        assert e["question"] == qa["question"]
        assert e["answer"] == qa["answer"]
        assert e["answer_normalized"] == normalize_answer(qa["answer"])
        assert e["image"] == f"vg:{qa['image_id']}"
    assert got[4]["answer_normalized"] == "teddy bear"  # "A teddy bear."
    images = {r["image_id"]: r for r in json.loads(img_src.read_text())}
    with UnifiedFile(out) as uf:
        keys = list(uf.image_keys)
        widths = uf.h5["images"]["width"][:]
        assert keys == ["vg:4", "vg:5"]
        assert widths.tolist() == [images[4]["width"], images[5]["width"]]
        assert uf.task_attrs("vgqa")["label_set"] == "vgqa"  # no vqa2 in this build
        assert len(uf.links()["type"]) == 0  # the five real records have no coco/flickr id


def _vg_tree(raw: Path, n: int) -> list[dict]:
    qas = [
        {
            "qa_id": 10 + 3 * i,
            "image_id": 1 + i % 7,
            "question": f"q{i}?",
            "answer": "Two." if i % 2 else "red",
        }
        for i in range(n)
    ]
    images = [
        {
            "image_id": i,
            "width": 100 + i,
            "height": 50,
            "coco_id": 500 + i if i < 3 else None,
            "flickr_id": 9000 + i if i == 6 else None,
        }
        for i in range(1, 8)
    ]
    write_vgqa(raw / "vgqa", qas, images)
    return qas


def test_holdout_links_and_shared_vocabulary(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    qas = _vg_tree(raw, VAL_SIZE + 4)
    # vqa2 in the same build: vgqa takes its vocabulary ("2" is in it, "red" is not).
    recs = [
        {
            "question_id": i,
            "image_id": 1,
            "question": "q?",
            "question_type": "how many",
            "answer_type": "number",
            "multiple_choice_answer": "two",
            "answers": ["2"] * 10,
        }
        for i in range(1, 11)
    ]
    write_vqa2(raw / "vqa2", "train2014", recs)
    write_vqa2(
        raw / "vqa2", "val2014", [{**r, "question_id": r["question_id"] + 100} for r in recs]
    )
    out = tmp_path / "out.h5"
    build(raw, out, "vqa2", "vgqa")
    with UnifiedFile(out) as uf:
        assert uf.task_attrs("vgqa")["label_set"] == "vqa2"
        assert "vgqa" not in uf.vocab_names()
        vocab = uf.vocab("vqa2")
        train = uf.split("vgqa", "train")
        val = uf.split("vgqa", "val")
        assert list(train.column("id")) == [qa["qa_id"] for qa in qas[:4]]
        assert sorted(val.column("id")) == sorted(qa["qa_id"] for qa in qas[4:])
        labels = dict(zip(val.column("answer_normalized"), val.column("label"), strict=True))
        assert labels == {"2": vocab.index("2"), "red": -1}
        links = uf.links()
        rows = sorted(
            zip(links["type"], links["key_a"], links["key_b"], links["source"], strict=True)
        )
        assert rows == [
            ("vg_coco_id", "vg:1", "coco:501", "vgqa/image_data.json"),
            ("vg_coco_id", "vg:2", "coco:502", "vgqa/image_data.json"),
            ("vg_flickr_id", "vg:6", "flickr:9006", "vgqa/image_data.json"),
        ]
        assert uf.build_report["links"]["total_by_type"] == {"vg_coco_id": 2, "vg_flickr_id": 1}
