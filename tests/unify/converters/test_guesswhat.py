"""guesswhat: real games (CompGuessWhat "original" file), labels, links, gzip errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.guesswhat import GuessWhat
from unify.errors import MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.guesswhat_format import GuessWhatGame, write_guesswhat

REAL_VALID = ("guesswhat", "compguesswhat_near_original", "compguesswhat.valid.jsonl.gz")


def _game(
    gid: int, image_id: int, target_index: int = 0, n_objects: int = 2, **extra: object
) -> GuessWhatGame:
    objects = [
        {
            "id": gid * 100 + k,
            "category": ("dog", "cup", "person")[k % 3],
            "category_id": (18, 47, 1)[k % 3],
            "bbox": [10.5 * k, 20.0, 30.25, 40 + k],
        }
        for k in range(n_objects)
    ]
    game: GuessWhatGame = {
        "id": gid,
        "status": "success",
        "object_id": objects[target_index]["id"],
        "image": {
            "id": image_id,
            "width": 640,
            "height": 480,
            "flickr_url": f"http://farm4.staticflickr.com/1/{image_id + 7000}_abc_z.jpg",
        },
        "qas": [
            {"id": gid * 10, "question": "Is it an animal?", "answer": "Yes"},
            {"id": gid * 10 + 1, "question": "Is it on the left?", "answer": "N/A"},
        ],
        "objects": objects,
    }
    game.update(extra)  # type: ignore[typeddict-item]
    return game


def _tree(raw: Path, **files: list[GuessWhatGame]) -> Path:
    d = raw / "guesswhat"
    defaults = {"train": [_game(1, 11)], "valid": [_game(2, 12)], "test": [_game(3, 13)]}
    for split, games in (defaults | files).items():
        write_guesswhat(d, split, games)
    return d


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _rewrite(path: Path, games: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(g) + "\n" for g in games)


def test_real_games_are_stored_exactly(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    src = place(real(*REAL_VALID), d / "guesswhat.valid.jsonl.gz")
    out = tmp_path / "out.h5"
    build(raw, out, "guesswhat")
    games = _lines(src)
    assert len(games) == 6 and all("visual_genome" in g["image"] for g in games)
    got = examples(out, "guesswhat", "valid")
    assert len(got) == 6
    for e, g in zip(got, games, strict=True):
        assert e["id"] == g["id"]
        assert e["image"] == f"coco:{g['image']['id']}"
        assert e["status"] == g["status"]
        assert e["object_id"] == g["object_id"]
        d_ = e["dialogue"]
        assert d_["qa_ids"].dtype == np.int64
        assert d_["qa_ids"].tolist() == [q["id"] for q in g["qas"]]
        assert d_["questions"].tolist() == [q["question"] for q in g["qas"]]
        assert d_["answers"].tolist() == [q["answer"] for q in g["qas"]]
        o = e["objects"]
        assert o["ids"].tolist() == [x["id"] for x in g["objects"]]
        assert o["boxes"].dtype == np.float32 and o["boxes"].shape == (len(g["objects"]), 4)
        np.testing.assert_array_equal(
            o["boxes"], np.asarray([x["bbox"] for x in g["objects"]], dtype=np.float32)
        )
        assert o["category_ids"].dtype == np.int32
        assert o["category_ids"].tolist() == [x["category_id"] for x in g["objects"]]
        assert o["categories"].tolist() == [x["category"] for x in g["objects"]]
        assert o["ids"][e["label"]] == g["object_id"]
    assert [e["label"] for e in got] == [4, 4, 5, 5, 1, 2]  # worked out by hand from the file
    assert got[0]["objects"]["boxes"][0].tolist() == pytest.approx([5.62, 332.34, 65.5, 40.08])
    with UnifiedFile(out) as uf:
        keys = list(uf.image_keys)
        width = dict(zip(keys, uf.h5["images"]["width"][:].tolist(), strict=True))
        height = dict(zip(keys, uf.h5["images"]["height"][:].tolist(), strict=True))
        links = uf.links()
        rows = set(zip(links["type"], links["key_a"], links["key_b"], links["source"], strict=True))
        report = uf.build_report["guesswhat"]
        sources = {s["path"]: s for s in uf.sources}
    for g in games:
        key = f"coco:{g['image']['id']}"
        # The COCO record's size, not the nested Visual Genome block's.
        assert (width[key], height[key]) == (g["image"]["width"], g["image"]["height"])
        photo = g["image"]["flickr_url"].rsplit("/", 1)[1].split("_")[0]
        assert (
            "coco_flickr_url",
            key,
            f"flickr:{photo}",
            "guesswhat/guesswhat.valid.jsonl.gz",
        ) in rows
    assert ("coco_flickr_url", "coco:270512", "flickr:5620469534") in {r[:3] for r in rows}
    assert (width["coco:270512"], height["coco:270512"]) == (640, 480)
    assert report["counts"] == {"train": 1, "valid": 6, "test": 1}
    assert report["status"]["valid"] == {"success": 6, "failure": 0, "incomplete": 0}
    assert sources["guesswhat/guesswhat.valid.jsonl.gz"]["sha256"] == (
        "a25f092357981549987f7744097fc008d84176511788e9fa3683d2edf4344698"
    )


def test_writer_round_trip_labels_statuses_and_links(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    train = [
        _game(5, 50, target_index=2, n_objects=3, status="failure"),
        _game(6, 50, target_index=0, n_objects=1, status="incomplete", qas=[]),
        _game(7, 51, target_index=1, n_objects=4),
    ]
    train[2]["image"]["flickr_url"] = None  # type: ignore[typeddict-item]
    d = _tree(raw, train=train)
    # Release layout: key order and json.dumps separators as in the real lines.
    (line,) = _lines(d / "guesswhat.test.jsonl.gz")
    real_line = _lines(real(*REAL_VALID))[0]
    assert list(line) == list(real_line)
    assert list(line["objects"][0]) == list(real_line["objects"][0])
    assert list(line["qas"][0]) == list(real_line["qas"][0])
    out = tmp_path / "out.h5"
    build(raw, out, "guesswhat")
    got = examples(out, "guesswhat", "train")
    assert [e["id"] for e in got] == [5, 6, 7]
    assert [e["label"] for e in got] == [2, 0, 1]
    assert [e["object_id"] for e in got] == [502, 600, 701]
    assert [e["status"] for e in got] == ["failure", "incomplete", "success"]
    assert got[1]["dialogue"]["qa_ids"].tolist() == [] and got[1]["objects"]["ids"].tolist() == [
        600
    ]
    assert got[0]["dialogue"]["answers"].tolist() == ["Yes", "N/A"]
    assert got[2]["objects"]["boxes"][3].tolist() == [31.5, 20.0, 30.25, 43.0]
    with UnifiedFile(out) as uf:
        links = uf.links()
        pairs = sorted(zip(links["key_a"], links["key_b"], strict=True))
        report = uf.build_report["guesswhat"]
        assert uf.split("guesswhat", "train").role == "train"
        assert uf.split("guesswhat", "valid").role == "eval"
        assert uf.split("guesswhat", "test").role == "eval"
        assert uf.task_attrs("guesswhat")["metric"] == "guesswhat"
    # Image 50 links once (two games), image 51 has no flickr_url.
    assert pairs == [
        ("coco:12", "flickr:7012"),
        ("coco:13", "flickr:7013"),
        ("coco:50", "flickr:7050"),
    ]
    assert report["flickr_links"] == {"train": 1, "valid": 1, "test": 1}
    assert report["images_without_flickr_id"] == {"train": 1, "valid": 0, "test": 0}
    assert report["status"]["train"] == {"success": 1, "failure": 1, "incomplete": 1}


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    a = write_guesswhat(tmp_path / "a", "train", [_game(1, 11), _game(2, 12)])
    b = write_guesswhat(tmp_path / "b", "train", [_game(1, 11), _game(2, 12)])
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_smoke_mode_takes_the_first_games(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    place(real(*REAL_VALID), d / "guesswhat.valid.jsonl.gz")
    out = tmp_path / "out.h5"
    build(raw, out, "guesswhat", max_examples=2)
    assert [e["id"] for e in examples(out, "guesswhat", "valid")] == [2424, 2441]
    with UnifiedFile(out) as uf:
        sources = {s["path"]: s for s in uf.sources}
    assert sources["guesswhat/guesswhat.valid.jsonl.gz"]["size"] == 7144


def test_missing_file_names_it_and_the_download_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    (d / "guesswhat.test.jsonl.gz").unlink()
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "out.h5", "guesswhat")
    msg = str(err.value)
    assert str(d / "guesswhat.test.jsonl.gz") in msg and GuessWhat.homepage in msg


@pytest.mark.parametrize("damage", ["truncate", "not_gzip", "bad_json"])
def test_damaged_gzip_is_a_malformed_file_error_naming_it(tmp_path: Path, damage: str) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw, valid=[_game(i, 12) for i in range(2, 40)])
    path = d / "guesswhat.valid.jsonl.gz"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not_gzip":
        path.write_bytes(gzip.decompress(data))
    else:
        path.write_bytes(gzip.compress(gzip.decompress(data)[:-30] + b"\n", mtime=0))
    with pytest.raises(MalformedFileError) as err:
        build(raw, tmp_path / "out.h5", "guesswhat")
    assert err.value.path == path
    assert str(err.value).startswith(f"{path}: malformed file")
    assert not (tmp_path / "out.h5").exists()


def _set(game: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    target: object = game
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is KeyError:
        del target[last]  # type: ignore[attr-defined]
    else:
        target[last] = value  # type: ignore[index]


@pytest.mark.parametrize(
    ("where", "value", "field", "detail"),
    [
        ("object_id", 12345, "object_id", "12345 is not among the game's 3 objects"),
        ("status", "won", "status", "expected one of success, failure, incomplete, got 'won'"),
        ("object_id", "301", "object_id", "expected int, got str"),
        ("image.width", 640.0, "image.width", "expected int, got float"),
        ("image.id", KeyError, "image.id", "missing"),
        ("qas.1.answer", None, "qas[1].answer", "expected str, got NoneType"),
        ("qas.0.id", "7", "qas[0].id", "expected int, got str"),
        ("objects.1.bbox", [1, 2, 3], "objects[1].bbox", "expected 4 numbers"),
        ("objects.1.bbox", [1, 2, None, 4], "objects[1].bbox", "expected 4 numbers"),
        ("objects.2.category_id", True, "objects[2].category_id", "expected int, got bool"),
        ("objects.2.category", KeyError, "objects[2].category", "missing"),
        ("objects.2.id", 300, "objects[2].id", "duplicate object id 300"),
    ],
)
def test_bad_game_names_file_id_and_field(
    tmp_path: Path, where: str, value: object, field: str, detail: str
) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw, test=[_game(2, 20), _game(3, 30, target_index=1, n_objects=3)])
    path = d / "guesswhat.test.jsonl.gz"
    games = _lines(path)
    _set(games[1], where, value)
    _rewrite(path, games)
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "guesswhat")
    assert err.value.path == path
    assert err.value.record == 3 and err.value.field == field
    assert detail in str(err.value)


def test_game_without_id_is_named_by_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    path = d / "guesswhat.train.jsonl.gz"
    games = _lines(path)
    del games[0]["id"]
    _rewrite(path, games)
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "guesswhat")
    assert err.value.record == "line 1" and err.value.field == "id"
