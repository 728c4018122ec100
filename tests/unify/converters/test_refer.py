"""refcoco, refcoco_plus, refcocog: writer-made refer folders (no real sample exists).

Every stored field is compared with the records the files were written from, and the
pickle is also read back with the standard library to make sure the writer's opcodes say
what the test expects.
"""

from __future__ import annotations

import json
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from evalserver.metrics.groundtruth import load_groundtruth
from tests.unify.helpers import build, examples
from unify.errors import MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.safe_pickle import UnsafePickleError
from unify.sample.refer_format import (
    CocoAnnotation,
    CocoImage,
    Ref,
    write_instances,
    write_refer,
    write_refs,
)

FLICKR_URL = "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg"

IMAGES: list[CocoImage] = [
    {"id": 100, "width": 640, "height": 480, "flickr_url": FLICKR_URL},
    {"id": 200, "width": 500, "height": 375, "flickr_url": ""},  # no Flickr link
    {
        "id": 300,
        "width": 800,
        "height": 600,
        "flickr_url": "http://farm1.staticflickr.com/9/123456_ab_z.jpg",
    },
]
# File order interleaves images: regions must keep file order within each image.
ANNOTATIONS: list[CocoAnnotation] = [
    {"id": 11, "image_id": 100, "category_id": 1, "bbox": [1.5, 2.25, 30.0, 40.0]},
    {"id": 21, "image_id": 200, "category_id": 3, "bbox": [10.0, 20.0, 5.0, 6.0]},
    {"id": 12, "image_id": 100, "category_id": 18, "bbox": [100.0, 50.5, 20.0, 10.0]},
    {"id": 31, "image_id": 300, "category_id": 1, "bbox": [0.0, 0.0, 799.0, 599.0]},
    {"id": 13, "image_id": 100, "category_id": 1, "bbox": [300.0, 200.0, 64.0, 48.0]},
]


def _ref(ref_id: int, ann_id: int, image_id: int, cat: int, split: str, sents: list) -> Ref:
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "split": split,
        "sentences": [{"sent_id": sid, "sent": text, "raw": text.upper()} for sid, text in sents],
    }


def unc_refs() -> list[Ref]:
    return [
        _ref(0, 12, 100, 18, "train", [(10, "the dog"), (11, "dog on the left")]),
        _ref(1, 21, 200, 3, "val", [(12, "red car")]),
        _ref(2, 11, 100, 1, "testA", [(13, "man in blue"), (14, "left guy")]),
        _ref(3, 31, 300, 1, "testB", [(15, "whole picture")]),
        _ref(4, 13, 100, 1, "train", [(16, "woman on the right")]),
    ]


def umd_refs() -> list[Ref]:
    return [
        _ref(0, 12, 100, 18, "train", [(20, "a brown dog")]),
        _ref(1, 21, 200, 3, "val", [(21, "a red car parked")]),
        _ref(2, 31, 300, 1, "test", [(22, "the person"), (23, "someone")]),
    ]


def _tree(raw: Path, folder: str, refs_file: str, refs: list[Ref], py2: bool = True) -> Path:
    write_refer(raw / folder, refs_file, refs, IMAGES, ANNOTATIONS, py2_strings=py2)
    return raw / folder


def _expected(refs: list[Ref], split: str) -> list[tuple[Ref, dict]]:
    return [(r, s) for r in refs if r["split"] == split for s in r["sentences"]]


@pytest.mark.parametrize("py2", [True, False], ids=["py2-byte-strings", "unicode"])
def test_every_field_round_trips(tmp_path: Path, py2: bool) -> None:
    raw = tmp_path / "raw"
    refs = unc_refs()
    folder = _tree(raw, "refcoco", "refs(unc).p", refs, py2)
    ops = {op.name for op, _, _ in pickletools.genops((folder / "refs(unc).p").read_bytes())}
    assert ("SHORT_BINSTRING" in ops) is py2 and ("BINUNICODE" in ops) is not py2
    assert "GLOBAL" not in ops and "STACK_GLOBAL" not in ops
    # The standard library reads the same refs (byte strings as bytes in py2 mode).
    std = pickle.loads((folder / "refs(unc).p").read_bytes(), encoding="bytes")
    assert [r[b"ref_id" if py2 else "ref_id"] for r in std] == [0, 1, 2, 3, 4]

    out = tmp_path / "out.h5"
    build(raw, out, "refcoco")
    anns = {a["id"]: a for a in ANNOTATIONS}
    with UnifiedFile(out) as uf:
        assert uf.splits("refcoco") == ["train", "val", "testA", "testB"]
        roles = {s: uf.split("refcoco", s).role for s in uf.splits("refcoco")}
        assert roles == {"train": "train", "val": "eval", "testA": "eval", "testB": "eval"}
        attrs = uf.task_attrs("refcoco")
        assert (attrs["task_group"], attrs["metric"], attrs["id_field"]) == (
            "refer",
            "refexp",
            "sent_id",
        )
        assert uf.build_report["refcoco"]["refs_pickle_decoding"] == "default"
        train = uf.split("refcoco", "train")
        # Schema 1.1: the boxes a scorer compares keep the release's float64 values.
        assert train.column("bbox").dtype == np.float64
        assert train.column("category_id").dtype == np.int32
        assert train.ragged("regions").values["boxes"].shape == (9, 4)  # 3 x 3 regions
        assert train.ragged("regions").values["boxes"].dtype == np.float64
    for split in ("train", "val", "testA", "testB"):
        got = examples(out, "refcoco", split)
        want = _expected(refs, split)
        assert [e["id"] for e in got] == [s["sent_id"] for _, s in want]
        for e, (ref, sent) in zip(got, want, strict=True):
            assert e["image"] == f"coco:{ref['image_id']}"
            assert (e["ref_id"], e["ann_id"], e["category_id"]) == (
                ref["ref_id"],
                ref["ann_id"],
                ref["category_id"],
            )
            assert e["sentence"] == sent["sent"] and e["raw"] == sent["raw"]
            assert e["bbox"] == anns[ref["ann_id"]]["bbox"]
            same_image = [a for a in ANNOTATIONS if a["image_id"] == ref["image_id"]]
            regions = e["regions"]
            assert regions["ann_ids"].tolist() == [a["id"] for a in same_image]
            assert regions["boxes"].tolist() == [a["bbox"] for a in same_image]
            assert regions["category_ids"].tolist() == [a["category_id"] for a in same_image]


def test_image_sizes_links_and_sources(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _tree(raw, "refcoco", "refs(unc).p", unc_refs())
    out = tmp_path / "out.h5"
    build(raw, out, "refcoco")
    with UnifiedFile(out) as uf:
        keys = list(uf.image_keys)
        sizes = dict(
            zip(
                keys,
                zip(uf.h5["images"]["width"][:], uf.h5["images"]["height"][:], strict=True),
                strict=True,
            )
        )
        links = uf.links()
        rows = sorted(
            zip(links["type"], links["key_a"], links["key_b"], links["source"], strict=True)
        )
        sources = {s["path"] for s in uf.sources}
    assert keys == ["coco:100", "coco:200", "coco:300"]
    assert sizes == {"coco:100": (640, 480), "coco:200": (500, 375), "coco:300": (800, 600)}
    assert rows == [  # image 200 has an empty flickr_url: no link
        ("coco_flickr_url", "coco:100", "flickr:2970773875", "refcoco/instances.json"),
        ("coco_flickr_url", "coco:300", "flickr:123456", "refcoco/instances.json"),
    ]
    assert sources == {"refcoco/refs(unc).p", "refcoco/instances.json"}


def test_utf8_byte_strings_of_a_python2_pickle(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    refs = unc_refs()
    refs[0]["sentences"][0] = {"sent_id": 10, "sent": "the café chair", "raw": "The Café chair"}
    _tree(raw, "refcoco", "refs(unc).p", refs, py2=True)
    out = tmp_path / "out.h5"
    build(raw, out, "refcoco")
    first = examples(out, "refcoco", "train")[0]
    assert (first["sentence"], first["raw"]) == ("the café chair", "The Café chair")
    with UnifiedFile(out) as uf:
        assert uf.build_report["refcoco"]["refs_pickle_decoding"] == "bytes-utf8"


def test_refcoco_plus_alias_folder_and_refcocog_splits(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _tree(raw, "refcoco+", "refs(unc).p", unc_refs())  # the refer toolkit's folder name
    _tree(raw, "refcocog", "refs(umd).p", umd_refs())
    out = tmp_path / "out.h5"
    build(raw, out, "refcoco_plus", "refcocog")
    with UnifiedFile(out) as uf:
        assert uf.splits("refcocog") == ["train", "val", "test"]
        assert [uf.split("refcocog", s).role for s in ("train", "val", "test")] == [
            "train",
            "eval",
            "eval",
        ]
        assert list(uf.split("refcoco_plus", "testB").column("id")) == [15]
        assert list(uf.split("refcocog", "test").column("id")) == [22, 23]
        sources = {link for link in uf.links()["source"]}
        assert sources == {"refcoco+/instances.json", "refcocog/instances.json"}
        assert {s["path"] for s in uf.sources} >= {"refcoco+/refs(unc).p", "refcocog/refs(umd).p"}
    # The scorer's ground truth reads these columns: every eval split, target boxes.
    gt = load_groundtruth(out, "refcocog")
    assert gt.sent_ids.tolist() == [21, 22, 23]
    whole = [0.0, 0.0, 799.0, 599.0]
    assert gt.boxes.tolist() == [[10.0, 20.0, 5.0, 6.0], whole, whole]


def test_smoke_mode_takes_the_first_sentences(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _tree(raw, "refcoco", "refs(unc).p", unc_refs())
    out = tmp_path / "out.h5"
    build(raw, out, "refcoco", max_examples=3)
    with UnifiedFile(out) as uf:
        counts = {s: uf.split("refcoco", s).num_examples for s in uf.splits("refcoco")}
        assert list(uf.image_keys) == ["coco:100", "coco:200"]
    assert counts == {"train": 2, "val": 1, "testA": 0, "testB": 0}


def test_missing_files_name_the_download_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_instances(raw / "refcocog", IMAGES, ANNOTATIONS)
    with pytest.raises(MissingRawFilesError) as info:
        build(raw, tmp_path / "out.h5", "refcocog")
    message = str(info.value)
    assert "refcocog: " in message and "refs(umd).p" in message
    assert "https://github.com/lichengunc/refer" in message
    assert "instances.json" not in message


def test_malformed_and_unsafe_files_are_named(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    folder = _tree(raw, "refcoco", "refs(unc).p", unc_refs())
    data = (folder / "refs(unc).p").read_bytes()
    (folder / "refs(unc).p").write_bytes(data[:-40])
    with pytest.raises(MalformedFileError, match=r"refs\(unc\)\.p: malformed file"):
        build(raw, tmp_path / "out.h5", "refcoco")
    (folder / "refs(unc).p").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p: refused .*os\.system"):
        build(raw, tmp_path / "out.h5", "refcoco")
    (folder / "refs(unc).p").write_bytes(pickle.dumps({"not": "a list"}, protocol=2))
    with pytest.raises(RecordError, match=r"refs\(unc\)\.p: record <top level>.*expected list"):
        build(raw, tmp_path / "out.h5", "refcoco")
    _tree(raw, "refcoco", "refs(unc).p", unc_refs())
    (folder / "instances.json").write_text('{"images": [}')
    with pytest.raises(MalformedFileError, match=r"instances\.json: malformed file at byte 12"):
        build(raw, tmp_path / "out.h5", "refcoco")
    assert not (tmp_path / "out.h5").exists()


def _bad(tmp_path: Path, refs: list, match: str, annotations: list | None = None) -> None:
    raw = tmp_path / "raw"
    path = write_instances(raw / "refcoco", IMAGES, ANNOTATIONS)
    if annotations is not None:  # records the writer would not produce: edit the JSON
        doc = json.loads(path.read_text())
        doc["annotations"] = annotations
        path.write_text(json.dumps(doc))
    # Records are pickled as given (write_refs lays out the release keys, so bypass it).
    (raw / "refcoco").mkdir(parents=True, exist_ok=True)
    (raw / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(RecordError, match=match):
        build(raw, tmp_path / "out.h5", "refcoco")


def _plain_refs() -> list[dict]:
    refs = [dict(r) for r in unc_refs()]
    for r in refs:
        r["sentences"] = [dict(s) for s in r["sentences"]]
    return refs


def test_bad_refs_name_ref_and_field(tmp_path: Path) -> None:
    refs = _plain_refs()
    refs[1]["split"] = "testC"
    _bad(tmp_path, refs, r"refs\(unc\)\.p: record 1: field 'split': unknown split 'testC'")

    refs = _plain_refs()
    del refs[2]["ann_id"]
    _bad(tmp_path, refs, r"record 2: field 'ann_id': missing")

    refs = _plain_refs()
    refs[3]["image_id"] = "300"
    _bad(tmp_path, refs, r"record 3: field 'image_id': expected int, got str")

    refs = _plain_refs()
    refs[0]["sentences"][1]["sent"] = None
    _bad(tmp_path, refs, r"record 0: field 'sentences\[1\]\.sent': expected str, got NoneType")

    refs = _plain_refs()
    del refs[4]["sentences"][0]["raw"]
    _bad(tmp_path, refs, r"record 4: field 'sentences\[0\]\.raw': missing")


def test_refs_that_disagree_with_instances(tmp_path: Path) -> None:
    refs = _plain_refs()
    refs[1]["ann_id"] = 999
    _bad(tmp_path, refs, r"record 1: field 'ann_id': annotation 999 is not in instances\.json")

    refs = _plain_refs()
    refs[0]["ann_id"] = 21  # an annotation of image 200, not of image 100
    _bad(tmp_path, refs, r"record 0: field 'ann_id': annotation 21 is on image 200")

    refs = _plain_refs()
    refs[3]["image_id"] = 400
    _bad(tmp_path, refs, r"record 3: field 'image_id': image 400 is not in instances\.json")


def test_bad_instances_records(tmp_path: Path) -> None:
    anns = [dict(a) for a in ANNOTATIONS]
    anns[2]["bbox"] = [1.0, 2.0, 3.0]
    _bad(tmp_path, _plain_refs(), r"instances\.json: record annotation 12: field 'bbox'", anns)
    anns = [dict(a) for a in ANNOTATIONS] + [dict(ANNOTATIONS[0])]
    _bad(tmp_path, _plain_refs(), r"record annotation 11: field 'id': duplicate", anns)


def test_writer_streams_a_generator_with_many_refs(tmp_path: Path) -> None:
    """More than one 1,000-ref batch and more than 256 memo entries (LONG_BINPUT/GET)."""
    refs = (
        _ref(i, 11, 100, 1, "train" if i % 3 else "val", [(5000 + i, f"object {i}")])
        for i in range(2500)
    )
    raw = tmp_path / "raw"
    write_refs(raw / "refcoco", "refs(unc).p", refs, py2_strings=True)
    write_instances(raw / "refcoco", IMAGES, ANNOTATIONS)
    data = (raw / "refcoco" / "refs(unc).p").read_bytes()
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert ops.count("APPENDS") >= 3 and "LONG_BINPUT" in ops and "BINGET" in ops
    out = tmp_path / "out.h5"
    build(raw, out, "refcoco")
    with UnifiedFile(out) as uf:
        val = uf.split("refcoco", "val")
        assert val.num_examples == 834
        assert list(val.column("sentence")[:2]) == ["object 0", "object 3"]
        assert val.ragged("regions").offsets[-1] == 834 * 3
