"""Ground truth read from unified files built by the converters (never written by hand).

The golden inputs of the official scorers are placed in a raw tree under their release
names, converted by ``unify build`` and scored through ``load_groundtruth``: the whole path
a submission takes reproduces the official figures.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.groundtruth import GroundTruth, describe_fingerprint
from evalserver.metrics.nlvr2 import Nlvr2GroundTruth
from tests.conftest import place
from tests.unify.helpers import build
from unify import tasks
from unify.converters.nlvr2 import sentence_key
from unify.errors import DataError, SchemaError
from unify.reader import UnifiedFile
from unify.sample.vqa2_format import write_vqa2

QUESTIONS = "v2_OpenEnded_mscoco_val2014_questions.json"


@pytest.fixture(scope="module")
def golden_h5(golden_dir: Path, tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vqa2 val = the golden VQA annotations; nlvr2 dev = the golden NLVR2 dev file; the
    other files those converters need come from the tiny sample (vqa2 train: two questions
    whose ids the golden val file does not use; question ids are unique across subsets)."""
    raw = tmp_path_factory.mktemp("golden_raw")
    vqa = golden_dir / "vqa2_synthetic_n2000"
    for name in (
        QUESTIONS,
        "v2_mscoco_val2014_annotations.json",
    ):
        place(vqa / name, raw / "vqa2" / name)
    val_ids = {q["question_id"] for q in json.loads((vqa / QUESTIONS).read_text())["questions"]}
    train = [
        {
            "question_id": qid,
            "image_id": 9,
            "question": "What is it?",
            "question_type": "what",
            "answer_type": "other",
            "multiple_choice_answer": "cat",
            "answers": ["cat"] * 10,
        }
        for qid in (1, 2)
    ]
    assert not val_ids & {1, 2}
    write_vqa2(raw / "vqa2", "train2014", train)
    place(golden_dir / "nlvr2_synthetic_dev" / "dev.json", raw / "nlvr2" / "dev.json")
    for name in ("train.json", "test1.json"):
        place(tiny_raw / "nlvr2" / name, raw / "nlvr2" / name)
    out = tmp_path_factory.mktemp("golden_h5") / "golden.h5"
    build(raw, out, "vqa2", "nlvr2")
    return out


def test_vqa2_golden_through_a_built_file(golden_dir: Path, golden_h5: Path) -> None:
    """Golden annotations -> converter -> unified file -> ground truth -> official values."""
    folder = golden_dir / "vqa2_synthetic_n2000"
    gt = load_groundtruth(golden_h5, "vqa2")  # default phase: minval (all 2,000 questions)
    assert gt.phase == "minval" and len(gt.question_ids) == 2000
    result = score_file("vqa2", gt, folder / "v2_OpenEnded_mscoco_val2014_fake_results.json")
    official = json.loads((folder / "official_eval.json").read_text())
    assert result.metrics["overall"] == official["overall"]
    ids = [str(i) for i in result.example_ids.tolist()]
    raw = dict(zip(ids, result.per_example["score"].tolist(), strict=True))
    assert raw == official["perQuestionRaw"]  # bit for bit


def test_nlvr2_golden_through_a_built_file(golden_dir: Path, golden_h5: Path) -> None:
    folder = golden_dir / "nlvr2_synthetic_dev"
    gt = load_groundtruth(golden_h5, "nlvr2", "dev")
    result = score_file("nlvr2", gt, folder / "dev_predictions.csv")
    pairs = (line.split("=") for line in (folder / "official_metrics.txt").read_text().split())
    assert result.details["official"] == {k: float(v) for k, v in pairs}


def test_nlvr2_sentence_key_is_the_stored_column(golden_dir: Path, golden_h5: Path) -> None:
    """The file's column (written by the converter) and ground truth made from the release
    records group the examples identically, with the converter's one function."""
    from_file = load_groundtruth(golden_h5, "nlvr2", "dev").data
    records = [
        json.loads(line)
        for line in (golden_dir / "nlvr2_synthetic_dev" / "dev.json").read_text().splitlines()
        if line.strip()
    ]
    from_records = Nlvr2GroundTruth.from_records(records)
    assert list(from_file.sentence_keys) == list(from_records.sentence_keys)
    assert from_file.sentence_index.tolist() == from_records.sentence_index.tolist()
    assert list(from_file.sentence_keys) == [
        sentence_key(i.split("-")) for i in from_file.identifiers.tolist()
    ]


# --------------------------------------------------------------------------- phases


def test_default_phase_and_multi_split_phase(tiny_h5: Path) -> None:
    for spec in tasks.all_tasks().values():
        gt = load_groundtruth(tiny_h5, spec.name)
        assert (gt.task, gt.phase) == (spec.name, spec.default_phase)
        assert gt.splits == spec.phase(spec.default_phase).splits
    whole = load_groundtruth(tiny_h5, "refcoco")  # phase "all": val, testA, testB
    assert whole.splits == ("val", "testA", "testB")
    with UnifiedFile(tiny_h5) as uf:
        expected = np.concatenate([uf.split("refcoco", s).column("id") for s in whole.splits])
    assert whole.sent_ids.tolist() == expected.tolist()
    assert list(dict.fromkeys(whole.data.splits)) == ["val", "testA", "testB"]
    one = load_groundtruth(tiny_h5, "refcoco", "testA")  # a split's name is a phase
    assert one.phase == "testA" and set(one.data.splits) == {"testA"}
    assert set(one.sent_ids.tolist()) < set(whole.sent_ids.tolist())


def test_groundtruth_names_what_it_was_read_from(tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "vqa2", "minval")
    assert isinstance(gt, GroundTruth) and gt.metric == "vqa"
    assert gt.question_ids is gt.data.question_ids  # the metric's attributes, directly
    assert gt.describe() == (
        f"vqa2, phase minval (split minval), {tiny_h5} ({describe_fingerprint(gt.fingerprint)})"
    )


def test_fingerprint_is_read_from_the_file(tiny_h5: Path, tmp_path: Path) -> None:
    copy = shutil.copyfile(tiny_h5, tmp_path / "fp.h5")
    with h5py.File(copy, "a") as f:
        f.attrs["fingerprint"] = "ab" * 32
    gt = load_groundtruth(copy, "nlvr2")
    assert gt.fingerprint == "ab" * 32
    assert gt.describe().endswith("(fingerprint abababababab)")


def test_errors_name_the_task_phase_and_file(tiny_h5: Path, golden_h5: Path) -> None:
    with pytest.raises(DataError, match=r"vqa2 has no phase or split 'val' .*phases: minval"):
        load_groundtruth(tiny_h5, "vqa2", "val")
    with pytest.raises(DataError, match=r"the answers of vqa2/test are not in this file"):
        load_groundtruth(tiny_h5, "vqa2", "test")
    with pytest.raises(
        SchemaError, match=rf"{re.escape(str(golden_h5))}: task 'gqa' is not in the file"
    ):
        load_groundtruth(golden_h5, "gqa")
    with pytest.raises(DataError, match="unknown task 'vqa3'"):
        load_groundtruth(tiny_h5, "vqa3")
    with pytest.raises(SchemaError, match="cannot open as HDF5"):
        load_groundtruth(tiny_h5.parent / "missing.h5", "vqa2")


def _altered(tiny_h5: Path, tmp_path: Path, edit: str) -> Path:
    copy = shutil.copyfile(tiny_h5, tmp_path / "altered.h5")
    with h5py.File(copy, "a") as f:
        if edit == "schema":
            f.attrs["schema_version"] = "2.0"
        elif edit == "metric":
            f["tasks/vqa2"].attrs["metric"] = "vgqa"
        elif edit == "count":
            f["tasks/vqa2/minval"].attrs["num_examples"] = 3
    return copy


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        ("schema", r"schema version 2\.0"),
        ("metric", "task 'vqa2' was built for metric 'vgqa', but this vl12 scores it with 'vqa'"),
        ("count", "vqa2/minval: num_examples=3 but 3000 ids"),
    ],
)
def test_files_that_disagree_with_the_schema(
    tiny_h5: Path, tmp_path: Path, edit: str, error: str
) -> None:
    with pytest.raises(SchemaError, match=error):
        load_groundtruth(_altered(tiny_h5, tmp_path, edit), "vqa2")


# --------------------------------------------------------------------------- per metric


def test_retrieval_candidates_folds_and_numeric_ids(tiny_h5: Path) -> None:
    coco = load_groundtruth(tiny_h5, "coco_retrieval")
    with UnifiedFile(tiny_h5) as uf:
        view = uf.split("coco_retrieval", "test")
        keys = view.image_keys()
        folds = view.column("candidate_folds")
        caption_folds = view.column("fold")
    assert [f"coco:{i}" for i in coco.image_ids[coco.caption_image].tolist()] == keys.tolist()
    assert coco.image_folds.tolist() == folds.tolist()
    assert coco.image_folds[coco.caption_image].tolist() == caption_folds.tolist()
    assert load_groundtruth(tiny_h5, "flickr30k_retrieval").image_folds is None


def test_pointing_guesswhat_and_vgqa_columns(tiny_h5: Path) -> None:
    v7w = load_groundtruth(tiny_h5, "visual7w")
    gw = load_groundtruth(tiny_h5, "guesswhat")
    vg = load_groundtruth(tiny_h5, "vgqa")
    with UnifiedFile(tiny_h5) as uf:
        first = uf.split("visual7w", "test").example(0)
        game = uf.split("guesswhat", "test").example(0)
        qa = uf.split("vgqa", "val").example(0)
    assert v7w.gold_box_ids[0] == first["candidate_box_ids"][first["label"]]
    start, end = gw.object_offsets[:2]
    assert gw.candidate_ids[start:end].tolist() == list(game["objects"]["ids"])
    assert gw.status[0] == game["status"]
    assert (vg.answers[0], vg.questions[0]) == (qa["answer"], qa["question"])
