"""Prediction files of every format: gzip, malformed content, messages, the problem cap."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from evalserver.metrics import SCORERS
from evalserver.metrics import predictions as P
from evalserver.metrics.predictions import ValidationError


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


RANKED = [{"caption_id": 1, "image_ids": list(range(10))}]
#: (metric, a valid file of its format); retrieval has two formats.
VALID_FILES: list[tuple[str, bytes]] = [
    ("vqa", json.dumps([{"question_id": 1, "answer": "yes"}]).encode()),
    ("vgqa", json.dumps([{"question_id": 1, "answer": "yes"}]).encode()),
    ("gqa", json.dumps([{"questionId": "01", "prediction": "yes"}]).encode()),
    ("refexp", json.dumps([{"sent_id": 1, "bbox": [1, 2, 3.5, 4]}]).encode()),
    ("pointing", json.dumps([{"qa_id": 1, "box_id": 7}]).encode()),
    ("guesswhat", json.dumps([{"game_id": 1, "object_id": 7}]).encode()),
    ("nlvr2", b"dev-1-0-0,True\r\ndev-1-1-0,false\r\n"),
    ("snli_ve", b"a#0r1e,entailment\n"),
    ("snli_ve", json.dumps([{"pairID": "a#0r1e", "label": "neutral"}]).encode()),
    (
        "retrieval",
        npz(scores=np.eye(2), caption_ids=np.array([1, 2]), image_ids=np.array([5, 6])),
    ),
    ("retrieval", json.dumps(RANKED).encode()),
]


def _fields(parsed: object) -> dict[str, object]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(parsed).items()}


def test_every_metric_has_a_valid_sample() -> None:
    assert {metric for metric, _ in VALID_FILES} == set(SCORERS)


@pytest.mark.parametrize(("metric", "content"), VALID_FILES)
def test_gzip_is_detected_by_content(metric: str, content: bytes, tmp_path: Path) -> None:
    parse = SCORERS[metric].parse
    plain = parse(content)
    path = tmp_path / "predictions.bin"  # no .gz in the name: content decides
    path.write_bytes(gzip.compress(content))
    assert _fields(parse(path)) == _fields(plain)
    assert _fields(parse(str(path))) == _fields(plain)
    with path.open("rb") as handle:
        assert _fields(parse(handle)) == _fields(plain)


@pytest.mark.parametrize(("metric", "content"), VALID_FILES)
def test_each_format_is_recognised_as_itself(metric: str, content: bytes) -> None:
    formats = [f for s in SCORERS.values() for f in s.formats]
    assert P.sniff_format(content, formats) in SCORERS[metric].formats


@pytest.mark.parametrize(("metric", "content"), VALID_FILES)
def test_pack_unpack_round_trip(metric: str, content: bytes) -> None:
    parsed = SCORERS[metric].parse(content)
    header, arrays = P.pack(parsed)
    json.dumps(header)  # the header is JSON
    assert all(a.dtype != object for a in arrays.values())  # no pickle needed
    back = P.unpack(json.loads(json.dumps(header)), arrays)
    assert type(back) is type(parsed) and _fields(back) == _fields(parsed)


def test_unpack_refuses_unknown_containers() -> None:
    with pytest.raises(ValueError, match=r"unknown prediction container 'os\.system'"):
        P.unpack({"container": "os.system", "fields": {}}, {})


@pytest.mark.parametrize("metric", sorted(SCORERS))
def test_every_metric_rejects_garbage_with_a_message(metric: str) -> None:
    with pytest.raises(ValidationError) as info:
        SCORERS[metric].parse(b"\x1f\x8bnot gzip at all")
    assert str(info.value.problems[0]).startswith("not a valid gzip file")
    assert info.value.total == 1


def test_writers_are_the_parsers_inverse() -> None:
    answers = P.parse_gqa(
        P.write_answers(
            ["01", "2"], ["yes", "ça"], id_field="questionId", answer_field="prediction"
        )
    )
    assert answers.ids.tolist() == ["01", "2"] and answers.answers == ["yes", "ça"]
    boxes = P.parse_refexp(P.write_refexp(np.array([3]), np.array([[0.1, 2, 3, 123.45]])))
    assert boxes.boxes.tolist() == [[0.1, 2.0, 3.0, 123.45]]
    choices = P.parse_guesswhat(
        P.write_choices(
            np.array([1, 2]), np.array([7, 8]), id_field="game_id", choice_field="object_id"
        )
    )
    assert choices.choices.tolist() == [7, 8]
    labels = P.parse_snli_ve(P.write_labels_csv(["a", "b"], [2, 0], P.SNLI_VE_LABELS))
    assert labels.labels.tolist() == [2, 0]
    matrix = P.parse_retrieval(
        P.write_score_matrix([1, 2], np.eye(2, dtype=np.float32), image_ids=np.array([5, 6]))
    )
    assert matrix.scores.dtype == np.float32 and matrix.image_ids.tolist() == [5, 6]
    ranked = P.parse_retrieval(P.write_ranked_lists([1], [list(range(10))]))
    # Lists are kept flat (memory proportional to the file), row i = row(i).
    assert ranked.ranked.tolist() == list(range(10)) and ranked.row(0).tolist() == list(range(10))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b'[{"question_id": 1, "answer": "yes"}', "not valid JSON: "),
        (b'{"question_id": 1, "answer": "yes"}', "expected a JSON array of records like"),
        (b"[]", "the file holds no predictions (empty array)"),
        (b'[{"question_id": 1}]', "record 1, question_id 1: missing key 'answer'"),
        (b'[{"answer": "x"}]', "record 1: missing key 'question_id'"),
        (
            b'[{"question_id": true, "answer": "x"}]',
            "record 1: question_id must be an integer, got boolean True",
        ),
        (
            b'[{"question_id": 1.0, "answer": "x"}]',
            "record 1: question_id must be an integer, got float 1.0",
        ),
        (
            b'[{"question_id": 1, "answer": 2}]',
            "record 1, question_id 1: answer must be a string, got int 2",
        ),
        (
            b'[{"question_id": 1, "answer": null}]',
            "record 1, question_id 1: answer must be a string, got null None",
        ),
        (
            # Quoted as written, not as the float a JSON parser reads it as (1e+20).
            b'[{"question_id": 99999999999999999999, "answer": "x"}]',
            "record 1: question_id must be an integer from -2**63 to 2**63-1, "
            "got 99999999999999999999",
        ),
        (
            b'["yes"]',
            'record 1: expected an object like {"question_id": 1, "answer": "..."}, got string',
        ),
    ],
)
def test_json_problems(content: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_vqa(content)
    assert str(info.value.problems[0]).startswith(message)


def test_json_syntax_error_says_where() -> None:
    with pytest.raises(ValidationError, match=r"line 2 column \d+"):
        P.parse_vqa(b'[{"question_id": 1, "answer": "a"},\n {"question_id": 2 "answer": "b"}]')


def test_problems_are_capped_but_counted() -> None:
    records = [{"question_id": str(i), "answer": "x"} for i in range(120)]
    with pytest.raises(ValidationError) as info:
        P.parse_vqa(json.dumps(records).encode())
    error = info.value
    assert len(error.problems) == P.MAX_PROBLEMS == 50
    assert error.total == 120
    text = str(error)
    assert text.startswith("the prediction file has 120 problem(s):")
    assert text.endswith("... and 70 more")
    assert "record 50: question_id must be an integer, got string '49'" in text


def test_missing_ids_are_capped_in_validation() -> None:
    from evalserver.metrics import vqa

    n = 200
    gt = vqa.VqaGroundTruth(
        np.arange(n, dtype=np.int64), np.arange(n + 1) * 1, ["a"] * n, ["what"] * n, ["other"] * n
    )
    problems = vqa.validate(gt, P.parse_vqa(b'[{"question_id": 0, "answer": "a"}]'))
    assert len(problems) == 51
    assert str(problems[-1]) == "... and 149 more problem(s) not listed"
    with pytest.raises(ValidationError) as info:
        vqa.score(gt, P.parse_vqa(b'[{"question_id": 0, "answer": "a"}]'))
    assert info.value.total == 199


def test_long_string_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match="questionId is longer than 256 characters"):
        P.parse_gqa(json.dumps([{"questionId": "1" * 300, "prediction": "x"}]).encode())


def test_limits_bound_stored_and_decompressed_size() -> None:
    bomb = gzip.compress(b" " * 100_000)
    small = P.Limits(max_decompressed_bytes=1000)
    with pytest.raises(ValidationError, match=r"decompressed file is larger than 1,000 bytes"):
        P.read_source(bomb, limits=small)
    with pytest.raises(ValidationError, match=r"the file is 11 bytes, more than the limit of 10"):
        P.read_source(b"x" * 11, limits=P.Limits(max_bytes=10))
    assert P.read_source(gzip.compress(b"abc"), limits=P.Limits(max_decompressed_bytes=3)) == b"abc"


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        P.parse_vqa(tmp_path / "nope.json")


def test_csv_tolerates_blank_lines_bom_and_crlf() -> None:
    parsed = P.parse_nlvr2("\ufeffdev-1-0-0,True\r\n\r\n  \ndev-1-1-0,FALSE".encode())
    assert parsed.ids.tolist() == ["dev-1-0-0", "dev-1-1-0"]
    assert parsed.labels.tolist() == [1, 0]
    assert parsed.positions.tolist() == [1, 4]


def test_csv_spaces_around_fields_are_problems() -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_nlvr2(b"dev-1-0-0, True\n dev-1-1-0,True\n")
    assert [str(p) for p in info.value.problems] == [
        "line 1, identifier dev-1-0-0: prediction must be False or True, got ' True'",
        "line 2: identifier has surrounding spaces: ' dev-1-1-0'",
    ]


def test_empty_csv() -> None:
    with pytest.raises(ValidationError, match="the file holds no predictions"):
        P.parse_snli_ve(b"\n\n")


def test_problem_text_forms() -> None:
    assert str(P.Problem("m")) == "m"
    assert str(P.Problem("m", "line 3")) == "line 3: m"
    assert str(P.Problem("m", None, "7", "qa_id")) == "qa_id 7: m"
    assert str(P.Problem("m", "record 2", "7", "qa_id")) == "record 2, qa_id 7: m"
