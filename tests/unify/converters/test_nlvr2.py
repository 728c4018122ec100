"""nlvr2: real release lines, image pairs, the consistency key, optional test2, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import place, real
from tests.unify.helpers import build, examples
from unify.converters.nlvr2 import Nlvr2
from unify.errors import DataError, MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile
from unify.sample.nlvr2_format import Nlvr2Example, write_nlvr2


def _ex(identifier: str, label: bool | str = True, sentence: str = "") -> Nlvr2Example:
    return {"identifier": identifier, "sentence": sentence or f"s {identifier}", "label": label}


def _tree(raw: Path, **files: list[Nlvr2Example]) -> Path:
    """Writer-made train/dev/test1 (defaults: one example each), plus ``files``."""
    d = raw / "nlvr2"
    defaults = {
        "train": [_ex("train-1-0-0")],
        "dev": [_ex("dev-1-0-0")],
        "test1": [_ex("test1-1-0-0")],
    }
    for split, exs in (defaults | files).items():
        write_nlvr2(d, split, exs)
    return d


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_real_lines_are_stored_exactly(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    test1 = place(real("nlvr2", "test1.json"), d / "test1.json")
    dev = place(real("nlvr2", "allennlp_fixture", "tiny-dev.json"), d / "dev.json")
    out = tmp_path / "out.h5"
    build(raw, out, "nlvr2")
    for split, path, count in (("test1", test1, 200), ("dev", dev, 8)):
        lines = _lines(path)
        got = examples(out, "nlvr2", split)
        assert len(lines) == len(got) == count
        for e, line in zip(got, lines, strict=True):
            ident = line["identifier"]
            split_name, set_id, pair, sent = ident.split("-")
            assert split_name == split
            assert e["id"] == ident
            assert e["sentence"] == line["sentence"]
            assert e["label"] == {"True": 1, "False": 0}[line["label"]]
            stem = f"{split_name}-{set_id}-{pair}"
            assert e["image"] == [f"nlvr2:{stem}-img0", f"nlvr2:{stem}-img1"]
            assert e["sentence_key"] == f"{split_name}-{set_id}--{sent}"
        # The key groups exactly the pairs that share a sentence (in these real lines).
        by_key: dict[str, set[str]] = {}
        for e in got:
            by_key.setdefault(e["sentence_key"], set()).add(e["sentence"])
        assert all(len(s) == 1 for s in by_key.values())
        assert len(by_key) == len({(line["sentence"], line["writer"]) for line in lines})
    first = examples(out, "nlvr2", "dev")[0]
    assert first["id"] == "dev-850-0-0" and first["sentence_key"] == "dev-850--0"
    assert first["label"] == 0  # "False" in the release
    with UnifiedFile(out) as uf:
        assert uf.splits("nlvr2") == ["train", "dev", "test1"]  # test2.json absent
        assert uf.split("nlvr2", "train").role == "train"
        assert uf.split("nlvr2", "test1").role == "eval"
        assert uf.split("nlvr2", "test1").column("image").shape == (200, 2)
        attrs = uf.task_attrs("nlvr2")
        assert json.loads(attrs["label_set"]) == ["False", "True"]
        assert attrs["task_group"] == "verification" and attrs["metric"] == "nlvr2"
        keys = set(uf.image_keys)
        assert "nlvr2:test1-0-1-img0" in keys and "nlvr2:test1-0-1-img1" in keys
        assert (uf.h5["images"]["width"][:] == -1).all()  # the release states no sizes
        sources = {s["path"]: s for s in uf.sources}
        assert sources["nlvr2/test1.json"]["size"] == 110140
        assert (
            sources["nlvr2/test1.json"]["sha256"]
            == "ba4fbe54ead4b43533757b3d8a9da2bc09277c1954a48090a2b64277dd3f838e"
        )
        report = uf.build_report["nlvr2"]
    assert report["counts"] == {"train": 1, "dev": 8, "test1": 200}
    assert report["test2_file"] == "absent"
    assert report["true_labels"]["test1"] == sum(line["label"] == "True" for line in _lines(test1))


def test_writer_round_trip_and_optional_test2(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    train = [_ex("train-10-3-1", False), _ex("train-10-2-1", True), _ex("train-7-0-0", True)]
    _tree(raw, train=train, test2=[_ex("test2-189-0-0", False), _ex("test2-189-1-0")])
    # Lines are laid out as the release's: json.dumps separators, release key order.
    line = (raw / "nlvr2" / "train.json").read_text().splitlines()[0]
    assert line.startswith('{"validation": {"0": "False"}, "sentence": "s train-10-3-1", ')
    assert list(json.loads(line)) == list(_lines(real("nlvr2", "test1.json"))[0])
    out = tmp_path / "out.h5"
    build(raw, out, "nlvr2")
    got = examples(out, "nlvr2", "train")
    assert [e["id"] for e in got] == ["train-10-3-1", "train-10-2-1", "train-7-0-0"]
    assert [e["label"] for e in got] == [0, 1, 1]
    assert [e["sentence_key"] for e in got] == ["train-10--1", "train-10--1", "train-7--0"]
    assert got[1]["image"] == ["nlvr2:train-10-2-img0", "nlvr2:train-10-2-img1"]
    test2 = examples(out, "nlvr2", "test2")
    assert [(e["id"], e["label"]) for e in test2] == [("test2-189-0-0", 0), ("test2-189-1-0", 1)]
    with UnifiedFile(out) as uf:
        assert uf.split("nlvr2", "test2").role == "eval"
        assert "test2_file" not in uf.build_report["nlvr2"]


def test_smoke_mode_takes_the_first_lines_and_still_hashes_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    place(real("nlvr2", "test1.json"), d / "test1.json")
    out = tmp_path / "out.h5"
    build(raw, out, "nlvr2", max_examples=3)
    ids = [e["id"] for e in examples(out, "nlvr2", "test1")]
    assert ids == ["test1-0-1-0", "test1-0-0-0", "test1-0-3-0"]
    with UnifiedFile(out) as uf:
        sources = {s["path"]: s for s in uf.sources}
    assert sources["nlvr2/test1.json"]["sha256"].startswith("ba4fbe54")


def test_missing_required_file_names_it_and_the_download_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    (d / "dev.json").unlink()
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "out.h5", "nlvr2")
    msg = str(err.value)
    assert str(d / "dev.json") in msg and Nlvr2.homepage in msg
    assert "test2.json" not in msg


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw, dev=[_ex("dev-1-0-0"), _ex("dev-1-1-0")])
    path = d / "dev.json"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    with pytest.raises(MalformedFileError) as err:
        build(raw, tmp_path / "out.h5", "nlvr2")
    assert err.value.path == path and "line 2" in str(err.value)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize(
    ("identifier", "label", "field", "detail"),
    [
        ("dev-4-1-0", "true", "label", "expected 'True' or 'False', got 'true'"),
        ("dev-4-1-0", True, "label", "expected 'True' or 'False', got True"),
        ("dev-4-1-0", None, "label", "expected 'True' or 'False', got None"),
        ("dev-4-1", "True", "identifier", "expected split-set-pair-sentence"),
        ("dev-4-x-0", "True", "identifier", "expected split-set-pair-sentence"),
        ("val-4-1-0", "True", "identifier", "unknown split 'val' (known: train, dev, test1"),
        ("train-4-1-0", "True", "identifier", "split 'train' in a record of dev.json"),
    ],
)
def test_bad_record_names_file_id_and_field(
    tmp_path: Path, identifier: str, label: object, field: str, detail: str
) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw, dev=[_ex("dev-4-0-0"), _ex("dev-4-1-1")])
    path = d / "dev.json"
    lines = _lines(path)
    lines[1].update(identifier=identifier, label=label)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "nlvr2")
    assert err.value.path == path
    assert err.value.record == identifier and err.value.field == field
    assert detail in str(err.value)


def test_record_without_identifier_is_named_by_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    path = d / "test1.json"
    path.write_text(path.read_text() + json.dumps({"sentence": "x", "label": "True"}) + "\n")
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "out.h5", "nlvr2")
    assert err.value.record == "line 2" and err.value.field == "identifier"
    assert "missing" in str(err.value)


def test_non_string_sentence_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    d = _tree(raw)
    path = d / "train.json"
    (line,) = _lines(path)
    line["sentence"] = ["not", "text"]
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(RecordError, match=r"train\.json: record train-1-0-0: field 'sentence'"):
        build(raw, tmp_path / "out.h5", "nlvr2")


def test_an_empty_optional_file_is_refused_not_an_empty_split(tmp_path: Path) -> None:
    """test2.json is optional: it may be absent, but a present empty one is a failed download
    (found by the long fuzz run), never a silently empty split."""
    _tree(tmp_path / "raw", test2=[])
    with pytest.raises(DataError, match=r"nlvr2/test2\.json: holds no examples"):
        build(tmp_path / "raw", tmp_path / "out.h5", "nlvr2")
    assert not (tmp_path / "out.h5").exists()
