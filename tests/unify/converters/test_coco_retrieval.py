"""coco_retrieval: real COCO image records (links, sizes), the pinned split and fold rules,
candidates, smoke mode and every error message, on writer-made Karpathy files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.coco_retrieval import FOLD_SIZE
from unify.converters.karpathy import HOMEPAGE
from unify.errors import DataError, MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.coco_format import (
    COCO_2014,
    caption_annotation,
    category,
    coco_image,
    instance_annotation,
    write_coco_captions,
    write_coco_instances,
)
from unify.sample.karpathy_format import KarpathyImage, tokenize, write_karpathy_coco

TASK = "coco_retrieval"


def _images(n: int, split: str, start: int, captions: int = 5) -> list[KarpathyImage]:
    return [
        {
            "cocoid": start + i,
            "split": split,
            "sentences": [{"raw": f"Picture {start + i}, caption {j}."} for j in range(captions)],
        }
        for i in range(n)
    ]


def _split_records(path: Path) -> dict[str, list[dict]]:
    """The raw file's images per unified split, in release order (train = train + restval)."""
    ours = {"train": "train", "restval": "train", "val": "val", "test": "test"}
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for img in json.loads(path.read_text())["images"]:
        out[ours[img["split"]]].append(img)
    return out


def test_release_layout_of_the_writer(tmp_path: Path) -> None:
    """Key order and separators of dataset_coco.json (json.dump defaults); train images are
    COCO train2014 files, the others val2014; imgid is the position in the file."""
    path = write_karpathy_coco(
        tmp_path,
        [
            {"cocoid": 9, "split": "train", "sentences": []},
            {"cocoid": 391895, "split": "test", "sentences": [{"raw": "A man.", "sentid": 770337}]},
        ],
    )
    assert path.read_text() == (
        '{"images": [{"filepath": "train2014", "sentids": [], "filename": '
        '"COCO_train2014_000000000009.jpg", "imgid": 0, "split": "train", "sentences": [], '
        '"cocoid": 9}, {"filepath": "val2014", "sentids": [770337], "filename": '
        '"COCO_val2014_000000391895.jpg", "imgid": 1, "split": "test", "sentences": '
        '[{"tokens": ["a", "man"], "raw": "A man.", "imgid": 1, "sentid": 770337}], '
        '"cocoid": 391895}], "dataset": "coco"}'
    )


def test_real_coco_image_records_and_captions(tmp_path: Path) -> None:
    """The real COCO file (2017 layout = 2014 record layout) as captions_val2014.json: every
    image's flickr_url link and size; its real captions as the Karpathy sentences."""
    raw = tmp_path / "raw"
    coco = place(
        real("coco_captions", "captions_val2017.json"), raw / TASK / "captions_val2014.json"
    )
    doc = json.loads(coco.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    splits = ("train", "restval", "val", "test", "test")
    karpathy = [
        {
            "cocoid": im["id"],
            "split": splits[i % len(splits)],
            # A 2017 file name must not matter: the key comes from cocoid.
            "filename": im["file_name"],
            "sentences": [{"raw": a["caption"], "sentid": a["id"]} for a in by_image[im["id"]]],
        }
        for i, im in enumerate(doc["images"])
    ]
    kfile = write_karpathy_coco(raw / TASK, karpathy)
    out = tmp_path / "out.h5"
    result = build(raw, out, TASK)

    records = _split_records(kfile)
    for split in ("train", "val", "test"):
        got = examples(out, TASK, split)
        sents = [(img, s) for img in records[split] for s in img["sentences"]]
        assert len(got) == len(sents) > 0
        for e, (img, s) in zip(got, sents, strict=True):
            assert e["id"] == s["sentid"]
            assert e["image"] == f"coco:{img['cocoid']}"
            assert e["caption"] == s["raw"]
            assert e["tokens"] == " ".join(s["tokens"]) == " ".join(tokenize(s["raw"]))
            if split == "test":
                assert e["fold"] == 0  # fewer than 1,000 test images: all in fold 0
            else:
                assert "fold" not in e
    with UnifiedFile(out) as uf:
        keys = list(uf.image_keys)
        assert keys == sorted(f"coco:{im['id']}" for im in doc["images"])
        wh = zip(uf.h5["images"]["width"][:], uf.h5["images"]["height"][:], strict=True)
        sizes = dict(zip(keys, wh, strict=True))
        links = uf.links()
        rows = set(zip(links["type"], links["key_a"], links["key_b"], links["source"], strict=True))
        sources = {s["path"]: s for s in uf.sources}
    for im in doc["images"]:
        assert sizes[f"coco:{im['id']}"] == (im["width"], im["height"])
    photo_ids = [im["flickr_url"].rsplit("/", 1)[1].split("_")[0] for im in doc["images"]]
    assert rows == {
        ("coco_flickr_url", f"coco:{im['id']}", f"flickr:{pid}", f"{TASK}/captions_val2014.json")
        for im, pid in zip(doc["images"], photo_ids, strict=True)
    }
    assert ("coco_flickr_url", "coco:397133", "flickr:6255196340") in {r[:3] for r in rows}
    entry = sources[f"{TASK}/captions_val2014.json"]
    assert entry["size"] == coco.stat().st_size
    assert entry["sha256"] == hashlib.sha256(coco.read_bytes()).hexdigest()
    assert f"{TASK}/dataset_coco.json" in sources
    report = result.report[TASK]
    assert report["coco_image_files"] == ["captions_val2014.json"]
    assert report["coco_flickr_links"] == 25 and report["coco_sizes_filled"] == 25
    assert report["release_splits"] == {"train": 5, "restval": 5, "val": 5, "test": 10}


def test_splits_candidates_and_1k_folds(tmp_path: Path) -> None:
    """train = train + restval in file order; test folds count TEST images in file order
    (other splits interleaved), 1,000 per fold; every caption is kept; captionless images
    are still candidates."""
    raw = tmp_path / "raw"
    n_test = 2 * FOLD_SIZE + 7
    test = _images(n_test, "test", 100_000, captions=1)
    test[0]["sentences"] = [{"raw": f"Seven captions {j}."} for j in range(7)]
    test[FOLD_SIZE]["sentences"] = []  # a candidate without captions
    others = (
        _images(3, "train", 10, 2)
        + _images(2, "restval", 20, 2)
        + _images(4, "val", 30, 5)
        + _images(1, "restval", 40, 6)
    )
    interleaved: list[KarpathyImage] = []
    for i, img in enumerate(test):
        if i % 500 == 0 and others:
            interleaved.append(others.pop(0))
        interleaved.append(img)
    interleaved.extend(others)
    kfile = write_karpathy_coco(raw / TASK, interleaved)
    out = tmp_path / "out.h5"
    build(raw, out, TASK)

    records = _split_records(kfile)
    assert [img["split"] for img in records["train"]] == [
        "train",
        "train",
        "train",
        "restval",
        "restval",
        "restval",
    ]
    with UnifiedFile(out) as uf:
        for split, role in (("train", "train"), ("val", "eval"), ("test", "eval")):
            view = uf.split(TASK, split)
            assert view.role == role
            cands = uf.image_keys[view.column("candidates")].tolist()
            assert cands == [f"coco:{img['cocoid']}" for img in records[split]]
            assert view.arrays == (
                ["candidates", "candidate_folds"] if split == "test" else ["candidates"]
            )
            assert "candidates" not in view.fields
            ids = view.column("id")
            assert ids.tolist() == [s["sentid"] for img in records[split] for s in img["sentences"]]
        test_view = uf.split(TASK, "test")
        cand_folds = test_view.column("candidate_folds")
        assert cand_folds.dtype == np.int8
        assert cand_folds.tolist() == [i // FOLD_SIZE for i in range(n_test)]
        assert np.bincount(cand_folds).tolist() == [1000, 1000, 7]
        fold = test_view.column("fold")
        assert fold.dtype == np.int8
        position = {int(c): i for i, c in enumerate(test_view.column("candidates"))}
        image_rows = test_view.column("image")
        assert fold.tolist() == [position[int(r)] // FOLD_SIZE for r in image_rows]
        assert test_view.num_examples == n_test - 1 + 6  # 7 on image 0, none on image 1000
        assert "fold" not in uf.split(TASK, "val").fields
    everything = examples(out, TASK, "test")
    with UnifiedFile(out) as uf:  # random access past the candidates' length works too
        view = uf.split(TASK, "test")
        for i in (0, n_test - 1, view.num_examples - 1):
            assert view.example(i) == everything[i]
    first = everything[:7]
    assert [e["caption"] for e in first] == [f"Seven captions {j}." for j in range(7)]
    assert {e["image"] for e in first} == {"coco:100000"}


def test_instances_files_and_smoke_mode(tmp_path: Path) -> None:
    """instances_*2014.json (2014 layout, escaped slashes) supply links when no captions file
    does; link files are read whole even in smoke mode, which keeps N image records."""
    raw = tmp_path / "raw"
    d = raw / TASK
    write_karpathy_coco(d, _images(4, "train", 1) + _images(3, "test", 50))
    # More records than the build keeps: links come from all of them.
    train_images = [coco_image(i, 600 + i, 400, "train2014") for i in range(1, 9)]
    val_images = [
        coco_image(
            i,
            300,
            200 + i,
            "val2014",
            flickr_url=f"http://farm1.staticflickr.com/1/{9000 + i}_abc_z.jpg",
        )
        for i in range(50, 53)
    ] + [coco_image(77, 10, 10, "val2014", flickr_url="")]  # no URL: no link, not an error
    anns = [instance_annotation(1, 1, 3, [1, 2, 3, 4])]
    write_coco_instances(
        d / "instances_train2014.json", train_images, anns, [category(3, "car", "vehicle")]
    )
    write_coco_instances(d / "instances_val2014.json", val_images, [], [])
    # A captions file takes precedence over the instances file of the same subset.
    write_coco_captions(
        d, "val2014", val_images[:1], [caption_annotation(5, 50, "x")], style=COCO_2014
    )
    assert b"http:\\/\\/mscoco.org" in (d / "instances_val2014.json").read_bytes()
    out = tmp_path / "out.h5"
    result = build(raw, out, TASK, max_examples=5)
    report = result.report[TASK]
    assert report["coco_image_files"] == ["instances_train2014.json", "captions_val2014.json"]
    assert report["images"] == {"train": 4, "val": 0, "test": 1}
    assert report["counts"] == {"train": 20, "val": 0, "test": 5}
    with UnifiedFile(out) as uf:
        links = uf.links()
        rows = sorted(zip(links["key_a"], links["key_b"], links["source"], strict=True))
        keys = list(uf.image_keys)
        widths = dict(zip(keys, uf.h5["images"]["width"][:].tolist(), strict=True))
        assert uf.split(TASK, "val").num_examples == 0
        assert len(uf.split(TASK, "val").column("candidates")) == 0
        sources = {s["path"] for s in uf.sources}
    assert keys == ["coco:1", "coco:2", "coco:3", "coco:4", "coco:50"]
    assert widths == {"coco:1": 601, "coco:2": 602, "coco:3": 603, "coco:4": 604, "coco:50": 300}
    train_urls = {im["id"]: im["flickr_url"] for im in train_images}
    expected = [
        (
            f"coco:{i}",
            f"flickr:{train_urls[i].rsplit('/', 1)[1].split('_')[0]}",
            f"{TASK}/instances_train2014.json",
        )
        for i in range(1, 9)
    ] + [("coco:50", "flickr:9050", f"{TASK}/captions_val2014.json")]
    assert rows == sorted(expected)
    assert f"{TASK}/instances_val2014.json" not in sources
    assert f"{TASK}/dataset_coco.json" in sources


def test_missing_dataset_file_names_the_download_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / TASK).mkdir(parents=True)
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    msg = str(err.value)
    assert f"{TASK}: {raw / TASK / 'dataset_coco.json'}" in msg and HOMEPAGE in msg
    assert "captions_train2014" not in msg  # optional files are not demanded


def _tree_with(tmp_path: Path, edit: object) -> Path:
    raw = tmp_path / "raw"
    path = write_karpathy_coco(raw / TASK, _images(2, "train", 1, 2) + _images(2, "test", 9, 2))
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    return raw


def _sentence(image: int, j: int, **change: object) -> object:
    """An edit that changes fields of one sentence of the written file."""
    return lambda d: d["images"][image]["sentences"][j].update(change)


@pytest.mark.parametrize(
    ("edit", "record", "field", "detail"),
    [
        (lambda d: d["images"][1].update(split="bogus"), "image 2", "split", "unknown split"),
        (lambda d: d["images"][1].update(split=None), "image 2", "split", "expected str"),
        (lambda d: d["images"][2].update(cocoid="9"), "image 9", "cocoid", "expected int"),
        (lambda d: d["images"][2].pop("cocoid"), "image 2", "cocoid", "missing"),
        (lambda d: d["images"][0].update(sentences={}), "image 1", "sentences", "expected list"),
        (_sentence(3, 1, raw=7), "sentence 7", "raw", "expected str"),
        (
            lambda d: d["images"][3]["sentences"][0].pop("sentid"),
            "image 10 sentences[0]",
            "sentid",
            "missing",
        ),
        (_sentence(0, 1, tokens=["a", 3]), "sentence 1", "tokens[1]", "expected str"),
        (_sentence(0, 1, tokens="a b"), "sentence 1", "tokens", "expected list"),
        (lambda d: d["images"][3].update(cocoid=1), "image 1", "cocoid", "listed twice"),
    ],
)
def test_bad_records_name_file_record_and_field(
    tmp_path: Path, edit: object, record: str, field: str, detail: str
) -> None:
    raw = _tree_with(tmp_path, edit)
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    msg = str(err.value)
    assert "dataset_coco.json" in msg
    assert err.value.record == record and err.value.field == field
    assert detail in msg
    assert not (tmp_path / "out.h5").exists()


def test_malformed_and_mismatched_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    path = write_karpathy_coco(raw / TASK, _images(2, "train", 1))
    text = path.read_text()
    path.write_text(text[:200])
    with pytest.raises(MalformedFileError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    assert "dataset_coco.json" in str(err.value) and err.value.position is not None

    path.write_text(text.replace('"dataset": "coco"', '"dataset": "flickr30k"'))
    with pytest.raises(DataError, match="holds dataset 'flickr30k', not 'coco'"):
        build(raw, tmp_path / "out.h5", TASK)

    path.write_text(json.dumps([{"images": []}]))
    with pytest.raises(RecordError, match=r"<top level>.*'images'"):
        build(raw, tmp_path / "out.h5", TASK)


def test_bad_coco_image_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = raw / TASK
    write_karpathy_coco(d, _images(2, "train", 1))
    bad = [coco_image(1, 640, 480), {**coco_image(2, 640, 480), "width": "640"}]
    write_coco_captions(d, "train2014", bad, [])
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", TASK)
    assert "captions_train2014.json" in str(err.value)
    assert err.value.record == "image 2" and err.value.field == "width"

    (d / "captions_train2014.json").write_text('{"info": {}, "annotations": []}')
    with pytest.raises(
        DataError, match=r'captions_train2014\.json: no image records under "images"'
    ):
        build(raw, tmp_path / "out.h5", TASK)

    (d / "captions_train2014.json").write_text('{"images": [{"id": 1}, {"id": 2,]}')
    with pytest.raises(MalformedFileError) as merr:
        build(raw, tmp_path / "out.h5", TASK)
    assert "captions_train2014.json" in str(merr.value) and merr.value.position is not None
