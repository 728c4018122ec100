"""Ground truth from unified HDF5 files written by hand in the layout of docs/schema.md."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from evalserver.metrics import groundtruth as G
from evalserver.metrics import predictions as P
from evalserver.metrics import score_file, vqa

from .helpers import write_json
from .unified import Ragged, write_unified


def test_vqa2_from_golden_annotations_end_to_end(golden_dir: Path, tmp_path: Path) -> None:
    """Golden annotations -> unified layout -> ground truth -> official per-question values."""
    folder = golden_dir / "vqa2_synthetic_n2000"
    anns = json.loads((folder / "v2_mscoco_val2014_annotations.json").read_text())["annotations"]
    path = write_unified(
        tmp_path / "vl12.h5",
        {
            "vqa2": {
                "minval": {
                    "id": np.array([a["question_id"] for a in anns], dtype=np.int64),
                    "image": [f"coco:{a['image_id']}" for a in anns],
                    "question_type": [a["question_type"] for a in anns],
                    "answer_type": [a["answer_type"] for a in anns],
                    "answers": Ragged(values=[[x["answer"] for x in a["answers"]] for a in anns]),
                }
            }
        },
    )
    gt = G.load_groundtruth(path, "vqa2")  # default split: minval
    assert isinstance(gt, vqa.VqaGroundTruth)
    result = score_file("vqa2", gt, folder / "v2_OpenEnded_mscoco_val2014_fake_results.json")
    official = json.loads((folder / "official_eval.json").read_text())
    assert result.metrics["overall"] == official["overall"]
    assert {str(k): v for k, v in result.details["per_question"].items()} == official["perQuestion"]


def _vqa_file(path: Path, **attrs: object) -> Path:
    write_unified(
        path,
        {
            "vqa2": {
                "minval": {
                    "id": np.array([5, 6], dtype=np.int64),
                    "image": ["coco:1", "coco:2"],
                    "question_type": ["what", "is"],
                    "answer_type": ["other", "yes/no"],
                    "answers": Ragged(values=[["a"] * 10, ["yes"] * 9 + ["no"]]),
                },
                "test": {"id": np.array([7], dtype=np.int64), "image": ["coco:3"]},
            }
        },
        **attrs,  # type: ignore[arg-type]
    )
    return path


def test_vqa2_columns_and_errors(tmp_path: Path) -> None:
    path = _vqa_file(tmp_path / "a.h5")
    gt = G.load_groundtruth(path, "vqa2", "minval")
    assert gt.question_ids.tolist() == [5, 6]
    assert gt.answer_offsets.tolist() == [0, 10, 20]
    assert gt.answer_types == ["other", "yes/no"]
    with pytest.raises(G.SchemaError, match="no answers"):
        G.load_groundtruth(path, "vqa2", "test")
    with pytest.raises(G.SchemaError, match=r"has no split 'val' \(it has \['minval', 'test'\]\)"):
        G.load_groundtruth(path, "vqa2", "val")
    with pytest.raises(
        G.SchemaError, match=r"task 'gqa' is not in the file \(it holds \['vqa2'\]\)"
    ):
        G.load_groundtruth(path, "gqa")
    with pytest.raises(G.SchemaError, match="no scorer for task"):
        G.load_groundtruth(path, "vqa3")


def test_schema_major_is_checked(tmp_path: Path) -> None:
    path = _vqa_file(tmp_path / "b.h5", schema_version="2.0")
    with pytest.raises(G.SchemaError, match=r"schema version 2\.0; these scorers read 1\.x"):
        G.load_groundtruth(path, "vqa2")
    assert G.load_groundtruth(_vqa_file(tmp_path / "c.h5", schema_version="1.3"), "vqa2")


def test_open_file_is_accepted(tmp_path: Path) -> None:
    with h5py.File(_vqa_file(tmp_path / "d.h5"), "r") as handle:
        assert len(G.load_groundtruth(handle, "vqa2").question_ids) == 2


def test_num_examples_mismatch(tmp_path: Path) -> None:
    path = _vqa_file(tmp_path / "e.h5")
    with h5py.File(path, "a") as f:
        f["tasks/vqa2/minval"].attrs["num_examples"] = 3
    with pytest.raises(G.SchemaError, match="num_examples=3 but 2 ids"):
        G.load_groundtruth(path, "vqa2")


def test_vgqa(tmp_path: Path) -> None:
    path = write_unified(
        tmp_path / "v.h5",
        {
            "vgqa": {
                "val": {
                    "id": np.array([986768, 986769]),
                    "image": ["vg:1", "vg:1"],
                    "question": ["What color is the clock?", "Where?"],
                    "answer": ["Green.", "On the wall."],
                    "answer_normalized": ["green", "on wall"],
                    "label": np.array([3, -1], dtype=np.int32),
                }
            }
        },
    )
    gt = G.load_groundtruth(path, "vgqa")
    records = [
        {"question_id": 986768, "answer": "green"},
        {"question_id": 986769, "answer": "wall"},
    ]
    result = score_file("vgqa", gt, write_json(tmp_path / "p.json", records))
    assert result.metrics == {"accuracy": 50.0}


def _gqa_split(ids: list[str], answers: list[str], entailed: list[list[str]]) -> dict:
    n = len(ids)
    return {
        "id": ids,
        "image": ["vg:1"] * n,
        "question": ["Is it red?"] * n,
        "answer": answers,
        "full_answer": [""] * n,
        "label": np.zeros(n, dtype=np.int32),
        "structural": ["verify"] * n,
        "semantic": ["attr"] * n,
        "detailed": ["verifyAttr"] * n,
        "group_global": [""] * n,
        "group_local": ["l"] * n,
        "is_balanced": np.ones(n, dtype=bool),
        "entailed": Ragged(values=entailed),
    }


def test_gqa_with_all_questions_split(tmp_path: Path) -> None:
    path = write_unified(
        tmp_path / "g.h5",
        {
            "gqa": {
                "testdev": _gqa_split(["01", "02"], ["yes", "no"], [["03"], []]),
                "testdev_all": _gqa_split(
                    ["01", "02", "03"], ["yes", "no", "yes"], [["03"], [], ["01"]]
                ),
            }
        },
        roles={"testdev_all": "extra"},
    )
    gt = G.load_groundtruth(path, "gqa", "testdev")
    assert gt.num_balanced == 2 and gt.has_all_questions
    assert gt.ids.tolist() == ["01", "02", "03"]
    assert gt.entailed_offsets.tolist() == [0, 1, 1, 2] and list(gt.entailed) == ["03", "01"]
    only = G.load_groundtruth(path, "gqa", "testdev", all_split=None)
    assert not only.has_all_questions
    records = [
        {"questionId": q, "prediction": p} for q, p in (("01", "yes"), ("02", "no"), ("03", "no"))
    ]
    result = score_file("gqa", gt, write_json(tmp_path / "p.json", records))
    assert result.metrics["accuracy"] == 100.0 and result.metrics["consistency"] == 0.0
    assert "distribution" not in result.metrics  # every group_global is null


def test_retrieval_with_folds_and_candidates(tmp_path: Path) -> None:
    images = [f"coco:{i}" for i in (30, 10, 20)]  # release order differs from key order
    path = write_unified(
        tmp_path / "r.h5",
        {
            "coco_retrieval": {
                "test": {
                    "id": np.array([1, 2, 3, 4, 5, 6], dtype=np.int64),
                    "image": [images[i] for i in (0, 0, 1, 1, 2, 2)],
                    "caption": ["c"] * 6,
                    "tokens": ["c"] * 6,
                    "fold": np.array([0, 0, 1, 1, 0, 0], dtype=np.int8),
                    "candidates": images,
                }
            }
        },
    )
    gt = G.load_groundtruth(path, "coco_retrieval")
    assert gt.image_ids.tolist() == [30, 10, 20]
    assert gt.caption_image.tolist() == [0, 0, 1, 1, 2, 2]
    assert gt.image_folds.tolist() == [0, 1, 0]
    scores = (gt.caption_image[:, None] == np.arange(3)).astype(np.float32)
    result = score_file(
        "coco_retrieval",
        gt,
        _npz(tmp_path / "s.npz", scores=scores, caption_ids=gt.caption_ids, image_ids=gt.image_ids),
    )
    assert result.metrics["t2i_r1"] == 100.0 and result.metrics["1k_fold0_i2t_r1"] == 100.0


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_flickr_has_no_folds(tmp_path: Path) -> None:
    path = write_unified(
        tmp_path / "f.h5",
        {
            "flickr30k_retrieval": {
                "test": {
                    "id": np.array([1, 2]),
                    "image": ["flickr:1000092795", "flickr:10002456"],
                    "caption": ["a", "b"],
                    "tokens": ["a", "b"],
                    "candidates": ["flickr:1000092795", "flickr:10002456"],
                }
            }
        },
    )
    gt = G.load_groundtruth(path, "flickr30k_retrieval")
    assert gt.image_folds is None
    assert sorted(gt.image_ids.tolist()) == [10002456, 1000092795]


def test_refexp_all_eval_splits_by_role(tmp_path: Path) -> None:
    def split(ids: list[int], box: list[float]) -> dict:
        return {
            "id": np.asarray(ids, dtype=np.int64),
            "image": ["coco:1"] * len(ids),
            "bbox": np.asarray([box] * len(ids), dtype=np.float32),
        }

    path = write_unified(
        tmp_path / "x.h5",
        {
            "refcoco": {
                "train": split([1], [0, 0, 1, 1]),
                "val": split([2, 3], [0, 0, 10, 10]),
                "testA": split([4], [5, 5, 10, 10]),
                "testB": split([5], [1.5, 2.25, 3, 4]),
                "mteval": split([6], [0, 0, 1, 1]),
            }
        },
        roles={"mteval": "extra"},
    )
    gt = G.load_groundtruth(path, "refcoco")
    assert gt.sent_ids.tolist() == [2, 3, 4, 5]
    assert list(gt.splits) == ["val", "val", "testA", "testB"]
    assert gt.boxes[-1].tolist() == [1.5, 2.25, 3.0, 4.0]
    one = G.load_groundtruth(path, "refcoco", "testA")
    assert one.sent_ids.tolist() == [4]
    records = [{"sent_id": i, "bbox": [0, 0, 10, 10]} for i in (2, 3, 4, 5)]
    result = score_file("refcoco", gt, write_json(tmp_path / "p.json", records), variant="strict")
    assert result.metrics["accuracy_val"] == 100.0 and result.version == "refexp-iou-gt0.5"


def test_visual7w_guesswhat_nlvr2_snli_ve(tmp_path: Path) -> None:
    path = write_unified(
        tmp_path / "m.h5",
        {
            "visual7w": {
                "test": {
                    "id": np.array([11, 12]),
                    "image": ["vg:1", "vg:2"],
                    "question": ["Which?", "Which?"],
                    "type": ["which", "which"],
                    "candidate_box_ids": np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int64),
                    "candidate_boxes": np.zeros((2, 4, 4), dtype=np.float32),
                    "label": np.array([2, 0], dtype=np.int8),
                }
            },
            "guesswhat": {
                "test": {
                    "id": np.array([1, 2]),
                    "image": ["coco:1", "coco:2"],
                    "status": ["success", "failure"],
                    "object_id": np.array([10, 20]),
                    "objects": Ragged(
                        ids=[[10, 11], [20, 21, 22]], categories=[["a", "b"], ["c", "d", "e"]]
                    ),
                    "label": np.array([0, 0], dtype=np.int32),
                }
            },
            "nlvr2": {
                "test1": {
                    "id": ["test1-0-0-0", "test1-0-1-0"],
                    "image": np.zeros((2, 2), dtype=np.int32),
                    "sentence": ["s", "s"],
                    "label": np.array([1, 0], dtype=np.int8),
                    "sentence_key": ["test1-0--0", "test1-0--0"],
                }
            },
            "snli_ve": {
                "test": {
                    "id": ["x.jpg#0r1e", "x.jpg#0r1n"],
                    "image": ["flickr:1", "flickr:1"],
                    "hypothesis": ["h", "h"],
                    "premise": ["p", "p"],
                    "caption_id": ["x.jpg#0", "x.jpg#0"],
                    "label": np.array([2, 1], dtype=np.int8),
                }
            },
        },
        image_keys=["nlvr2:test1-0-0-img0"],
    )
    v7w = G.load_groundtruth(path, "visual7w")
    assert v7w.gold_box_ids.tolist() == [3, 5]
    gw = G.load_groundtruth(path, "guesswhat")
    assert gw.candidate_ids.tolist() == [10, 11, 20, 21, 22] and gw.status == ["success", "failure"]
    nl = G.load_groundtruth(path, "nlvr2")
    assert nl.labels.tolist() == [True, False]
    ve = G.load_groundtruth(path, "snli_ve")
    assert ve.labels.tolist() == [2, 1]
    assert score_file(
        "visual7w",
        v7w,
        write_json(tmp_path / "v.json", [{"qa_id": 11, "box_id": 3}, {"qa_id": 12, "box_id": 6}]),
    ).metrics == {"accuracy": 50.0}
    assert score_file(
        "nlvr2", nl, P.read_source(b"test1-0-0-0,true\ntest1-0-1-0,False")
    ).metrics == {
        "accuracy": 100.0,
        "consistency": 100.0,
    }
