"""snli_ve: real lines (re-hosted key spelling), both image spellings, "-" drops, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from evalserver.metrics import snli_ve
from evalserver.metrics.predictions import parse_snli_ve
from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.snli_ve import SnliVe
from unify.errors import MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.snli_ve_format import SnliVePair, write_snli_ve

CODE = {"contradiction": 0, "neutral": 1, "entailment": 2}


def _pair(photo: str, caption: int, kind: str, gold: str | None = None) -> SnliVePair:
    cap = f"{photo}.jpg#{caption}"
    return {
        "flickr_id": photo,
        "pair_id": f"{cap}r1{kind[0]}",
        "caption_id": cap,
        "gold_label": gold or kind,
        "premise": f"Caption {caption} of photo {photo}.",
        "hypothesis": f"A {kind} hypothesis.",
    }


def _tree(raw: Path, **files: list[SnliVePair]) -> Path:
    d = raw / "snli_ve"
    defaults = {
        "train": [_pair("1000092795", 0, "entailment")],
        "dev": [_pair("1001", 1, "neutral")],
        "test": [_pair("1002", 2, "contradiction")],
    }
    for split, pairs in (defaults | files).items():
        write_snli_ve(d, split, pairs)
    return d


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_real_lines_are_stored_exactly(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    src = place(real("snli_ve", "allennlp_fixture", "sample_pairs.jsonl"), d / "snli_ve_test.jsonl")
    out = tmp_path / "out.h5"
    build(raw, out, "snli_ve")
    lines = _lines(src)
    assert len(lines) == 16
    # The allennlp copy spells the image key the re-hosted way, without ".jpg".
    assert all("Flickr30K_ID" in line and "Flikr30kID" not in line for line in lines)
    got = examples(out, "snli_ve", "test")
    assert len(got) == 16  # no "-" gold labels in these lines
    for e, line in zip(got, lines, strict=True):
        assert e["id"] == line["pairID"]
        assert e["image"] == f"flickr:{line['Flickr30K_ID']}"
        assert e["premise"] == line["sentence1"]
        assert e["hypothesis"] == line["sentence2"]
        assert e["caption_id"] == line["captionID"]
        assert e["label"] == CODE[line["gold_label"]]
    assert got[0]["image"] == "flickr:2248275918" and got[0]["label"] == 0
    assert got[5]["label"] == 1  # "#3r1c" whose gold label is neutral: the label wins
    with UnifiedFile(out) as uf:
        attrs = uf.task_attrs("snli_ve")
        assert json.loads(attrs["label_set"]) == ["contradiction", "neutral", "entailment"]
        assert attrs["id_field"] == "pairID" and attrs["task_group"] == "verification"
        assert [uf.split("snli_ve", s).role for s in ("train", "dev", "test")] == [
            "train",
            "eval",
            "eval",
        ]
        report = uf.build_report["snli_ve"]
        sources = {s["path"]: s for s in uf.sources}
    assert report["counts"] == {"train": 1, "dev": 1, "test": 16}
    assert report["dropped_gold_dash"] == {"train": 0, "dev": 0, "test": 0}
    assert report["label_counts"]["test"] == dict(Counter(line["gold_label"] for line in lines))
    assert sources["snli_ve/snli_ve_test.jsonl"]["sha256"].startswith("d9778421")


def test_both_image_spellings_and_dash_drops(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    train = [
        _pair("2248275918", 0, "entailment"),
        _pair("2248275918", 0, "neutral", gold="-"),
        _pair("2248275918", 1, "contradiction"),
        _pair("3000", 0, "contradiction", gold="-"),
        _pair("3000", 1, "neutral"),
    ]
    d = _tree(raw, train=train)
    write_snli_ve(d, "dev", [_pair("2248275918", 4, "entailment")], image_field="Flickr30K_ID")
    first = _lines(d / "snli_ve_train.jsonl")[0]
    assert first["Flikr30kID"] == "2248275918.jpg"  # the release's spelling
    assert list(first) == sorted(first)
    assert list(_lines(d / "snli_ve_dev.jsonl")[0]) == list(
        _lines(real("snli_ve", "allennlp_fixture", "sample_pairs.jsonl"))[0]
    )
    out = tmp_path / "out.h5"
    build(raw, out, "snli_ve")
    got = examples(out, "snli_ve", "train")
    assert [e["id"] for e in got] == [train[i]["pair_id"] for i in (0, 2, 4)]
    assert [e["label"] for e in got] == [2, 0, 1]
    assert [e["image"] for e in got] == ["flickr:2248275918", "flickr:2248275918", "flickr:3000"]
    (dev,) = examples(out, "snli_ve", "dev")
    assert dev["image"] == "flickr:2248275918" and dev["id"] == "2248275918.jpg#4r1e"
    with UnifiedFile(out) as uf:
        report = uf.build_report["snli_ve"]
        assert list(uf.image_keys) == ["flickr:1002", "flickr:2248275918", "flickr:3000"]
    assert report["dropped_gold_dash"] == {"train": 2, "dev": 0, "test": 0}
    assert report["counts"] == {"train": 3, "dev": 1, "test": 1}
    with UnifiedFile(out) as uf:
        # The dropped ids stay on their split (a split array, never a column), so that a
        # prediction for one is refused with the reason; a split without any has no array.
        view = uf.split("snli_ve", "train")
        assert view.arrays == ["dropped_gold_dash"] and "dropped_gold_dash" not in view.fields
        assert list(view.column("dropped_gold_dash")) == [train[i]["pair_id"] for i in (1, 3)]
        assert uf.split("snli_ve", "dev").arrays == []


def test_a_prediction_for_a_dropped_pair_names_it_and_why(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    test = [_pair("1002", 0, "neutral"), _pair("1002", 1, "entailment", gold="-")]
    _tree(raw, test=test)
    out = tmp_path / "out.h5"
    build(raw, out, "snli_ve")
    with UnifiedFile(out) as uf:
        gt = snli_ve.groundtruth(uf, "snli_ve", ("test",))
    assert gt.pair_ids.tolist() == [test[0]["pair_id"]] and gt.dropped_ids == (test[1]["pair_id"],)
    ok = f"{test[0]['pair_id']},neutral\n".encode()
    assert snli_ve.score(gt, parse_snli_ve(ok)).metrics["accuracy"] == 100.0
    extra = ok + f"{test[1]['pair_id']},entailment\n".encode()
    (problem,) = snli_ve.validate(gt, parse_snli_ve(extra))
    assert str(problem).startswith(f'line 2, pairID {test[1]["pair_id"]}: gold label "-"')


def test_the_sample_world_has_no_dash_pairs_like_the_release(tiny_raw: Path) -> None:
    for split in ("train", "dev", "test"):
        lines = _lines(tiny_raw / "snli_ve" / f"snli_ve_{split}.jsonl")
        assert lines and all(line["gold_label"] in CODE for line in lines)


def test_smoke_mode_counts_only_the_first_lines(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    train = [_pair("5", 0, "neutral", gold="-")] + [_pair("5", i, "entailment") for i in (1, 2)]
    _tree(raw, train=train)
    out = tmp_path / "out.h5"
    build(raw, out, "snli_ve", max_examples=2)
    assert [e["id"] for e in examples(out, "snli_ve", "train")] == ["5.jpg#1r1e"]
    with UnifiedFile(out) as uf:
        assert uf.build_report["snli_ve"]["dropped_gold_dash"]["train"] == 1


def test_missing_file_names_it_and_the_download_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    (d / "snli_ve_dev.jsonl").unlink()
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "out.h5", "snli_ve")
    assert str(d / "snli_ve_dev.jsonl") in str(err.value) and SnliVe.homepage in str(err.value)


def test_malformed_line_names_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    path = d / "snli_ve_test.jsonl"
    path.write_text(path.read_text() + '{"pairID": "x"\n')
    with pytest.raises(MalformedFileError) as err:
        build(raw, tmp_path / "out.h5", "snli_ve")
    assert err.value.path == path and "line 2" in str(err.value)


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"gold_label": "contradicton"}, "gold_label", "expected one of contradiction, neutral"),
        ({"gold_label": None}, "gold_label", "expected str, got NoneType"),
        ({"Flikr30kID": "photo.png"}, "Flikr30kID", "like 2248275918.jpg, got 'photo.png'"),
        ({"Flikr30kID": 1002}, "Flikr30kID", "expected str, got int"),
        ({"Flikr30kID": None}, "Flikr30kID", "missing (nor 'Flickr30K_ID')"),
        ({"sentence2": 3}, "sentence2", "expected str, got int"),
        ({"captionID": None}, "captionID", "expected str, got NoneType"),
    ],
)
def test_bad_record_names_file_id_and_field(
    tmp_path: Path, change: dict, field: str, detail: str
) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw, test=[_pair("1002", 0, "neutral"), _pair("1002", 1, "entailment")])
    path = d / "snli_ve_test.jsonl"
    lines = _lines(path)
    lines[1].update(change)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "snli_ve")
    assert err.value.path == path
    assert err.value.record == "1002.jpg#1r1e" and err.value.field == field
    assert detail in str(err.value)


def test_record_without_pair_id_is_named_by_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    path = d / "snli_ve_dev.jsonl"
    (line,) = _lines(path)
    del line["pairID"]
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "snli_ve")
    assert err.value.record == "line 1" and err.value.field == "pairID"
