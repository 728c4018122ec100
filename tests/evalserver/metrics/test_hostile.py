"""Hostile and corrupted prediction files: a report naming the problem, never a traceback,
a crash or silent acceptance; bounded memory (docs/metrics.md "Limits").

Each case is a file built from a valid submission of the tiny sample (or from nothing) and
the text that must appear in the report; ``CASES`` runs through ``validate_file`` here and
through ``evalserver score`` in tests/evalserver/test_cli.py.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest

from evalserver.metrics import load_groundtruth, validate_file
from evalserver.metrics import predictions as P
from evalserver.metrics.chance import chance_submission
from evalserver.metrics.limits import Limits, parse_size
from evalserver.metrics.predictions import ValidationError
from tests.evalserver import hostile as H


@dataclass(frozen=True)
class Case:
    """``build(valid submission, tiny_h5 path, tmp folder) -> file content``; ``expect``:
    texts that must all appear in the listed problems."""

    name: str
    task: str
    build: Callable[[bytes, Path, Path], bytes]
    expect: tuple[str, ...]


def _first_id(submission: bytes, field: str) -> object:
    return orjson.loads(submission)[0][field]


def _replace_first_id(submission: bytes, field: str, literal: bytes) -> bytes:
    """The submission with its first record's id written as ``literal`` (raw JSON)."""
    old = orjson.dumps({field: _first_id(submission, field)})[1:-1]
    return submission.replace(old, f'"{field}":'.encode() + literal, 1)


def _nul_suffixed_json(sub: bytes, h5: Path, tmp: Path) -> bytes:
    records = orjson.loads(sub)
    records[0]["questionId"] += "\u0000"  # "123\0" is not 123
    return orjson.dumps(records)


def _nul_suffixed_csv(sub: bytes, h5: Path, tmp: Path) -> bytes:
    first, rest = sub.split(b"\n", 1)
    identifier, label = first.split(b",")
    return identifier + b"\x00," + label + b"\n" + rest


def _separator_in_csv_id(sub: bytes, h5: Path, tmp: Path) -> bytes:
    first, rest = sub.split(b"\n", 1)
    identifier, label = first.split(b",")
    return identifier + b"\x1c," + label + b"\n" + rest


def _invalid_utf8_middle(sub: bytes, h5: Path, tmp: Path) -> bytes:
    return sub[:5000] + b"\xc3(" + sub[5000:]


def _invalid_utf8_csv(sub: bytes, h5: Path, tmp: Path) -> bytes:
    lines = sub.split(b"\n")
    lines[3] = lines[3].replace(b",", b"\xff,", 1)
    return b"\n".join(lines)


def _surrogate(escape: bytes) -> Callable[[bytes, Path, Path], bytes]:
    def build(sub: bytes, h5: Path, tmp: Path) -> bytes:
        records = orjson.loads(sub)
        records[2]["prediction"] = "PLACEHOLDER"
        return orjson.dumps(records).replace(b'"PLACEHOLDER"', escape)

    return build


def _retrieval_npz(sub: bytes, **replace: np.ndarray) -> bytes:
    arrays = dict(np.load(io.BytesIO(sub)))
    arrays |= replace
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _uint64_wrapping_ids(sub: bytes, h5: Path, tmp: Path) -> bytes:
    ids = np.load(io.BytesIO(sub))["caption_ids"].astype(np.uint64)
    return _retrieval_npz(sub, caption_ids=ids + np.uint64(2**64 - 2**40))


def _npz_rows_100x(sub: bytes, h5: Path, tmp: Path) -> bytes:
    arrays = np.load(io.BytesIO(sub))
    n, images = len(arrays["caption_ids"]) * 100, arrays["image_ids"]
    return _retrieval_npz(
        sub, scores=np.zeros((n, len(images)), np.float32), caption_ids=np.arange(n)
    )


CASES: list[Case] = [
    Case(
        "gzip bomb",
        "vqa2",
        lambda sub, h5, tmp: H.zeros_gzip(256 << 20),
        ("the decompressed file is larger than", "Limits.max_expansion", "compression bomb"),
    ),
    Case(
        "gzip with thousands of empty members",
        "vqa2",
        lambda sub, h5, tmp: H.gzip_members(50_000),
        ("concatenated gzip members",),
    ),
    Case(
        "npz bomb (declared 3 GiB)",
        "coco_retrieval",
        lambda sub, h5, tmp: H.npz_declaring(3 << 30),
        ("the .npz declares 3.0 GiB of arrays", "Limits.max_decompressed_bytes"),
    ),
    Case(
        "npz bomb (1.1 GiB of deflated zeros)",
        "coco_retrieval",
        lambda sub, h5, tmp: H.npz_zeros_bomb(1100 << 20),
        ("the .npz declares 1.1 GiB of arrays", "nothing was decompressed"),
    ),
    Case(
        "npz header declaring a huge shape",
        "coco_retrieval",
        lambda sub, h5, tmp: H.npz_huge_shape(),
        ("scores: the .npy header declares shape (1000000, 1000000) of float64",),
    ),
    Case(
        "npz object dtype (a pickle)",
        "coco_retrieval",
        lambda sub, h5, tmp: H.npz_object(str(tmp / "tripwire")),
        ("scores: dtype object holds Python objects (a pickle), which are never loaded",),
    ),
    Case(
        "npz uint64 ids beyond 2**63",
        "coco_retrieval",
        _uint64_wrapping_ids,
        ("caption_ids index 0: caption_ids must be integers from -2**63 to 2**63-1, got 1844",),
    ),
    Case(
        "npz with 100x more rows than captions",
        "coco_retrieval",
        _npz_rows_100x,
        ("caption_ids: holds ", "00 ids, but the ground truth has far fewer", "not read"),
    ),
    Case(
        "deep nesting (100,000 levels)",
        "vqa2",
        lambda sub, h5, tmp: H.deep_json(100_000),
        ("record 1: JSON nested deeper than 32 levels at byte 32", "Limits.max_depth"),
    ),
    Case(
        "deep nesting inside a record (100 levels: under orjson's own limit)",
        "vqa2",
        lambda sub, h5, tmp: H.deep_record(100),
        ("record 1: JSON nested deeper than 32 levels",),
    ),
    Case(
        "NUL-suffixed string id (JSON)",
        "gqa",
        _nul_suffixed_json,
        ("record 1: questionId holds the control character U+0000 at character 3",),
    ),
    Case(
        "NUL-suffixed string id (CSV)",
        "nlvr2",
        _nul_suffixed_csv,
        ("line 1: identifier holds the control character U+0000",),
    ),
    Case(
        "a record separator inside a CSV id (not a line break)",
        "nlvr2",
        _separator_in_csv_id,
        ("line 1: identifier holds the control character U+001C",),
    ),
    Case(
        "integer id beyond 2**63 (a JSON parser reads it as a float)",
        "vqa2",
        lambda sub, h5, tmp: _replace_first_id(sub, "question_id", b"1180591620717411303424"),
        (
            "record 1: question_id must be an integer from -2**63 to 2**63-1, "
            "got 1180591620717411303424",
        ),
    ),
    Case(
        "float id beyond 2**53 (2**70 as 1.1805916207174113e+21)",
        "vqa2",
        lambda sub, h5, tmp: _replace_first_id(sub, "question_id", b"1.1805916207174113e+21"),
        (
            "record 1: question_id must be an integer, got float 1.1805916207174113e+21 "
            "(beyond 2**53 a float cannot tell neighbouring integers apart)",
        ),
    ),
    Case(
        "a real id written as a float is not matched",
        "vqa2",
        lambda sub, h5, tmp: _replace_first_id(
            sub, "question_id", f"{_first_id(sub, 'question_id')}.0".encode()
        ),
        ("record 1: question_id must be an integer, got float", "no prediction for this"),
    ),
    Case(
        "a boolean id is not an integer",
        "visual7w",
        lambda sub, h5, tmp: _replace_first_id(sub, "qa_id", b"true"),
        ("record 1: qa_id must be an integer, got boolean True",),
    ),
    Case(
        "invalid UTF-8 in the middle (JSON)",
        "vqa2",
        _invalid_utf8_middle,
        ("not UTF-8 text at byte 5,000 (line 1, column 5001): invalid continuation byte",),
    ),
    Case(
        "invalid UTF-8 in the middle (CSV)",
        "nlvr2",
        _invalid_utf8_csv,
        ("not UTF-8 text at byte", "(line 4, column"),
    ),
    Case(
        "lone high surrogate escape",
        "gqa",
        _surrogate(b'"yes\\ud800"'),
        ("record 3: a string holds the lone surrogate escape \\ud800",),
    ),
    Case(
        "lone low surrogate escape",
        "gqa",
        _surrogate(b'"\\udc00"'),
        ("record 3: a string holds the lone surrogate escape \\udc00",),
    ),
    Case(
        "100x more records than questions",
        "vqa2",
        lambda sub, h5, tmp: orjson.dumps(orjson.loads(sub) * 100),
        ("records, but the ground truth has 3,000 ids: more than 6,100 rows",),
    ),
    Case(
        "100x more lines than examples",
        "nlvr2",
        lambda sub, h5, tmp: sub * 100,
        ("the file holds 6,001 lines, but the ground truth has 60 ids",),
    ),
    Case(
        "an answer of 5,000 characters",
        "vqa2",
        lambda sub, h5, tmp: sub.replace(b'"answer":"', b'"answer":"' + b"x" * 5000, 1),
        ("answer is longer than 1024 characters (Limits.max_string_chars)",),
    ),
    Case(
        "binary garbage",
        "vqa2",
        lambda sub, h5, tmp: bytes(range(256)) * 100,
        ("not UTF-8 text at byte 128 (line 2, column 118): invalid start byte",),
    ),
    Case(
        "an HDF5 file (the unified file itself)",
        "vqa2",
        lambda sub, h5, tmp: h5.read_bytes(),
        ("this is an HDF5 file (a unified data file?), not a JSON array of answers",),
    ),
    Case(
        "an HDF5 file for a retrieval task",
        "flickr30k_retrieval",
        lambda sub, h5, tmp: h5.read_bytes(),
        ("this is an HDF5 file (a unified data file?), not a retrieval NPZ",),
    ),
    Case(
        "an HDF5 file for a CSV task",
        "nlvr2",
        lambda sub, h5, tmp: h5.read_bytes(),
        ("this is an HDF5 file (a unified data file?), not an identifier,prediction CSV",),
    ),
    Case(
        "a pickle",
        "vqa2",
        lambda sub, h5, tmp: H.pickle_file(),
        ("this is a Python pickle, not a JSON array of answers",),
    ),
    Case(
        "UTF-16 text",
        "snli_ve",
        lambda sub, h5, tmp: sub.decode().encode("utf-16"),
        ("this is UTF-16 text (save it as UTF-8)",),
    ),
    Case("an empty file (JSON)", "vqa2", lambda sub, h5, tmp: b"", ("the file is empty",)),
    Case("an empty file (CSV)", "nlvr2", lambda sub, h5, tmp: b"", ("the file is empty",)),
    Case(
        "an empty file (NPZ)",
        "coco_retrieval",
        lambda sub, h5, tmp: b"",
        ("the file is empty",),
    ),
    Case(
        "an empty gzip",
        "guesswhat",
        lambda sub, h5, tmp: gzip.compress(b""),
        ("the file is empty once decompressed",),
    ),
]


def build_case(case: Case, h5: Path, tmp: Path) -> bytes:
    gt = load_groundtruth(h5, case.task)
    return case.build(chance_submission(gt), h5, tmp)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_file_reports_the_problem(case: Case, tiny_h5: Path, tmp_path: Path) -> None:
    content = build_case(case, tiny_h5, tmp_path)
    gt = load_groundtruth(tiny_h5, case.task)
    validated = validate_file(case.task, gt, content)
    assert not validated.ok
    listing = "\n".join(str(p) for p in validated.listing())
    for text in case.expect:
        assert text in listing
    assert not (tmp_path / "tripwire").exists()  # no pickle ever ran


def test_a_gzip_bomb_costs_no_memory(tiny_h5: Path) -> None:
    """256 MiB of zeros in 256 KiB of gzip: refused after counting; what is held stays a
    small multiple of the file (the old reader held the whole stream)."""
    bomb = H.zeros_gzip(256 << 20)
    gt = load_groundtruth(tiny_h5, "vqa2")
    tracemalloc.start()
    try:
        validated = validate_file("vqa2", gt, bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "Limits.max_expansion" in str(validated.problems[0])
    assert peak < 32 << 20


def test_npz_bombs_are_refused_before_any_allocation(tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "coco_retrieval")
    for content in (H.npz_declaring(3 << 30), H.npz_huge_shape(), H.npz_zeros_bomb(1100 << 20)):
        tracemalloc.start()
        try:
            validated = validate_file("coco_retrieval", gt, content)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not validated.ok and peak < 16 << 20


def test_a_legitimate_deflated_npz_under_the_limit_is_read(tmp_path: Path) -> None:
    """The bound is on declared sizes: a compressed NPZ of zeros (1000x) is fine when its
    arrays fit the limit and the ground truth's shape."""
    from evalserver.metrics import retrieval as R

    gt = R.RetrievalGroundTruth(np.arange(1, 13), np.arange(12), np.arange(100, 112))
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        scores=np.eye(12, dtype=np.float32),
        caption_ids=np.arange(1, 13),
        image_ids=np.arange(100, 112),
    )
    validated = validate_file("coco_retrieval", gt, buffer.getvalue())
    assert validated.ok
    assert R.score(gt, validated.predictions).metrics["t2i_r1"] == 100.0


def test_fortran_ordered_and_big_endian_score_matrices_are_read() -> None:
    scores = np.asfortranarray(np.arange(12.0).reshape(3, 4)).astype(">f8")
    buffer = io.BytesIO()
    np.savez(buffer, scores=scores, caption_ids=np.arange(3), image_ids=np.arange(4))
    parsed = P.parse_retrieval(buffer.getvalue())
    np.testing.assert_array_equal(parsed.scores, scores)


def test_npz_members_duplicate_or_missing() -> None:
    import zipfile

    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w") as archive,
        pytest.warns(UserWarning, match="Duplicate name"),
    ):
        for name in ("scores.npy", "scores.npy", "caption_ids.npy", "image_ids.npy"):
            archive.writestr(name, b"")
    with pytest.raises(ValidationError, match=r"holds 2 members named 'scores\.npy'"):
        P.parse_retrieval(buffer.getvalue())


@pytest.mark.parametrize(
    ("limits", "content", "message"),
    [
        (Limits(max_bytes=1000), b"[" + b" " * 2000 + b"]", "more than the limit of 1,000 bytes"),
        (
            Limits(max_decompressed_bytes=1000),
            gzip.compress(b"[" + b" " * 2000 + b"]"),
            "larger than 1,000 bytes (Limits.max_decompressed_bytes)",
        ),
        (
            Limits(max_depth=2),
            b'[{"question_id": 1, "answer": "x", "extra": ["x"]}]',
            "record 1: JSON nested deeper than 2 levels",
        ),
        (Limits(max_values=100), b"[" + b"0," * 200 + b"0]", "more than 100 JSON values"),
        (
            Limits(max_string_chars=3),
            b'[{"question_id": 1, "answer": "four"}]',
            "answer is longer than 3 characters",
        ),
    ],
)
def test_each_limit_is_an_option(limits: Limits, content: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_vqa(content, limits=limits)
    assert message in str(info.value)


def test_limits_are_checked_and_sizes_parsed() -> None:
    with pytest.raises(ValueError, match=r"Limits\.max_depth must be a positive number"):
        Limits(max_depth=0)
    with pytest.raises(ValueError, match=r"Limits\.max_bytes must be an integer"):
        Limits(max_bytes=1.5)  # type: ignore[arg-type]
    assert parse_size("1G") == parse_size("1GiB") == 2**30
    assert parse_size("500M") == 500 * 2**20 and parse_size("1048576") == 2**20
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_the_default_limits_fit_the_largest_legitimate_file() -> None:
    """A COCO 5k score matrix (25,010 captions x 5,000 images) fits, in float32 and in
    float64, with the default limits."""
    limits = Limits()
    for itemsize in (4, 8):
        size = 25_010 * 5_000 * itemsize + 2 * 8 * 25_010 + 1024
        assert size <= limits.max_bytes and size <= limits.max_decompressed_bytes


def test_too_long_string_ids_cannot_widen_the_id_array(tiny_h5: Path) -> None:
    """An id longer than any of the ground truth is unknown: it is reported at once and not
    kept (a 256-character id would make the id of every row take 1 KiB)."""
    gt = load_groundtruth(tiny_h5, "gqa")
    records = orjson.loads(chance_submission(gt))
    records[0]["questionId"] = "9" * 200
    validated = validate_file("gqa", gt, orjson.dumps(records))
    assert "record 1, questionId 99999" in str(validated.problems[0])
    assert "longer than any id there" in str(validated.problems[0])
    assert validated.predictions.ids.dtype.itemsize // 4 < 200


def test_json_syntax_errors_name_the_record(tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "vqa2")
    content = chance_submission(gt)
    at = [m.end() for m in re.finditer(rb'"answer":', content)][7]  # the 8th record's answer
    broken = content[:at] + b"@" + content[at:]
    problem = str(validate_file("vqa2", gt, broken).problems[0])
    assert problem.startswith("not valid JSON: ") and "(in record 8)" in problem


def test_ranked_lists_longer_than_the_candidates_are_refused() -> None:
    gt_columns = 12
    from evalserver.metrics.limits import Expected

    lists = [{"caption_id": 1, "image_ids": list(range(200))}]
    with pytest.raises(ValidationError, match="lists 200 image ids, but the split has 12"):
        P.parse_retrieval(
            json.dumps(lists).encode(),
            expected=Expected(rows=1, columns=gt_columns),
        )


def test_docs_list_every_limit_with_its_default() -> None:
    """docs/metrics.md's Limits table restates the dataclass: it must agree."""
    from evalserver.metrics.limits import format_size

    text = (Path(__file__).parents[3] / "docs" / "metrics.md").read_text()
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \(`--[\w-]+`\) \| ([^|]+) \|", text, re.MULTILINE)
    }
    expected = {
        name: format_size(default) if size else f"{default:,}"
        for name, default, _, size in Limits.options()
    }
    assert {k: v.strip() for k, v in rows.items()} == expected


def _damaged(content: bytes, how: str) -> bytes:
    data = bytearray(content)
    directory = data.rindex(b"PK\x01\x02")  # the last central-directory entry
    if how == "version":  # "version needed to extract" 7.8: zipfile raises NotImplementedError
        data[directory + 6 : directory + 8] = (78).to_bytes(2, "little")
    elif how == "crc":  # a flipped byte in the scores' data
        data[data.index(b"scores.npy") + 200] ^= 0x10
    elif how == "truncated":
        del data[len(data) // 2 :]
    elif how == "header":  # the .npy header of the last member is not a dict
        start = data.rindex(b"{'descr'")
        data[start : start + 8] = b"(" * 8
    return bytes(data)


@pytest.mark.parametrize("how", ["version", "crc", "truncated", "header"])
def test_damaged_archives_are_reported(how: str, tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "coco_retrieval")
    content = _damaged(chance_submission(gt), how)
    validated = validate_file("coco_retrieval", gt, content)
    assert not validated.ok and validated.problems
    assert any("not a readable" in str(p) or "cannot read" in str(p) for p in validated.problems), (
        validated.listing()
    )


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("gz", [False, True])
def test_content_in_memory_of_any_buffer_type(kind: type, gz: bool) -> None:
    """Content is read as given (gunzipped content is a bytearray, used without a copy)."""
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.eye(3), caption_ids=np.arange(3), image_ids=np.arange(3))
    for content, parse in (
        (buffer.getvalue(), P.parse_retrieval),
        (b'[{"question_id": 1, "answer": "yes"}]', P.parse_vqa),
        (b"a,True\n", P.parse_nlvr2),
    ):
        data = gzip.compress(content) if gz else content
        assert P.num_rows(parse(kind(data))) > 0
