"""Every field rule of every converter (unify.rules, declared as ``field_rules``), through
`unify build`: a writer-made raw tree, one record corrupted, exit 1 with one line naming file,
record, field and value, nothing written. Each case was accepted (or crashed, or was named
only per split) before the rules existed.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.unify import leakage_trees as trees
from tests.unify.refusals import accept, edit_json, edit_jsonl, names, refuse, write_jsonl
from unify.converters import registry
from unify.rules import MAX_PIXELS, describe, markdown
from unify.sample.refer_format import write_refer

# ------------------------------------------------------------------------------------ vqa2


@pytest.fixture
def vqa(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
    return raw


def _vqa(raw: Path, kind: str, subset: str = "val2014") -> Path:
    name = f"v2_OpenEnded_mscoco_{subset}_questions.json"
    return raw / "vqa2" / (name if kind == "q" else f"v2_mscoco_{subset}_annotations.json")


@pytest.mark.parametrize("count", [9, 11])
def test_vqa_annotation_needs_exactly_ten_answers(vqa: Path, count: int) -> None:
    path = _vqa(vqa, "a")
    edit_json(
        path,
        lambda d: d["annotations"][1].update(answers=d["annotations"][1]["answers"][:1] * count),
    )
    names(refuse(vqa, "vqa2"), path, 4, "answers", f"{count} items, expected exactly 10")


def test_vqa_answer_type_is_one_of_the_release(vqa: Path) -> None:
    path = _vqa(vqa, "a")
    edit_json(path, lambda d: d["annotations"][2].update(answer_type="maybe"))
    names(refuse(vqa, "vqa2"), path, 5, "answer_type", "'maybe' is not one of 'yes/no'")


def test_vqa_negative_question_id(vqa: Path) -> None:
    for kind, key in (("q", "questions"), ("a", "annotations")):
        edit_json(_vqa(vqa, kind), lambda d, k=key: d[k][0].update(question_id=-3))
    names(refuse(vqa, "vqa2"), _vqa(vqa, "q"), -3, "question_id", "-3 is outside 0..")


def test_vqa_second_annotation_of_a_question(vqa: Path) -> None:
    path = _vqa(vqa, "a")
    edit_json(path, lambda d: d["annotations"][1].update(question_id=3))
    names(refuse(vqa, "vqa2"), path, 3, "question_id", "a second annotation")


def test_vqa_question_id_in_train_and_val(vqa: Path) -> None:
    for kind in ("q", "a"):
        key = "questions" if kind == "q" else "annotations"
        edit_json(_vqa(vqa, kind, "train2014"), lambda d, k=key: d[k][0].update(question_id=3))
    names(refuse(vqa, "vqa2"), _vqa(vqa, "q"), 3, "question_id", "also a train2014 question")


def test_vqa_required_file_without_questions(vqa: Path) -> None:
    for kind in ("q", "a"):
        key = "questions" if kind == "q" else "annotations"
        edit_json(_vqa(vqa, kind, "train2014"), lambda d, k=key: d.update({k: []}))
    path = _vqa(vqa, "q", "train2014")
    assert (
        refuse(vqa, "vqa2")
        == f"error: {path}: holds no questions; an empty file or the wrong file?"
    )


# ------------------------------------------------------------------------------------- gqa


@pytest.fixture
def gqa(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.gqa(raw, [("01", "1"), ("2", "2")], [("3", "3")], [("4", "4"), ("5", "n5")])
    return raw


def _gqa(raw: Path, split: str = "train") -> Path:
    return raw / "gqa" / f"{split}_balanced_questions.json"


def test_gqa_boolean_given_as_a_string(gqa: Path) -> None:
    edit_json(_gqa(gqa), lambda d: d["2"].update(isBalanced="false"))
    names(
        refuse(gqa, "gqa"), _gqa(gqa), "2", "isBalanced", "expected a JSON boolean, got str 'false'"
    )


def test_gqa_empty_question_id(gqa: Path) -> None:
    edit_json(_gqa(gqa), lambda d: {"": d["01"], "2": d["2"]})
    names(refuse(gqa, "gqa"), _gqa(gqa), "", "questionId", "empty")


def test_gqa_question_id_that_is_not_digits(gqa: Path) -> None:
    edit_json(_gqa(gqa, "val"), lambda d: {"3x": d["3"]})
    names(refuse(gqa, "gqa"), _gqa(gqa, "val"), "3x", "questionId", "expected ASCII digits")


@pytest.mark.parametrize("image", ["", "²", "n 5", "a\u0301"])
def test_gqa_image_id_must_be_ascii_letters_and_digits(gqa: Path, image: str) -> None:
    edit_json(_gqa(gqa, "testdev"), lambda d: d["5"].update(imageId=image))
    names(refuse(gqa, "gqa"), _gqa(gqa, "testdev"), "5", "imageId", "ASCII letters and digits")


def test_gqa_entailed_ids_are_strings_never_a_repr(gqa: Path) -> None:
    edit_json(_gqa(gqa), lambda d: d["01"].update(entailed=["2", {"id": "3"}]))
    names(
        refuse(gqa, "gqa"),
        _gqa(gqa),
        "01",
        "entailed[1]",
        "expected a question id string, got dict",
    )


def test_gqa_full_answer_object_is_not_an_empty_answer(gqa: Path) -> None:
    edit_json(_gqa(gqa), lambda d: d["01"].update(fullAnswer={}))
    names(refuse(gqa, "gqa"), _gqa(gqa), "01", "fullAnswer", "expected str, got dict")


def test_gqa_duplicate_question_id_in_one_file(gqa: Path) -> None:
    text = _gqa(gqa).read_text()
    _gqa(gqa).write_text(text.replace('"2":', '"01":', 1))  # a JSON object with a key twice
    names(refuse(gqa, "gqa"), _gqa(gqa), "01", "questionId", "duplicate question id '01'")


@pytest.mark.parametrize("text", ["[]", "{}", '"questions"'])
def test_gqa_required_file_empty_or_not_an_object(gqa: Path, text: str) -> None:
    _gqa(gqa).write_text(text)
    line = refuse(gqa, "gqa")
    if text == "{}":
        assert line == f"error: {_gqa(gqa)}: holds no questions; an empty file or the wrong file?"
    else:
        assert line.startswith(f"error: {_gqa(gqa)}: malformed file")
        assert "the top level must be a JSON object" in line or "parse error" in line


# ------------------------------------------------------------------------------------ vgqa


@pytest.fixture
def vgqa(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    images = [{"image_id": i, "width": 800, "height": 600} for i in (1, 2, 3)]
    trees.vgqa(raw, [(1, 1), (2, 2)], 3, images)
    return raw


def test_vgqa_qa_image_disagrees_with_its_entry(vgqa: Path) -> None:
    path = vgqa / "vgqa" / "question_answers.json"
    edit_json(path, lambda d: next(e for e in d if e["id"] == 1)["qas"][0].update(image_id=2))
    names(refuse(vgqa, "vgqa"), path, 1, "image_id", "2 differs from entry id 1")


@pytest.mark.parametrize(("key", "value"), [("width", 0), ("height", -600), ("coco_id", -1)])
def test_vgqa_image_data_ranges(vgqa: Path, key: str, value: int) -> None:
    path = vgqa / "vgqa" / "image_data.json"
    edit_json(path, lambda d: d[1].update({key: value}))
    names(refuse(vgqa, "vgqa"), path, 2, key, f"{value} is outside")


def test_vgqa_image_data_duplicate_image(vgqa: Path) -> None:
    path = vgqa / "vgqa" / "image_data.json"
    edit_json(path, lambda d: d[2].update(image_id=2))
    names(refuse(vgqa, "vgqa"), path, 2, "image_id", "duplicate image id 2")


def test_vgqa_duplicate_qa_id_named_with_its_file(vgqa: Path) -> None:
    path = vgqa / "vgqa" / "question_answers.json"
    edit_json(path, lambda d: next(e for e in d if e["id"] == 2)["qas"][0].update(qa_id=1))
    names(refuse(vgqa, "vgqa"), path, 1, "qa_id", "duplicate QA pair id 1")


def test_vgqa_required_file_without_qa_pairs(vgqa: Path) -> None:
    path = vgqa / "vgqa" / "question_answers.json"
    path.write_text("[]")
    assert (
        refuse(vgqa, "vgqa")
        == f"error: {path}: holds no QA pairs; an empty file or the wrong file?"
    )


# ----------------------------------------------------------------------------- retrieval


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.coco_retrieval(raw, [1, 2], [3], [4], flickr_urls={1: 77, 2: None})
    return raw


def _karpathy(raw: Path) -> Path:
    return raw / "coco_retrieval" / "dataset_coco.json"


def test_caption_imgid_disagrees_with_its_image(coco: Path) -> None:
    edit_json(_karpathy(coco), lambda d: d["images"][0]["sentences"][1].update(imgid=3))
    names(
        refuse(coco, "coco_retrieval"),
        _karpathy(coco),
        "sentence 11",
        "imgid",
        "3 differs from its image record's imgid 0",
    )


def test_caption_id_unique_across_splits(coco: Path) -> None:
    edit_json(_karpathy(coco), lambda d: d["images"][3]["sentences"][0].update(sentid=10))
    names(refuse(coco, "coco_retrieval"), _karpathy(coco), 10, "sentid", "duplicate caption id 10")


def test_negative_cocoid(coco: Path) -> None:
    edit_json(_karpathy(coco), lambda d: d["images"][2].update(cocoid=-3))
    names(
        refuse(coco, "coco_retrieval"), _karpathy(coco), "image -3", "cocoid", "-3 is outside 0.."
    )


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"width": 0}, "width", "0 is outside 1..100000"),
        ({"height": 10**6}, "height", f"1000000 is outside 1..{MAX_PIXELS}"),
        ({"id": 1}, "id", "duplicate image id 1"),
    ],
)
def test_coco_image_records(coco: Path, change: dict[str, int], field: str, detail: str) -> None:
    path = coco / "coco_retrieval" / "captions_train2014.json"
    edit_json(path, lambda d: d["images"][1].update(change))
    names(refuse(coco, "coco_retrieval"), path, f"image {change.get('id', 2)}", field, detail)


def test_karpathy_file_without_images(coco: Path) -> None:
    edit_json(_karpathy(coco), lambda d: d.update(images=[]))
    assert refuse(coco, "coco_retrieval") == (
        f"error: {_karpathy(coco)}: holds no image records; an empty file or the wrong file?"
    )


def test_flickr_file_name_with_unicode_digits(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    trees.flickr30k(raw, [1, 2], [3], [4])
    path = raw / "flickr30k_retrieval" / "dataset_flickr30k.json"
    edit_json(path, lambda d: d["images"][0].update(filename="١٢.jpg"))
    names(
        refuse(raw, "flickr30k_retrieval"),
        path,
        "image ١٢.jpg",
        "filename",
        "is not <Flickr photo id>.jpg",
    )


# ----------------------------------------------------------------------------------- refer

IMAGES = [{"id": 100, "width": 640, "height": 480}, {"id": 200, "width": 500, "height": 375}]
ANNOTATIONS = [
    {"id": 11, "image_id": 100, "category_id": 1, "bbox": [1.5, 2.0, 30.0, 40.0]},
    {"id": 21, "image_id": 200, "category_id": 3, "bbox": [10.0, 20.0, 5.0, 6.0]},
]


def _refs() -> list[dict[str, Any]]:
    return [
        {"ref_id": 0, "ann_id": 11, "image_id": 100, "category_id": 1, "split": "train",
         "sentences": [{"sent_id": 10, "sent": "the man"}, {"sent_id": 11, "sent": "a man"}]},
        {"ref_id": 1, "ann_id": 21, "image_id": 200, "category_id": 3, "split": "val",
         "sentences": [{"sent_id": 12, "sent": "red car"}]},
    ]  # fmt: skip


def _refer(
    tmp_path: Path,
    refs: list[dict[str, Any]] | None = None,
    anns: list[Any] | None = None,
    images: list[Any] | None = None,
) -> Path:
    raw = tmp_path / "raw"
    write_refer(
        raw / "refcoco",
        "refs(unc).p",
        _refs() if refs is None else refs,
        IMAGES if images is None else images,
        ANNOTATIONS if anns is None else anns,
    )
    return raw


def test_refer_writer_tree_builds(tmp_path: Path) -> None:
    accept(_refer(tmp_path), "refcoco")


def test_refer_duplicate_ref_id(tmp_path: Path) -> None:
    refs = _refs()
    refs[1]["ref_id"] = 0
    raw = _refer(tmp_path, refs)
    names(
        refuse(raw, "refcoco"), raw / "refcoco" / "refs(unc).p", 0, "ref_id", "duplicate ref id 0"
    )


def test_refer_sentence_id_unique_across_splits(tmp_path: Path) -> None:
    refs = _refs()
    refs[1]["sentences"][0]["sent_id"] = 10
    raw = _refer(tmp_path, refs)
    names(
        refuse(raw, "refcoco"),
        raw / "refcoco" / "refs(unc).p",
        10,
        "sent_id",
        "duplicate sentence id 10",
    )


def test_refer_category_disagrees_with_its_annotation(tmp_path: Path) -> None:
    refs = _refs()
    refs[1]["category_id"] = 18
    raw = _refer(tmp_path, refs)
    names(
        refuse(raw, "refcoco"),
        raw / "refcoco" / "refs(unc).p",
        12,
        "category_id",
        "18 differs from annotation category_id 3",
    )


def test_refer_sentence_id_beyond_int64_in_the_pickle(tmp_path: Path) -> None:
    refs = _refs()
    refs[0]["sentences"][1]["sent_id"] = 2**70
    raw = _refer(tmp_path, refs)
    names(
        refuse(raw, "refcoco"),
        raw / "refcoco" / "refs(unc).p",
        2**70,
        "sent_id",
        "does not fit int64",
    )


@pytest.mark.parametrize(
    ("bbox", "detail"),
    [
        ([1.0, 2.0, -3.0, 4.0], "negative width or height"),
        ([1.0, 2.0, 1e39, 4.0], "not finite (or overflows float32)"),
        ([1.0, -2e5, 3.0, 4.0], "reaches beyond ±100000 px"),
    ],
)
def test_refer_annotation_boxes(tmp_path: Path, bbox: list[float], detail: str) -> None:
    anns = [dict(ANNOTATIONS[0]), dict(ANNOTATIONS[1], bbox=bbox)]
    raw = _refer(tmp_path, anns=anns)
    names(
        refuse(raw, "refcoco"), raw / "refcoco" / "instances.json", "annotation 21", "bbox", detail
    )


@pytest.mark.parametrize(("key", "value"), [("width", 0), ("height", -1)])
def test_refer_image_sizes(tmp_path: Path, key: str, value: int) -> None:
    images = [IMAGES[0], dict(IMAGES[1], **{key: value})]
    raw = _refer(tmp_path, images=images)
    names(
        refuse(raw, "refcoco"),
        raw / "refcoco" / "instances.json",
        "image 200",
        key,
        f"{value} is outside 1..",
    )


def test_refer_pickle_without_refs(tmp_path: Path) -> None:
    raw = _refer(tmp_path)
    path = raw / "refcoco" / "refs(unc).p"
    path.write_bytes(pickle.dumps([], protocol=2))
    assert (
        refuse(raw, "refcoco") == f"error: {path}: holds no refs; an empty file or the wrong file?"
    )


def test_refer_boxes_past_the_image_edge_are_counted_not_refused(tmp_path: Path) -> None:
    import h5py

    anns = [dict(ANNOTATIONS[0], bbox=[620.0, 2.0, 30.0, 40.0]), ANNOTATIONS[1]]
    out = accept(_refer(tmp_path, anns=anns), "refcoco")
    with h5py.File(out) as f:
        report = json.loads(f.attrs["build_report"])
    assert report["refcoco"]["accepted"] == {"boxes_beyond_image": 1}
    assert report["accepted"] == {"refcoco": {"boxes_beyond_image": 1}}


# -------------------------------------------------------------------------------- visual7w


@pytest.fixture
def v7w(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.visual7w(raw, [(1, 10, "train"), (2, 11, "val"), (3, 12, "test")])
    return raw


def _v7w(raw: Path) -> Path:
    return raw / "visual7w" / "dataset_v7w_pointing.json"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"width": 1e39}, "not finite (or overflows float32)"),
        ({"height": -10}, "negative width or height"),
    ],
)
def test_v7w_boxes(v7w: Path, change: dict[str, float], detail: str) -> None:
    edit_json(_v7w(v7w), lambda d: d["boxes"][2].update(change))
    names(refuse(v7w, "visual7w"), _v7w(v7w), "box 3", "box", detail)


def test_v7w_duplicate_image_entry(v7w: Path) -> None:
    edit_json(_v7w(v7w), lambda d: d["images"][2].update(image_id=11))
    names(refuse(v7w, "visual7w"), _v7w(v7w), "image 11", "image_id", "duplicate image id 11")


def test_v7w_qa_id_unique_across_splits(v7w: Path) -> None:
    edit_json(_v7w(v7w), lambda d: d["images"][2]["qa_pairs"][0].update(qa_id=1))
    names(refuse(v7w, "visual7w"), _v7w(v7w), 1, "qa_id", "duplicate QA pair id 1")


def test_v7w_file_without_qa_pairs(v7w: Path) -> None:
    edit_json(_v7w(v7w), lambda d: d.update(images=[]))
    assert (
        refuse(v7w, "visual7w")
        == f"error: {_v7w(v7w)}: holds no QA pairs; an empty file or the wrong file?"
    )


# ------------------------------------------------------------------------------- guesswhat


@pytest.fixture
def gw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.guesswhat(raw, [(1, 100, None), (4, 100, None)], [(2, 101, None)], [(3, 102, None)])
    return raw


def _gw(raw: Path, split: str = "train") -> Path:
    return raw / "guesswhat" / f"guesswhat.{split}.jsonl.gz"


@pytest.mark.parametrize(("key", "value"), [("width", 0), ("height", -480)])
def test_guesswhat_image_size(gw: Path, key: str, value: int) -> None:
    edit_jsonl(_gw(gw, "valid"), 1, lambda g: g["image"].update({key: value}))
    names(refuse(gw, "guesswhat"), _gw(gw, "valid"), 2, f"image.{key}", f"{value} is outside 1..")


def test_guesswhat_image_with_two_sizes(gw: Path) -> None:
    edit_jsonl(_gw(gw), 2, lambda g: g["image"].update(width=320))
    names(
        refuse(gw, "guesswhat"),
        _gw(gw),
        4,
        "image.width",
        "is 320x480 here but 640x480 in an earlier game",
    )


@pytest.mark.parametrize(
    ("bbox", "detail"),
    [
        ([1, 2, 1e39, 4], "not finite (or overflows float32)"),
        ([1, 2, 3, -4], "negative width or height"),
    ],
)
def test_guesswhat_object_boxes(gw: Path, bbox: list[float], detail: str) -> None:
    edit_jsonl(_gw(gw, "test"), 1, lambda g: g["objects"][0].update(bbox=bbox))
    names(refuse(gw, "guesswhat"), _gw(gw, "test"), 3, "objects.bbox[0]", detail)


def test_guesswhat_question_id_unique_in_the_file(gw: Path) -> None:
    edit_jsonl(_gw(gw), 2, lambda g: g["qas"][0].update(id=100))
    names(refuse(gw, "guesswhat"), _gw(gw), 4, "qas.id[0]", "duplicate question id 100")


def test_guesswhat_empty_file(gw: Path) -> None:
    write_jsonl(_gw(gw, "valid"), [])
    assert (
        refuse(gw, "guesswhat")
        == f"error: {_gw(gw, 'valid')}: holds no games; an empty file or the wrong file?"
    )


# ---------------------------------------------------------------------------- verification


@pytest.fixture
def nlvr(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.nlvr2(raw, ["train-1-0-0", "train-1-1-0"], ["dev-2-0-0"], ["test1-3-0-0"])
    return raw


def test_nlvr2_duplicate_identifier_named_with_its_file(nlvr: Path) -> None:
    path = nlvr / "nlvr2" / "train.json"
    edit_jsonl(path, 2, lambda r: r.update(identifier="train-1-0-0"))
    names(refuse(nlvr, "nlvr2"), path, "train-1-0-0", "identifier", "duplicate identifier")


def test_nlvr2_empty_required_file(nlvr: Path) -> None:
    path = nlvr / "nlvr2" / "dev.json"
    path.write_bytes(b"")
    assert (
        refuse(nlvr, "nlvr2")
        == f"error: {path}: holds no examples; an empty file or the wrong file?"
    )


@pytest.fixture
def snli(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.snli_ve(raw, [(1, 10), (2, 11)], [(3, 12)], [(4, 13)])
    return raw


def _snli(raw: Path, split: str = "train") -> Path:
    return raw / "snli_ve" / f"snli_ve_{split}.jsonl"


def test_snli_caption_of_another_image(snli: Path) -> None:
    edit_jsonl(_snli(snli), 2, lambda r: r.update(captionID="10.jpg#2"))
    names(
        refuse(snli, "snli_ve"),
        _snli(snli),
        "11.jpg#2r1e",
        "captionID",
        "is not a caption of the pair's image (11.jpg#<n>)",
    )


def test_snli_pair_id_of_another_caption(snli: Path) -> None:
    edit_jsonl(_snli(snli, "dev"), 1, lambda r: r.update(pairID="12.jpg#9r1e"))
    names(
        refuse(snli, "snli_ve"),
        _snli(snli, "dev"),
        "12.jpg#9r1e",
        "pairID",
        "does not start with its captionID",
    )


def test_snli_image_name_with_unicode_digits(snli: Path) -> None:
    edit_jsonl(_snli(snli, "test"), 1, lambda r: r.update(Flikr30kID="¹³.jpg"))
    names(
        refuse(snli, "snli_ve"),
        _snli(snli, "test"),
        "13.jpg#4r1e",
        "Flikr30kID",
        "expected a Flickr30k file name",
    )


def test_snli_duplicate_pair_named_with_its_file(snli: Path) -> None:
    edit_jsonl(
        _snli(snli),
        2,
        lambda r: r.update(pairID="10.jpg#1r1e", captionID="10.jpg#1", Flikr30kID="10.jpg"),
    )
    names(refuse(snli, "snli_ve"), _snli(snli), "10.jpg#1r1e", "pairID", "duplicate pair id")


def test_snli_empty_required_file(snli: Path) -> None:
    _snli(snli, "test").write_bytes(b"\n\n")
    assert (
        refuse(snli, "snli_ve")
        == f"error: {_snli(snli, 'test')}: holds no pairs; an empty file or the wrong file?"
    )


# ------------------------------------------------------------------------------ declarations


def test_every_task_declares_its_rules() -> None:
    for name, conv in registry().items():
        assert conv.field_rules, f"{name} declares no field rules"
        for part, declared in conv.field_rules.items():
            assert describe(declared), (name, part)


def test_raw_layout_lists_every_declared_rule() -> None:
    """docs/raw-layout.md's "Field rules" section is the declarations, rendered."""
    from tests.unify.test_docs import doc, section

    text = section(doc("raw-layout.md"), "## Field rules")
    rendered = markdown({name: conv.field_rules for name, conv in registry().items()})
    assert rendered.strip() in text
