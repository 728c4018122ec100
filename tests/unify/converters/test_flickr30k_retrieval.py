"""flickr30k_retrieval: the release layout of dataset_flickr30k.json (no real Karpathy sample
exists, so files are writer-made), splits, keys from file stems, the COCO bridge, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unify.helpers import build, examples
from unify.converters.karpathy import HOMEPAGE
from unify.errors import DataError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.coco_format import coco_image, write_coco_captions
from unify.sample.karpathy_format import (
    KarpathyImage,
    write_karpathy_coco,
    write_karpathy_flickr30k,
)

TASK = "flickr30k_retrieval"


def _images() -> list[KarpathyImage]:
    splits = ("train", "train", "val", "test", "train", "test", "val")
    return [
        {
            "filename": f"{1000092795 + 17 * i}.jpg",
            "split": split,
            "sentences": [
                {"raw": f"Two young guys with shaggy hair look at their hands {i}-{j} ."}
                for j in range(5)
            ],
        }
        for i, split in enumerate(splits)
    ]


def test_release_layout_of_the_writer(tmp_path: Path) -> None:
    """Key order and separators of the release (json.dump defaults), imgid = position."""
    path = write_karpathy_flickr30k(
        tmp_path,
        [
            {
                "filename": "1000092795.jpg",
                "split": "train",
                "sentences": [{"raw": "Two men in green shirts standing in a yard.", "sentid": 3}],
            }
        ],
    )
    assert path.name == "dataset_flickr30k.json"
    assert path.read_text() == (
        '{"images": [{"sentids": [3], "imgid": 0, "sentences": [{"tokens": ["two", "men", '
        '"in", "green", "shirts", "standing", "in", "a", "yard"], "raw": "Two men in green '
        'shirts standing in a yard.", "imgid": 0, "sentid": 3}], "split": "train", '
        '"filename": "1000092795.jpg"}], "dataset": "flickr30k"}'
    )


def test_splits_fields_and_candidates(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    path = write_karpathy_flickr30k(raw / TASK, _images())
    out = tmp_path / "out.h5"
    result = build(raw, out, TASK)
    records = json.loads(path.read_text())["images"]
    for split, role in (("train", "train"), ("val", "eval"), ("test", "eval")):
        imgs = [img for img in records if img["split"] == split]
        got = examples(out, TASK, split)
        sents = [(img, s) for img in imgs for s in img["sentences"]]
        assert len(got) == len(sents) == 5 * len(imgs)
        for e, (img, s) in zip(got, sents, strict=True):
            assert set(e) == {"task", "id", "image", "image_index", "caption", "tokens"}
            assert e["task"] == TASK
            assert e["id"] == s["sentid"]
            assert e["image"] == "flickr:" + img["filename"].removesuffix(".jpg")
            assert e["caption"] == s["raw"]
            assert e["tokens"] == " ".join(s["tokens"])
        with UnifiedFile(out) as uf:
            view = uf.split(TASK, split)
            assert view.role == role
            assert view.arrays == ["candidates"]
            cands = uf.image_keys[view.column("candidates")].tolist()
        assert cands == ["flickr:" + img["filename"][:-4] for img in imgs]
    assert result.report[TASK]["images"] == {"train": 3, "val": 2, "test": 2}
    with UnifiedFile(out) as uf:
        assert uf.task_attrs(TASK)["metric"] == "retrieval"
        assert uf.task_attrs(TASK)["id_field"] == "sentid"
        assert uf.h5["images"]["width"][:].tolist() == [-1] * 7  # no raw file states sizes


def test_smoke_mode_keeps_first_image_records(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_karpathy_flickr30k(raw / TASK, _images())
    out = tmp_path / "out.h5"
    result = build(raw, out, TASK, max_examples=3)
    assert result.report[TASK]["counts"] == {"train": 10, "val": 5, "test": 0}
    with UnifiedFile(out) as uf:
        assert len(uf.image_keys) == 3


def test_coco_flickr_url_links_to_the_flickr30k_key(tmp_path: Path) -> None:
    """The bridge the leakage step needs: a COCO record's flickr_url names a Flickr30k photo."""
    raw = tmp_path / "raw"
    write_karpathy_flickr30k(raw / TASK, _images())
    photo = 1000092795 + 17 * 3  # a Flickr30k test image
    write_karpathy_coco(
        raw / "coco_retrieval", [{"cocoid": 42, "split": "test", "sentences": [{"raw": "x"}]}]
    )
    url = f"http://farm3.staticflickr.com/2318/{photo}_b967c69504_z.jpg"
    write_coco_captions(
        raw / "coco_retrieval", "val2014", [coco_image(42, 640, 480, "val2014", flickr_url=url)], []
    )
    out = tmp_path / "out.h5"
    build(raw, out, "coco_retrieval", TASK)
    with UnifiedFile(out) as uf:
        links = uf.links()
        assert list(zip(links["key_a"], links["key_b"], strict=True)) == [
            ("coco:42", f"flickr:{photo}")
        ]
        assert uf.image_index(f"flickr:{photo}") >= 0
        test = uf.split(TASK, "test")
        assert f"flickr:{photo}" in uf.image_keys[test.column("candidates")].tolist()


@pytest.mark.parametrize(
    ("image", "change", "record", "field", "detail"),
    [
        (1, {"split": "restval"}, "image 1000092812.jpg", "split", "unknown split 'restval'"),
        (2, {"filename": "abc.jpg"}, "image abc.jpg", "filename", "not <Flickr photo id>.jpg"),
        (2, {"filename": 1000092829}, "image 1000092829", "filename", "expected str"),
        (0, {"sentences": None}, "image 1000092795.jpg", "sentences", "expected list"),
        (3, {"filename": "1000092795.jpg"}, "image 1000092795.jpg", "filename", "listed twice"),
    ],
)
def test_bad_records_name_file_record_and_field(
    tmp_path: Path, image: int, change: dict, record: str, field: str, detail: str
) -> None:
    raw = tmp_path / "raw"
    path = write_karpathy_flickr30k(raw / TASK, _images())
    doc = json.loads(path.read_text())
    doc["images"][image].update(change)
    path.write_text(json.dumps(doc))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    assert "dataset_flickr30k.json" in str(err.value) and detail in str(err.value)
    assert (err.value.record, err.value.field) == (record, field)


def test_missing_and_swapped_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / TASK).mkdir(parents=True)
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    assert str(raw / TASK / "dataset_flickr30k.json") in str(err.value)
    assert HOMEPAGE in str(err.value)

    coco = write_karpathy_coco(raw / "x", [{"cocoid": 1, "split": "val", "sentences": []}])
    coco.rename(raw / TASK / "dataset_flickr30k.json")
    with pytest.raises(DataError, match="holds dataset 'coco', not 'flickr30k'"):
        build(raw, tmp_path / "out.h5", TASK)
