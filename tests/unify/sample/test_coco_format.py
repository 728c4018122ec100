"""The COCO writer: byte-exact 2017 layout against the real release excerpt, the 2014 layout
(compact, escaped slashes, images before licenses), record builders, streaming, atomicity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import real
from unify.images import flickr_id_from_url
from unify.sample.coco_format import (
    COCO_2014,
    COCO_2017,
    LICENSES,
    caption_annotation,
    category,
    coco_image,
    flickr_static_url,
    instance_annotation,
    write_coco,
    write_coco_captions,
    write_coco_instances,
)


def test_real_2017_captions_file_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    src = real("coco_captions", "captions_val2017.json")
    doc = json.loads(src.read_text())
    assert doc["licenses"] == LICENSES  # the writer's default licences are the release's
    out = write_coco_captions(
        tmp_path,
        "val2017",
        iter(doc["images"]),
        (caption_annotation(a["id"], a["image_id"], a["caption"]) for a in doc["annotations"]),
        style=COCO_2017,
    )
    assert out.name == "captions_val2017.json"
    assert out.read_bytes() == src.read_bytes()
    # The record builders produce the release's records (key order included).
    im = doc["images"][0]
    built = coco_image(
        im["id"],
        im["width"],
        im["height"],
        "val2017",
        flickr_url=im["flickr_url"],
        license=im["license"],
        date_captured=im["date_captured"],
        style=COCO_2017,
    )
    assert list(built.items()) == list(im.items())


def test_2014_layout_and_instances(tmp_path: Path) -> None:
    images = [coco_image(391895, 640, 360, "val2014"), coco_image(7, 10, 20, "val2014")]
    anns = [
        instance_annotation(1768, 391895, 18, [473.07, 395.93, 38.65, 28.67]),
        instance_annotation(
            2,
            7,
            1,
            [0, 0, 2, 3],
            segmentation={"counts": "ab", "size": [20, 10]},
            area=5.0,
            iscrowd=1,
        ),
    ]
    cats = [category(1, "person", "person"), category(18, "dog", "animal")]
    path = write_coco_instances(tmp_path / "instances.json", iter(images), iter(anns), cats)
    text = path.read_text()
    assert text.startswith(
        '{"info":{"description":"This is stable 1.0 version of the 2014 MS COCO dataset.",'
        '"url":"http:\\/\\/mscoco.org","version":"1.0","year":2014,'
    )
    assert '"images":[{"license":1,"file_name":"COCO_val2014_000000391895.jpg",' in text
    assert '"coco_url":"http:\\/\\/mscoco.org\\/images\\/391895","height":360,"width":640,' in text
    assert '": ' not in text and ', "' not in text and "}, {" not in text  # compact
    doc = json.loads(text)
    assert list(doc) == ["info", "images", "licenses", "annotations", "categories"]
    assert doc["images"] == images and doc["categories"] == cats
    first, second = doc["annotations"]
    assert list(first) == [
        "segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id",
    ]  # fmt: skip
    assert first["bbox"] == [473.07, 395.93, 38.65, 28.67]
    assert first["area"] == pytest.approx(38.65 * 28.67)
    x, y, w, h = first["bbox"]
    assert first["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
    assert (first["iscrowd"], first["category_id"], first["image_id"]) == (0, 18, 391895)
    assert second["segmentation"] == {"counts": "ab", "size": [20, 10]}
    assert (second["area"], second["iscrowd"]) == (5.0, 1)


def test_captions_file_has_no_categories_and_urls_carry_photo_ids(tmp_path: Path) -> None:
    path = write_coco_captions(tmp_path, "train2014", [coco_image(5, 1, 2)], [])
    doc = json.loads(path.read_text())
    assert list(doc) == ["info", "images", "licenses", "annotations"]
    assert doc["annotations"] == []
    url = doc["images"][0]["flickr_url"]
    assert flickr_id_from_url(url) == "5"
    assert flickr_static_url(5) == url and flickr_static_url(6) != url
    assert flickr_id_from_url(flickr_static_url(2970773875, farm=4, server=3153)) == "2970773875"


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "captions_train2014.json"
    target.write_text("old")

    def images() -> Iterator[dict]:
        yield coco_image(1, 2, 3)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_coco(target, images(), [], style=COCO_2014)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["captions_train2014.json"]
