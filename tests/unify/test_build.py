"""The build: missing files, malformed input, atomic output, smoke mode, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.unify.helpers import build
from unify.build import BuildOptions, fingerprint, recompute_fingerprint, run_build
from unify.converters.vgqa import Vgqa
from unify.errors import DataError, MalformedFileError, MissingRawFilesError, RecordError
from unify.reader import UnifiedFile


@pytest.fixture
def raw(tiny_raw: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny raw tree that a test may damage."""
    dest = tmp_path / "raw"
    shutil.copytree(tiny_raw, dest)
    return dest


def test_missing_files_are_listed_with_where_to_download(raw: Path, tmp_path: Path) -> None:
    (raw / "vqa2" / "v2_mscoco_val2014_annotations.json").unlink()
    shutil.rmtree(raw / "vgqa")
    with pytest.raises(MissingRawFilesError) as err:
        build(raw, tmp_path / "o.h5", "vqa2", "gqa", "vgqa")
    msg = str(err.value)
    assert str(raw / "vqa2" / "v2_mscoco_val2014_annotations.json") in msg
    assert str(raw / "vgqa" / "question_answers.json") in msg
    assert str(raw / "vgqa" / "image_data.json") in msg
    assert "https://visualqa.org/download.html" in msg and Vgqa.homepage in msg
    assert "v2_OpenEnded_mscoco_test2015" not in msg  # optional files are not required


def test_malformed_json_names_file_and_byte_position(raw: Path, tmp_path: Path) -> None:
    path = raw / "vqa2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    data = path.read_bytes()
    at = data.index(b'"questions": [') + len(b'"questions": [')
    path.write_bytes(data[:at] + b"}" + data[at:])
    with pytest.raises(MalformedFileError) as err:
        build(raw, tmp_path / "o.h5", "vqa2")
    assert err.value.path == path
    assert err.value.position == at
    assert f"{path}: malformed file at byte {err.value.position}" in str(err.value)


def test_truncated_streamed_json_names_the_file(raw: Path, tmp_path: Path) -> None:
    path = raw / "gqa" / "val_balanced_questions.json"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(MalformedFileError, match=r"val_balanced_questions\.json: malformed file"):
        build(raw, tmp_path / "o.h5", "gqa")


def test_wrong_type_names_record_and_field(raw: Path, tmp_path: Path) -> None:
    path = raw / "vgqa" / "question_answers.json"
    doc = json.loads(path.read_text())
    doc[3]["qas"][1]["answer"] = ["not", "a", "string"]
    bad_id = doc[3]["qas"][1]["qa_id"]
    path.write_text(json.dumps(doc))
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "o.h5", "vgqa")
    assert err.value.record == bad_id and err.value.field == "answer"
    assert "expected str, got list" in str(err.value)


def test_failure_mid_build_leaves_no_file_and_keeps_the_old_one(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    out.write_bytes(b"previous build")
    # vqa2 and gqa convert fine; vgqa (last) fails.
    (raw / "vgqa" / "question_answers.json").write_text('[{"id": 1, "qas": 5}]')
    with pytest.raises(DataError):
        build(raw, out, "vqa2", "gqa", "vgqa")
    assert out.read_bytes() == b"previous build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5", "raw"]  # no temp file left


def test_interrupt_during_write_leaves_nothing(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import unify.writer as writer

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(raw, tmp_path / "o.h5", "vqa2")
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_duplicate_ids_are_rejected(raw: Path, tmp_path: Path) -> None:
    path = raw / "vqa2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    doc = json.loads(path.read_text())
    doc["questions"][1]["question_id"] = doc["questions"][0]["question_id"]
    path.write_text(json.dumps(doc))
    ann = raw / "vqa2" / "v2_mscoco_train2014_annotations.json"
    adoc = json.loads(ann.read_text())
    adoc["annotations"][1]["question_id"] = adoc["annotations"][0]["question_id"]
    ann.write_text(json.dumps(adoc))
    # The question file's own rule names file, record and field (it used to be caught only
    # per split, as "vqa2/trainval: duplicate example ids").
    with pytest.raises(RecordError) as err:
        build(raw, tmp_path / "o.h5", "vqa2", max_examples=50)
    assert err.value.path == path and err.value.field == "question_id"
    assert err.value.record == doc["questions"][0]["question_id"]
    assert "duplicate question id" in str(err.value)


def test_smoke_mode_takes_first_records_before_split_rules(tiny_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    build(tiny_raw, out, "vqa2", "gqa", "vgqa", max_examples=20)
    qs = json.loads((tiny_raw / "vqa2" / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    with UnifiedFile(out) as uf:
        assert uf.build_options["max_examples"] == 20
        # 20 val questions < 3,000: all are minval; the first 20 in release order.
        assert list(uf.split("vqa2", "minval").column("id")) == [
            q["question_id"] for q in qs["questions"][:20]
        ]
        assert uf.split("vqa2", "trainval").num_examples == 20
        assert uf.split("gqa", "minval").num_examples == 20
        assert uf.split("vgqa", "val").num_examples == 20
        # Sources are hashed in full even when only 20 records were read.
        src = {s["path"]: s for s in uf.sources}
        gqa_val = tiny_raw / "gqa" / "val_balanced_questions.json"
        assert src["gqa/val_balanced_questions.json"]["size"] == gqa_val.stat().st_size


def _content(path: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    with h5py.File(path) as f:
        # Only the creation time and the phase timings may differ between two builds.
        out["/"] = {k: v for k, v in f.attrs.items() if k not in ("created", "build_report")}
        report = json.loads(f.attrs["build_report"])
        report.pop("timings")
        out["/build_report"] = report

        def visit(name: str, obj: object) -> None:
            attrs = dict(obj.attrs)  # type: ignore[attr-defined]
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj[()].tobytes() if obj.dtype.kind != "O" else list(obj[()]), attrs)
            else:
                out[name] = attrs

        f.visititems(visit)
    return out


def test_same_inputs_give_the_same_content(tiny_raw: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    opts = BuildOptions(tasks=("vqa2", "gqa", "vgqa"), all=True)
    run_build(tiny_raw, a, opts)
    run_build(tiny_raw, b, opts)
    ca, cb = _content(a), _content(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        assert str(ca[key]) == str(cb[key]), key


def test_images_are_sorted_unique_and_indexed(tiny_h5: Path, tiny_raw: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        keys = uf.image_keys
        assert list(keys) == sorted(set(keys))
        for task in uf.tasks:
            for split in uf.splits(task):
                idx = uf.split(task, split).column("image")
                assert idx.dtype == np.int32 and idx.min() >= 0 and idx.max() < len(keys)
        assert uf.image_index(str(keys[7])) == 7
        # Sizes come from the raw records that state them (VG image_data.json, COCO image
        # records); images no raw file describes (test2015, NLVR2) stay -1.
        widths = dict(zip(keys, uf.h5["images"]["width"][:], strict=True))
    caps = json.loads((tiny_raw / "coco_retrieval" / "captions_train2014.json").read_text())
    for img in caps["images"][:50]:
        assert widths[f"coco:{img['id']}"] == img["width"]
    vg = json.loads((tiny_raw / "vgqa" / "image_data.json").read_text())
    for img in vg[:50]:
        assert widths[f"vg:{img['image_id']}"] == img["width"]
    assert all(w == -1 for k, w in widths.items() if k.startswith("nlvr2:"))


# --------------------------------------------------------------------------- fingerprint


def _fingerprint(path: Path) -> str:
    with UnifiedFile(path) as uf:
        return str(uf.h5.attrs["fingerprint"])


@pytest.fixture
def snli_raw(tiny_raw: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny sample's snli_ve folder (small and quick to build)."""
    dest = tmp_path / "raw_a"
    shutil.copytree(tiny_raw / "snli_ve", dest / "snli_ve")
    return dest


def test_fingerprint_same_inputs_from_another_folder(snli_raw: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "raw_b"
    shutil.copytree(snli_raw, other)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    build(snli_raw, a, "snli_ve")
    build(other, b, "snli_ve")
    fp = _fingerprint(a)
    assert len(fp) == 64 and int(fp, 16) >= 0  # hex sha256
    assert _fingerprint(b) == fp
    with UnifiedFile(a) as uf:
        # Recomputable from what the file records: sources, options, converters, schema.
        assert recompute_fingerprint(uf) == fp


def test_fingerprint_changes_with_a_raw_byte(snli_raw: Path, tmp_path: Path) -> None:
    build(snli_raw, tmp_path / "a.h5", "snli_ve")
    path = snli_raw / "snli_ve" / "snli_ve_dev.jsonl"
    data = path.read_bytes()
    # One byte of a hypothesis: a different benchmark even if every count stays the same.
    at = data.index(b'"sentence2": "') + len(b'"sentence2": "')
    path.write_bytes(data[:at] + (b"X" if data[at : at + 1] != b"X" else b"Y") + data[at + 1 :])
    build(snli_raw, tmp_path / "b.h5", "snli_ve")
    assert _fingerprint(tmp_path / "a.h5") != _fingerprint(tmp_path / "b.h5")


def test_fingerprint_changes_with_an_option(snli_raw: Path, tmp_path: Path) -> None:
    build(snli_raw, tmp_path / "a.h5", "snli_ve")
    build(snli_raw, tmp_path / "b.h5", "snli_ve", max_examples=10**9)  # same content
    build(snli_raw, tmp_path / "c.h5", "snli_ve", clean=True)
    prints = {_fingerprint(tmp_path / f"{n}.h5") for n in "abc"}
    assert len(prints) == 3


def test_fingerprint_changes_with_a_converter_version(
    snli_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unify.converters.snli_ve import SnliVe

    build(snli_raw, tmp_path / "a.h5", "snli_ve")
    monkeypatch.setattr(SnliVe, "version", SnliVe.version + "-patched")
    build(snli_raw, tmp_path / "b.h5", "snli_ve")
    assert _fingerprint(tmp_path / "a.h5") != _fingerprint(tmp_path / "b.h5")


def test_fingerprint_covers_the_schema_version_and_nothing_volatile() -> None:
    sources = [{"path": "b/x.json", "sha256": "1" * 64, "size": 3, "task": "b"}]
    sources.append({"path": "a/y.json", "sha256": "2" * 64, "size": 5, "task": "a"})
    opts = {"tasks": ["a", "b"], "clean": True}
    base = fingerprint(sources, opts, {"a": "1.0.0", "b": "1.0.0"}, "1.1")
    # "all" only spells the task list: --all and naming every task are one benchmark.
    assert fingerprint(sources, opts | {"all": True}, {"a": "1.0.0", "b": "1.0.0"}, "1.1") == base
    assert fingerprint(sources[::-1], opts, {"b": "1.0.0", "a": "1.0.0"}, "1.1") == base
    assert fingerprint(sources, opts, {"a": "1.0.0", "b": "1.0.0"}, "1.2") != base
    renamed = [dict(sources[0], path="b/z.json"), sources[1]]
    assert fingerprint(renamed, opts, {"a": "1.0.0", "b": "1.0.0"}, "1.1") != base
