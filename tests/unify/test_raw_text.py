"""Text the unified file cannot store (a NUL character, a lone surrogate), on every raw parsing
path: one line naming file, record and field, exit 1, nothing written.

Before: HDF5 refused NUL with a traceback; a lone surrogate was rejected by orjson without a
record ("malformed file at byte N"), crashed ijson (a low surrogate) or was silently stored as
"?" by it (a high one), and crashed the HDF5 writer when it came from a pickle.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import h5py
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unify import leakage_trees as trees
from tests.unify.refusals import accept, edit_json, edit_jsonl, names, refuse
from unify.rawio import _EscapeScanner, find_text_fault, unstorable
from unify.sample.refer_format import ref_record, write_instances, write_refer

BAD = {
    "nul": ("a\x00b", "a NUL character (\\u0000)"),
    "high": ("a\ud800b", "a lone surrogate (\\ud800)"),
    "low": ("a\udc00b", "a lone surrogate (\\udc00)"),
}


@pytest.fixture(params=sorted(BAD))
def bad(request: pytest.FixtureRequest) -> tuple[str, str]:
    return BAD[request.param]


def test_whole_file_json(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = tmp_path / "raw"
    trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
    path = raw / "vqa2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    edit_json(path, lambda d: d["questions"][1].update(question=bad[0]))
    names(refuse(raw, "vqa2"), path, "4 (questions[1])", "question", bad[1], "cannot store")


def test_whole_file_json_nested_field(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = tmp_path / "raw"
    trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
    path = raw / "vqa2" / "v2_mscoco_train2014_annotations.json"
    edit_json(path, lambda d: d["annotations"][1]["answers"][7].update(answer=bad[0]))
    names(refuse(raw, "vqa2"), path, "2 (annotations[1])", "answers[7].answer", bad[1])


def test_streamed_json(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = tmp_path / "raw"
    trees.gqa(raw, [("01", "1"), ("2", "2")], [("3", "3")], [("4", "4"), ("5", "n5")])
    path = raw / "gqa" / "val_balanced_questions.json"
    edit_json(path, lambda d: d["3"]["types"].update(detailed=bad[0]))
    names(refuse(raw, "gqa"), path, "3", "types.detailed", bad[1])


def test_streamed_json_past_the_first_megabyte(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    train = [(str(10_000 + k), str(k % 50 + 1)) for k in range(6000)]
    trees.gqa(raw, train, [("3", "3")], [("4", "4")])
    path = raw / "gqa" / "train_balanced_questions.json"
    edit_json(path, lambda d: d["15990"].update(question="Is it\udc80?"))
    assert path.stat().st_size > 1 << 20
    names(refuse(raw, "gqa"), path, "15990", "question", "a lone surrogate (\\udc80)")


def test_json_lines(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = tmp_path / "raw"
    trees.nlvr2(raw, ["train-1-0-0", "train-1-1-0"], ["dev-2-0-0"], ["test1-3-0-0"])
    path = raw / "nlvr2" / "train.json"
    edit_jsonl(path, 2, lambda r: r.update(sentence=bad[0]))
    names(refuse(raw, "nlvr2"), path, "train-1-1-0 (line 2)", "sentence", bad[1])


def test_gzip_json_lines(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = tmp_path / "raw"
    trees.guesswhat(raw, [(1, 100, None)], [(2, 101, None)], [(3, 102, None)])
    path = raw / "guesswhat" / "guesswhat.valid.jsonl.gz"
    edit_jsonl(path, 1, lambda g: g["qas"][0].update(answer=bad[0]))
    names(refuse(raw, "guesswhat"), path, "2 (line 1)", "qas[0].answer", bad[1])


def _refs(sent: str) -> list[dict[str, Any]]:
    return [
        {
            "ref_id": 0,
            "ann_id": 11,
            "image_id": 100,
            "category_id": 1,
            "split": "train",
            "sentences": [{"sent_id": 10, "sent": "man"}, {"sent_id": 11, "sent": sent}],
        }
    ]


def _refer_tree(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    write_instances(
        raw / "refcoco",
        [{"id": 100, "width": 640, "height": 480}],
        [{"id": 11, "image_id": 100, "category_id": 1, "bbox": [1, 2, 3, 4]}],
    )
    return raw


def test_pickle(tmp_path: Path, bad: tuple[str, str]) -> None:
    raw = _refer_tree(tmp_path)
    path = raw / "refcoco" / "refs(unc).p"
    # The standard pickler writes any str (surrogates too) as BINUNICODE, like Python 2.
    path.write_bytes(pickle.dumps([ref_record(r) for r in _refs(bad[0])], protocol=2))
    names(refuse(raw, "refcoco"), path, 11, "sent", bad[1])


def test_pickle_of_python2_byte_strings(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_refer(
        raw / "refcoco",
        "refs(unc).p",
        _refs("caf\u00e9 \x00"),
        [{"id": 100, "width": 640, "height": 480}],
        [{"id": 11, "image_id": 100, "category_id": 1, "bbox": [1, 2, 3, 4]}],
        py2_strings=True,
    )
    names(refuse(raw, "refcoco"), raw / "refcoco" / "refs(unc).p", 11, "sent", "NUL")


def test_a_field_no_converter_reads_is_refused_too(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
    path = raw / "vqa2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    edit_json(path, lambda d: d.update(info={"description": "bad \x00"}))
    names(refuse(raw, "vqa2"), path, "info", "description", "NUL")


def test_escaped_backslash_and_surrogate_pairs_are_text(tmp_path: Path) -> None:
    """No false alarm: the text \\u0000 (an escaped backslash) and an emoji (a pair)."""
    raw = tmp_path / "raw"
    trees.nlvr2(raw, ["train-1-0-0", "train-1-1-0"], ["dev-2-0-0"], ["test1-3-0-0"])
    path = raw / "nlvr2" / "train.json"
    edit_jsonl(path, 1, lambda r: r.update(sentence="\\u0000 and \U0001f600"))
    out = accept(raw, "nlvr2")
    with h5py.File(out) as f:
        assert f["tasks/nlvr2/train/sentence"][0].decode() == "\\u0000 and \U0001f600"


# ------------------------------------------------------------------- the scanner, exhaustively

PIECES = ["a", "é", "\\", '"', "\x00", "\ud800", "\udc00", "\U0001f600", "u0000", "\\u", "[{"]


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.lists(st.sampled_from(PIECES), max_size=6).map("".join), max_size=4),
    ascii_only=st.booleans(),
    step=st.integers(1, 17),
)
def test_escape_scan_agrees_with_a_full_parse(
    texts: list[str], ascii_only: bool, step: int
) -> None:
    """Whole or fed in chunks of any size, the byte scan finds an unstorable string exactly
    when the standard library's parse of the text holds one."""
    doc = json.dumps({"k": texts}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    parsed = json.loads(doc)["k"]
    truth = any(unstorable(t) for t in parsed)
    if truth and not ascii_only:
        return  # a raw surrogate is invalid UTF-8: the parser's own error, not an escape
    assert (find_text_fault(doc) is not None) == truth
    scanner = _EscapeScanner()
    found = None
    for start in range(0, len(doc), step):
        found = found or scanner.feed(doc[start : start + step])
    found = found or scanner.feed(b"", final=True)
    assert (found is not None) == truth


def test_invalid_utf8_is_reported_at_its_byte(tmp_path: Path) -> None:
    """orjson says "at byte 0" for invalid UTF-8 wherever it is; the message gives the real
    offset of the first bad byte."""
    from unify.errors import MalformedFileError
    from unify.rawio import loads_json

    data = b'{"questions": [{"question": "ok"}, {"question": "bad \xff\xfe here"}]}'
    with pytest.raises(MalformedFileError) as caught:
        loads_json(data, tmp_path / "q.json")
    bad = data.index(b"\xff")
    assert caught.value.position == bad
    assert f"at byte {bad}:" in str(caught.value)


def test_a_huge_value_is_not_quoted_in_full() -> None:
    """A hostile 8,000-character value makes a message of bounded length that still names
    the file, record and field."""
    from unify.errors import RecordError

    err = RecordError("raw/snli_ve/x.jsonl", "r" * 5000, "Flikr30kID", "got " + "x" * 8000)
    text = str(err)
    assert len(text) < 700
    assert text.startswith("raw/snli_ve/x.jsonl: record rrr")
    assert "field 'Flikr30kID'" in text and "(8004 characters)" in text
