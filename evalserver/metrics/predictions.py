"""Reading, parsing and validating prediction files, for every task, with messages for people.

A participant who uploads a broken file must learn everything that is wrong with it in one
go, each problem named by its line or record and its example id, never by a stack trace:
the official scripts either crash (KeyError, assert) or, worse, score a partial file. So
parsing here never raises on bad content except ``ValidationError``, which carries ALL the
problems found (listed up to a cap, with the total count).

Uploads come from the public: every parser is bounded by ``Limits`` (bytes read and
decompressed, JSON depth and values, rows against the ground truth's size, string
lengths; docs/metrics.md "Limits"), which the caller passes (``limits=``) with what the
ground truth allows (``expected=``, from ``validate_file``). The bounds are checked before
the work they bound: sizes before reading or decompressing, the JSON's shape before it is
parsed, an NPZ's declared arrays before they are allocated.

Formats (docs/metrics.md, "Prediction formats"): JSON arrays of records, CSV lines for
nlvr2 and snli_ve, NPZ score matrices or JSON ranked lists for retrieval. Any file may be
gzip-compressed; compression is detected from the content (magic bytes), not the name.
Records and lines are numbered from 1 in messages.

Also here, because they mirror the parsers: ``PredictionFormat`` and ``sniff_format`` (what
a file looks like, so a file of another task's format gets a message that says so), the
writers of every format (baselines and tests write official files with them), and
``pack``/``unpack`` (a parsed container as plain arrays, for the saved validated form).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from evalserver.metrics import upload
from evalserver.metrics.limits import Bounds, Expected, Limits
from evalserver.metrics.npzread import READ_ERRORS, NpzArchive
from evalserver.metrics.problems import MAX_PROBLEMS, Problem, ProblemLog, ValidationError
from evalserver.metrics.upload import Source

__all__ = [
    "CONTAINERS",
    "MAX_PROBLEMS",
    "AnswerPredictions",
    "BoxPredictions",
    "ChoicePredictions",
    "Expected",
    "IdMatch",
    "LabelPredictions",
    "Limits",
    "PredictionFormat",
    "Problem",
    "ProblemLog",
    "RankedListPredictions",
    "Rows",
    "ScoreMatrixPredictions",
    "Source",
    "ValidationError",
    "id_array",
    "match_ids",
    "num_rows",
    "pack",
    "parse_answers",
    "parse_choices",
    "parse_gqa",
    "parse_guesswhat",
    "parse_nlvr2",
    "parse_pointing",
    "parse_refexp",
    "parse_retrieval",
    "parse_snli_ve",
    "parse_vqa",
    "read_source",
    "sniff_format",
    "unpack",
    "write_answers",
    "write_choices",
    "write_labels_csv",
    "write_ranked_lists",
    "write_refexp",
    "write_score_matrix",
]

#: Minimum length of a ranked list of image ids (R@10 needs ten).
MIN_RANKED = 10
#: Integer ids and values are 64-bit signed integers.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False)
class Rows:
    """Rows of a parsed prediction file, in file order (bad rows already dropped).

    ``positions`` holds each row's 1-based record (JSON) or line (CSV) number, so that id
    problems found later (duplicates, unknown ids) still point at the right place.
    """

    ids: np.ndarray  # int64, or unicode (``<U``) for string ids
    positions: np.ndarray  # int64
    unit: str  # "record" or "line"
    id_field: str
    #: Ids of rows dropped for a bad value: already reported, so not "missing" as well.
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(0), kw_only=True)

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, row: int) -> str:
        return f"{self.unit} {int(self.positions[row])}"


@dataclass(frozen=True, eq=False)
class AnswerPredictions(Rows):
    """One free-text answer per id (vqa2, vgqa, gqa)."""

    answers: list[str]


@dataclass(frozen=True, eq=False)
class BoxPredictions(Rows):
    """One box [x, y, w, h] per referring expression."""

    boxes: np.ndarray  # float64 [N, 4]


@dataclass(frozen=True, eq=False)
class ChoicePredictions(Rows):
    """One chosen candidate id per example (visual7w box_id, guesswhat object_id)."""

    choices: np.ndarray  # int64 [N]
    choice_field: str


@dataclass(frozen=True, eq=False)
class LabelPredictions(Rows):
    """One class label per example, as an index into ``label_names``."""

    labels: np.ndarray  # int8 [N]
    label_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ScoreMatrixPredictions:
    """A full retrieval score matrix: ``scores[i, j]`` = similarity of caption i, image j."""

    scores: np.ndarray  # [captions, images], real dtype, all finite
    caption_ids: np.ndarray  # int64
    image_ids: np.ndarray  # int64


@dataclass(frozen=True, eq=False)
class RankedListPredictions(Rows):
    """Per caption, image ids best first: every list concatenated in row order in
    ``ranked`` (row i is ``ranked[offsets[i]:offsets[i] + lengths[i]]``).

    Flat rather than padded: one long list among short ones costs its own length, not
    its length times the number of rows (memory stays proportional to the file).
    """

    ranked: np.ndarray  # int64 [sum(lengths)]
    lengths: np.ndarray  # int64 [N]

    @property
    def offsets(self) -> np.ndarray:
        """int64 [N]: where each row's list starts in ``ranked``."""
        lengths = np.asarray(self.lengths, dtype=np.int64)
        return np.cumsum(lengths) - lengths

    def row(self, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        return self.ranked[start : start + int(self.lengths[i])]


# --------------------------------------------------------------------------- reading


def read_source(source: Source, *, limits: Limits | None = None) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic.

    Bounded by ``limits`` (default ``Limits()``): at most ``max_bytes`` are read and the
    decompression stops at ``decompressed_limit`` (a small .gz can expand to gigabytes).
    An empty file is a ``ValidationError``; a missing one is the caller's error
    (``OSError``), not a problem of the submission.
    """
    return upload.read_upload(source, limits or Limits())


def _bounds(limits: Limits | None, expected: Expected | None) -> Bounds:
    return Bounds(limits or Limits(), expected)


def _records(data: bytes, example: str, what: str, bounds: Bounds) -> list[Any]:
    upload.refuse_binary(data, what)
    value = upload.load_json(data, bounds, what)
    if not isinstance(value, list):
        kind = _type_name(value)
        raise ValidationError.one(
            f"expected a JSON array of records like {example}, got a JSON {kind}"
        )
    return value


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _int_reason(value: Any, field: str) -> str | None:
    """None if ``value`` is a 64-bit integer (a JSON integer; not a bool, not a float),
    else why not, quoting the value."""
    if type(value) is int:
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return f"{field} must be an integer from -2**63 to 2**63-1, got {_short(value)}"
    if type(value) is float:
        return f"{field} must be an integer, got float {value!r}{_float_note(value)}"
    return f"{field} must be an integer, got {_type_name(value)} {_short(value)}"


def _float_note(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) >= 2**53:
        return " (beyond 2**53 a float cannot tell neighbouring integers apart)"
    return ""


def _literal_reason(literal: Any, field: str) -> str | None:
    """``_int_reason`` for a number as written in the file (``upload.exact_records``)."""
    if type(literal) is int:
        return _int_reason(literal, field)
    if upload.is_literal(literal):
        text = str(literal)
        if re.fullmatch(r"-?\d+", text):  # an integer too long to convert
            return f"{field} must be an integer from -2**63 to 2**63-1, got {_short_text(text)}"
        note = _float_note(float(text))
        return f"{field} must be an integer, got float {_short_text(text)}{note}"
    return None


def _text_reason(value: str, field: str, *, allow_breaks: bool) -> str | None:
    """None if ``value`` has no control character (or, for an id, no character that cannot
    be seen: an id "123\\u0000" must not pass for 123), else why, naming the character."""
    if value.isprintable():
        return None
    for position, char in enumerate(value, start=1):
        if char.isprintable() or (allow_breaks and char in "\t\n\r"):
            continue
        category = unicodedata.category(char)
        if not allow_breaks or category in ("Cc", "Cs"):
            kind = _CHARACTER_KINDS.get(category, "a non-printable character")
            return (
                f"{field} holds {kind} U+{ord(char):04X} at character {position}: {_short(value)}"
            )
    return None


_CHARACTER_KINDS = {
    "Cc": "the control character",
    "Cs": "a lone surrogate",
    "Cf": "the invisible format character",
    "Zs": "the space character",
    "Zl": "the line separator",
    "Zp": "the paragraph separator",
}


def _check_id(value: Any, kind: type, field: str, bounds: Bounds) -> str | None:
    """None if ``value`` is a valid id of ``kind``, else the reason."""
    if kind is int:
        return _int_reason(value, field)
    if type(value) is not str:
        return f"{field} must be a string, got {_type_name(value)} {_short(value)}"
    if not value:
        return f"{field} is empty"
    if len(value) > bounds.max_id_chars:
        return f"{field} is longer than {bounds.max_id_chars} characters (Limits.max_id_chars)"
    return _text_reason(value, field, allow_breaks=False)


def _too_long_to_match(value: Any, bounds: Bounds) -> bool:
    """A string id longer than every ground-truth id: it cannot match, and kept it would
    widen the fixed-width id array of every row."""
    longest = bounds.matchable_id_chars
    return longest is not None and type(value) is str and len(value) > longest


def _short(value: Any) -> str:
    return _short_text(repr(value))


def _short_text(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def id_array(ids: Sequence[Any], kind: type) -> np.ndarray:
    """Ids as a sortable numpy array: int64, or fixed-width unicode for strings."""
    if kind is int:
        return np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return np.zeros(0, dtype="<U1")
    return np.asarray(ids, dtype=str).reshape(-1)


ValueCheck = Callable[[Any], tuple[Any, str | None]]
_MISSING = object()


def _id_test(id_kind: type, bounds: Bounds) -> Callable[[Any], bool]:
    """A fast yes for a good id (the common case); any no is diagnosed by ``_check_id``."""
    if id_kind is int:
        return lambda rid: type(rid) is int and _INT_MIN <= rid <= _INT_MAX
    longest = min(bounds.max_id_chars, bounds.matchable_id_chars or bounds.max_id_chars)
    return lambda rid: type(rid) is str and 0 < len(rid) <= longest and rid.isprintable()


def _parse_json_rows(
    data: bytes,
    *,
    id_field: str,
    id_kind: type,
    value_field: str,
    check: ValueCheck,
    example: str,
    what: str,
    log: ProblemLog,
    bounds: Bounds,
) -> tuple[np.ndarray, list[Any], np.ndarray, np.ndarray]:
    """Walk a JSON array of records; keep good rows, log every bad one.

    Returns ids, values, positions of the good rows and the ids of rows rejected for a bad
    value (their id was fine). A good record takes the fast path (a few type tests); any
    other is diagnosed in full by ``_diagnose``.
    """
    records = _records(data, example, what, bounds)
    rejected: list[Any] = []
    ids: list[Any] = []
    values: list[Any] = []
    positions: list[int] = []
    #: Listed problems about a non-integer number id: (index in the log, record number).
    numeric: list[tuple[int, int]] = []
    good_id = _id_test(id_kind, bounds)
    for number, record in enumerate(records, start=1):
        if type(record) is dict and (
            len(record) <= 2 or not _too_deep(record, value_field, bounds)
        ):
            rid = record.get(id_field, _MISSING)
            raw = record.get(value_field, _MISSING)
            if raw is not _MISSING and good_id(rid):
                value, reason = check(raw)
                if reason is None:
                    ids.append(rid)
                    values.append(value)
                    positions.append(number)
                    continue
        _diagnose(
            record,
            number,
            id_field,
            id_kind,
            value_field,
            check,
            example,
            log,
            bounds,
            rejected,
            numeric,
        )
    if not records:
        log.add("the file holds no predictions (empty array)")
    if numeric:
        _quote_as_written(data, numeric, id_field, log)
    positions_array = np.asarray(positions, dtype=np.int64)
    return id_array(ids, id_kind), values, positions_array, id_array(rejected, id_kind)


def _diagnose(
    record: Any,
    number: int,
    id_field: str,
    id_kind: type,
    value_field: str,
    check: ValueCheck,
    example: str,
    log: ProblemLog,
    bounds: Bounds,
    rejected: list[Any],
    numeric: list[tuple[int, int]],
) -> None:
    """Log what is wrong with a record that failed the fast path (the first thing, in the
    order a reader checks: object, id key, nesting, id, value key, value)."""
    where = f"record {number}"
    if type(record) is not dict:
        log.add(f"expected an object like {example}, got {_type_name(record)}", where)
        return
    if id_field not in record:
        log.add(f"missing key {id_field!r}", where)
        return
    if len(record) > 2 and _too_deep(record, value_field, bounds):
        limit = bounds.limits.max_depth
        log.add(f"JSON nested deeper than {limit} levels (Limits.max_depth)", where)
        return
    rid = record[id_field]
    reason = _check_id(rid, id_kind, id_field, bounds)
    if reason:
        if id_kind is int and type(rid) is float and log.room():
            numeric.append((len(log.problems), number))
        log.add(reason, where)
        return
    if _too_long_to_match(rid, bounds):
        log.add(
            f"unknown {id_field}: not in the ground truth of this split (longer than any id there)",
            where,
            _short_text(rid),
            id_field,
        )
        return
    if value_field not in record:
        log.add(f"missing key {value_field!r}", where, rid, id_field)
        rejected.append(rid)
        return
    # The fast path refused the record, and every other test passed: the value is bad.
    _, reason = check(record[value_field])
    log.add(f"{value_field} {reason}", where, rid, id_field)
    rejected.append(rid)


def _too_deep(record: dict, value_field: str, bounds: Bounds) -> bool:
    """Whether an extra key of ``record`` nests deeper than the limit (the value fields'
    own checks refuse any nesting they do not expect); the array holds the record (depth
    1), the record its values (depth 2)."""
    levels = bounds.limits.max_depth - 2
    return any(
        type(v) in (dict, list) and upload.nesting_exceeds(v, levels)
        for k, v in record.items()
        if k != value_field
    )


def _quote_as_written(
    data: bytes, numeric: list[tuple[int, int]], id_field: str, log: ProblemLog
) -> None:
    """Rewrite listed problems about number ids with the number as the file writes it (a
    JSON parser turns 1180591620717411303424 into the float 1.1805916207174113e+21)."""
    exact = upload.exact_records(data, {number for _, number in numeric})
    for index, number in numeric:
        record = exact.get(number)
        if not isinstance(record, dict):
            continue
        reason = _literal_reason(record.get(id_field), id_field)
        if reason:
            log.problems[index] = dataclasses.replace(log.problems[index], message=reason)


def _string_value(bounds: Bounds) -> ValueCheck:
    """A check of a string value (an answer): type, length, no control character."""
    limit = bounds.limits.max_string_chars

    def check(value: Any) -> tuple[Any, str | None]:
        if type(value) is str and len(value) <= limit and value.isprintable():
            return value, None
        if type(value) is not str:
            return None, f"must be a string, got {_type_name(value)} {_short(value)}"
        if len(value) > limit:
            return None, f"is longer than {limit} characters (Limits.max_string_chars)"
        reason = _text_reason(value, "", allow_breaks=True)
        return (None, reason.lstrip()) if reason else (value, None)

    return check


def _int_value(value: Any) -> tuple[Any, str | None]:
    reason = _int_reason(value, "")
    if reason:
        return None, reason.lstrip()
    return value, None


def _box_value(value: Any) -> tuple[Any, str | None]:
    if type(value) is not list or len(value) != 4:
        shape = f"{len(value)} values" if type(value) is list else _type_name(value)
        return None, f"must be [x, y, w, h] (4 numbers), got {shape}"
    if not all(type(v) in (int, float) for v in value):
        return None, f"must hold 4 numbers, got {_short(value)}"
    try:
        box = [float(v) for v in value]
    except OverflowError:  # an integer beyond the float range
        box = [math.inf]
    if not all(math.isfinite(v) for v in box):
        return None, f"must hold 4 finite numbers, got {_short(value)}"
    if box[2] < 0 or box[3] < 0:
        return None, f"width and height must not be negative, got {_short(value)}"
    return box, None


# --------------------------------------------------------------------------- JSON tasks
#
# Every parser takes an optional ``log``. Without one it raises ``ValidationError`` for any
# problem (the plain API). With one it records row-level problems there and returns the
# good rows, so that id checks can run too and a participant sees every problem at once
# (``check_file``); only a file that cannot be read at all still raises. Every parser also
# takes ``limits`` (default ``Limits()``) and ``expected`` (what the ground truth allows;
# None: only the absolute limits apply).


def _finish(log: ProblemLog, own: bool) -> None:
    if own:
        log.raise_if_any()


def parse_answers(
    source: Source,
    *,
    id_field: str,
    id_kind: type,
    answer_field: str,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> AnswerPredictions:
    """A JSON array of ``{id_field: id, answer_field: str}``."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    sample_id = "1" if id_kind is int else '"1"'
    ids, answers, positions, rejected = _parse_json_rows(
        read_source(source, limits=bounds.limits),
        id_field=id_field,
        id_kind=id_kind,
        value_field=answer_field,
        check=_string_value(bounds),
        example=f'{{"{id_field}": {sample_id}, "{answer_field}": "..."}}',
        what="a JSON array of answers",
        log=log,
        bounds=bounds,
    )
    _finish(log, own)
    return AnswerPredictions(ids, positions, "record", id_field, answers, rejected=rejected)


def parse_vqa(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> AnswerPredictions:
    """vqa2 and vgqa: ``[{"question_id": int, "answer": str}]`` (vgqa: question_id = qa_id)."""
    return parse_answers(
        source,
        id_field="question_id",
        id_kind=int,
        answer_field="answer",
        log=log,
        limits=limits,
        expected=expected,
    )


def parse_gqa(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> AnswerPredictions:
    """``[{"questionId": str, "prediction": str}]``; ids are strings and never cast."""
    return parse_answers(
        source,
        id_field="questionId",
        id_kind=str,
        answer_field="prediction",
        log=log,
        limits=limits,
        expected=expected,
    )


def parse_refexp(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> BoxPredictions:
    """``[{"sent_id": int, "bbox": [x, y, w, h]}]`` with finite numbers, w and h >= 0."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    ids, boxes, positions, rejected = _parse_json_rows(
        read_source(source, limits=bounds.limits),
        id_field="sent_id",
        id_kind=int,
        value_field="bbox",
        check=_box_value,
        example='{"sent_id": 1, "bbox": [x, y, w, h]}',
        what="a JSON array of boxes",
        log=log,
        bounds=bounds,
    )
    _finish(log, own)
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return BoxPredictions(ids, positions, "record", "sent_id", array, rejected=rejected)


def parse_choices(
    source: Source,
    *,
    id_field: str,
    choice_field: str,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> ChoicePredictions:
    """``[{id_field: int, choice_field: int}]``."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    ids, choices, positions, rejected = _parse_json_rows(
        read_source(source, limits=bounds.limits),
        id_field=id_field,
        id_kind=int,
        value_field=choice_field,
        check=_int_value,
        example=f'{{"{id_field}": 1, "{choice_field}": 2}}',
        what="a JSON array of choices",
        log=log,
        bounds=bounds,
    )
    _finish(log, own)
    array = np.asarray(choices, dtype=np.int64).reshape(-1)
    return ChoicePredictions(
        ids, positions, "record", id_field, array, choice_field, rejected=rejected
    )


def parse_pointing(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> ChoicePredictions:
    """visual7w: ``[{"qa_id": int, "box_id": int}]``."""
    return parse_choices(
        source,
        id_field="qa_id",
        choice_field="box_id",
        log=log,
        limits=limits,
        expected=expected,
    )


def parse_guesswhat(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> ChoicePredictions:
    """guesswhat: ``[{"game_id": int, "object_id": int}]``."""
    return parse_choices(
        source,
        id_field="game_id",
        choice_field="object_id",
        log=log,
        limits=limits,
        expected=expected,
    )


# --------------------------------------------------------------------------- CSV tasks

_LINE_BREAK = re.compile(r"\r\n?|\n")


def _text_lines(data: bytes, bounds: Bounds, what: str) -> list[str]:
    """The lines of a UTF-8 text (BOM accepted), split at \\n, \\r\\n or \\r only (an id
    holding another separator, \\x1c or \\u2028, is reported, not split). The number of
    lines is checked against the bounds before they are split."""
    upload.refuse_binary(data, what)
    breaks = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    lines = breaks + 1
    reason = bounds.too_many_rows(lines, "lines")
    if reason is None and lines > bounds.limits.max_values:
        reason = (
            f"the file holds {lines:,} lines, more than {bounds.limits.max_values:,} "
            "(Limits.max_values)"
        )
    if reason:
        found = upload.utf8_error(data)  # text that is not UTF-8 is the first thing wrong
        raise ValidationError([upload.utf8_problem(data, *found) if found else Problem(reason)])
    try:
        text = data.decode("utf-8")  # positions count the BOM, if any
    except UnicodeDecodeError as exc:
        raise ValidationError([upload.utf8_problem(data, exc.start, exc.reason)]) from None
    return _LINE_BREAK.split(text.removeprefix("\ufeff"))


def _parse_csv_labels(
    data: bytes,
    *,
    id_field: str,
    label_field: str,
    names: tuple[str, ...],
    what: str,
    log: ProblemLog,
    bounds: Bounds,
) -> LabelPredictions:
    """``id,label`` per line, no header; blank lines skipped; labels case-insensitive."""
    lookup = {name.lower(): i for i, name in enumerate(names)}
    allowed = " or ".join(names)
    ids: list[str] = []
    labels: list[int] = []
    positions: list[int] = []
    rejected: list[str] = []
    good_id = _id_test(str, bounds)
    for number, line in enumerate(_text_lines(data, bounds, what), start=1):
        fields = line.split(",")
        if len(fields) == 2:  # the fast path: a good line
            rid, label = fields
            code = lookup.get(label.lower())
            if code is not None and good_id(rid) and rid[0] != " " and rid[-1] != " ":
                ids.append(rid)
                labels.append(code)
                positions.append(number)
                continue
        where = f"line {number}"
        if not line.strip():
            continue
        if len(fields) != 2:
            log.add(
                f"expected 2 comma-separated fields {id_field},{label_field}, got {len(fields)}",
                where,
            )
            continue
        rid, label = fields
        reason = _check_id(rid, str, id_field, bounds)
        if reason:
            log.add(reason, where)
            continue
        if rid != rid.strip():
            log.add(f"{id_field} has surrounding spaces: {rid!r}", where)
            continue
        if _too_long_to_match(rid, bounds):
            log.add(
                f"unknown {id_field}: not in the ground truth of this split (longer than any "
                "id there)",
                where,
                _short_text(rid),
                id_field,
            )
            continue
        code = lookup.get(label.lower())
        if code is None:
            header = number == 1 and label.strip().lower() == label_field.lower()
            hint = " (no header line is expected)" if header else ""
            log.add(
                f"{label_field} must be {allowed}, got {_short(label)}{hint}", where, rid, id_field
            )
            rejected.append(rid)
            continue
        ids.append(rid)
        labels.append(code)
        positions.append(number)
    if not positions and not rejected and not log:
        log.add("the file holds no predictions")
    return LabelPredictions(
        id_array(ids, str),
        np.asarray(positions, dtype=np.int64),
        "line",
        id_field,
        np.asarray(labels, dtype=np.int8),
        names,
        rejected=id_array(rejected, str),
    )


#: nlvr2 label names; index 1 = True, matching the unified file's int8 label.
NLVR2_LABELS: tuple[str, ...] = ("False", "True")
#: snli_ve label names in the unified file's order (contradiction 0, neutral 1, entailment 2).
SNLI_VE_LABELS: tuple[str, ...] = ("contradiction", "neutral", "entailment")


def parse_nlvr2(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> LabelPredictions:
    """The official CSV: ``identifier,prediction`` per line, True/False in any case."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    rows = _parse_csv_labels(
        read_source(source, limits=bounds.limits),
        id_field="identifier",
        label_field="prediction",
        names=NLVR2_LABELS,
        what="an identifier,prediction CSV",
        log=log,
        bounds=bounds,
    )
    _finish(log, own)
    return rows


def parse_snli_ve(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> LabelPredictions:
    """``pairID,label`` lines, or a JSON array ``[{"pairID": str, "label": str}]``."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    data = read_source(source, limits=bounds.limits)
    if upload.first_byte(data) == b"[":
        lookup = {name: i for i, name in enumerate(SNLI_VE_LABELS)}

        def check(value: Any) -> tuple[Any, str | None]:
            if type(value) is str and value.lower() in lookup:
                return lookup[value.lower()], None
            return None, f"must be one of {', '.join(SNLI_VE_LABELS)}, got {_short(value)}"

        ids, labels, positions, rejected = _parse_json_rows(
            data,
            id_field="pairID",
            id_kind=str,
            value_field="label",
            check=check,
            example='{"pairID": "...", "label": "entailment"}',
            what="a JSON array of labels",
            log=log,
            bounds=bounds,
        )
        codes = np.asarray(labels, dtype=np.int8)
        rows = LabelPredictions(
            ids, positions, "record", "pairID", codes, SNLI_VE_LABELS, rejected=rejected
        )
    else:
        rows = _parse_csv_labels(
            data,
            id_field="pairID",
            label_field="label",
            names=SNLI_VE_LABELS,
            what="a pairID,label CSV",
            log=log,
            bounds=bounds,
        )
    _finish(log, own)
    return rows


# --------------------------------------------------------------------------- retrieval

_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


def parse_retrieval(
    source: Source,
    *,
    log: ProblemLog | None = None,
    limits: Limits | None = None,
    expected: Expected | None = None,
) -> ScoreMatrixPredictions | RankedListPredictions:
    """An NPZ score matrix (zip content) or a JSON array of ranked lists."""
    own, log = log is None, ProblemLog() if log is None else log
    bounds = _bounds(limits, expected)
    data = read_source(source, limits=bounds.limits)
    upload.refuse_binary(
        data, "a retrieval NPZ or a JSON array of ranked lists", allowed=(_ZIP_MAGIC, _NPY_MAGIC)
    )
    if data[:4] == _ZIP_MAGIC:
        parsed: ScoreMatrixPredictions | RankedListPredictions = _parse_npz(data, log, bounds)
    elif data[:6] == _NPY_MAGIC:
        message = "a single .npy array was given; expected an .npz with 3 arrays"
        raise ValidationError([Problem(message + " (scores, caption_ids, image_ids)")])
    else:
        parsed = _parse_ranked(data, log, bounds)
    _finish(log, own)
    return parsed


def _parse_npz(data: bytes, log: ProblemLog, bounds: Bounds) -> ScoreMatrixPredictions:
    """Structural problems (missing array, wrong shape) raise at once: nothing can be
    checked further; non-finite scores are logged per caption row. Shapes and dtypes are
    checked from the arrays' headers, before any array is read (``NpzArchive``)."""
    structure = ProblemLog()
    with NpzArchive(data, ("scores", "caption_ids", "image_ids"), bounds.limits) as archive:
        headers = archive.headers
        for key in ("caption_ids", "image_ids"):
            ids = headers[key]
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                message = f"must be a 1-D integer array, got {ids.dtype} with shape {ids.shape}"
                structure.add(message, key)
        scores_header = headers["scores"]
        if scores_header.ndim != 2 or scores_header.dtype.kind not in "fiu":
            message = (
                f"must be a 2-D real array, got {scores_header.dtype} with shape "
                f"{scores_header.shape}"
            )
            structure.add(message, "scores")
        structure.raise_if_any()
        captions, images = headers["caption_ids"].shape[0], headers["image_ids"].shape[0]
        if scores_header.shape != (captions, images):
            structure.add(
                f"shape {scores_header.shape} does not match (len(caption_ids), "
                f"len(image_ids)) = ({captions}, {images})",
                "scores",
            )
            structure.raise_if_any()
        for key, count, limit in (
            ("caption_ids", captions, bounds.max_rows),
            ("image_ids", images, bounds.max_columns),
        ):
            if limit is not None and count > limit:
                structure.add(
                    f"holds {count:,} ids, but the ground truth has far fewer (at most "
                    f"{limit:,} accepted, Limits.max_rows_per_example); the scores were not "
                    "read",
                    key,
                )
        structure.raise_if_any()
        caption_ids = _id_values(archive.read("caption_ids"), "caption_ids", structure)
        image_ids = _id_values(archive.read("image_ids"), "image_ids", structure)
        structure.raise_if_any()
        scores = archive.read("scores")
    if scores.dtype.kind == "f":
        _log_non_finite(scores, caption_ids, image_ids, log)
    return ScoreMatrixPredictions(scores, caption_ids, image_ids)


def _id_values(ids: np.ndarray, key: str, structure: ProblemLog) -> np.ndarray:
    """int64 ids; unsigned values beyond 2**63-1 are problems (a cast would wrap them to
    negative ids)."""
    if ids.dtype.kind == "u" and ids.dtype.itemsize >= 8:
        big = np.flatnonzero(ids > np.uint64(_INT_MAX))
        for index in big[: structure.room()]:
            structure.add(
                f"{key} must be integers from -2**63 to 2**63-1, got {int(ids[index])}",
                f"{key} index {int(index)}",
            )
        structure.skip(len(big) - min(len(big), structure.room()))
    return ids.astype(np.int64, copy=False)


def _log_non_finite(
    scores: np.ndarray, caption_ids: np.ndarray, image_ids: np.ndarray, log: ProblemLog
) -> None:
    """One problem per caption row holding NaN or an infinity (checked in blocks of rows:
    no temporary as large as the matrix)."""
    step = max(1, (1 << 24) // max(1, scores.shape[1]))
    bad_rows = 0
    for start in range(0, scores.shape[0], step):
        finite = np.isfinite(scores[start : start + step]).all(axis=1)
        for offset in np.flatnonzero(~finite):
            bad_rows += 1
            if not log.room():
                log.skip(1)
                continue
            row = start + int(offset)
            col = int(np.flatnonzero(~np.isfinite(scores[row]))[0])
            log.add(
                f"scores row {row} has a non-finite value (first: image_id "
                f"{int(image_ids[col])} = {scores[row, col]})",
                "scores",
                int(caption_ids[row]),
                "caption_id",
            )


def _ranked_value(bounds: Bounds) -> ValueCheck:
    """A check of a ranked list: at least ``MIN_RANKED`` distinct integer ids, and no
    more than the candidates allow."""

    longest = bounds.max_columns
    candidates = bounds.expected.columns if bounds.expected is not None else None

    def check(value: Any) -> tuple[Any, str | None]:
        if type(value) is not list:
            return None, f"must be an array of image ids, got {_type_name(value)}"
        if len(value) < MIN_RANKED:
            return None, f"must list at least {MIN_RANKED} image ids, got {len(value)}"
        if longest is not None and len(value) > longest:
            return None, (
                f"lists {len(value):,} image ids, but the split has {candidates:,} candidate images"
            )
        if not all(_is_int(v) for v in value):
            bad = next(v for v in value if not _is_int(v))
            return None, f"must hold integers only, got {_type_name(bad)} {_short(bad)}"
        if len(set(value)) != len(value):
            seen: set[int] = set()
            dup = next(v for v in value if v in seen or seen.add(v))  # type: ignore[func-returns-value]
            return None, f"lists image id {dup} more than once"
        return value, None

    return check


def _parse_ranked(data: bytes, log: ProblemLog, bounds: Bounds) -> RankedListPredictions:
    ids, lists, positions, rejected = _parse_json_rows(
        data,
        id_field="caption_id",
        id_kind=int,
        value_field="image_ids",
        check=_ranked_value(bounds),
        example='{"caption_id": 1, "image_ids": [ten or more image ids, best first]}',
        what="a JSON array of ranked lists",
        log=log,
        bounds=bounds,
    )
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    ranked = np.fromiter(
        itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum())
    )
    return RankedListPredictions(
        ids, positions, "record", "caption_id", ranked, lengths, rejected=rejected
    )


# --------------------------------------------------------------------------- id matching


@dataclass(frozen=True, eq=False)
class IdMatch:
    """How prediction rows map onto ground-truth rows.

    ``gt_row[p]``: ground-truth row of prediction row p (-1: unknown id).
    ``pred_row[g]``: prediction row for ground-truth row g (-1: no prediction); with
    duplicates the first occurrence (duplicates are problems anyway).
    """

    gt_row: np.ndarray
    pred_row: np.ndarray


def match_ids(
    gt_ids: np.ndarray,
    rows: Rows,
    log: ProblemLog,
    *,
    required: np.ndarray | None = None,
    unknown_hint: str = "not in the ground truth of this split",
) -> IdMatch:
    """Match prediction ids to ground-truth ids and log unknown, duplicate and missing ids.

    ``required`` (bool per ground-truth row, default all) marks the rows that must have a
    prediction; other known rows may be predicted (e.g. GQA all-questions ids) or not.
    Vectorised (sort + binary search): 214k ids take milliseconds.
    """
    gt = np.asarray(gt_ids)
    pred = np.asarray(rows.ids)
    # Object arrays of str (e.g. from h5py) become fixed-width unicode: sortable, fast.
    if gt.dtype == object:
        gt = gt.astype(str)
    if pred.dtype == object:
        pred = pred.astype(str)
    n_gt = len(gt)
    sorter = np.argsort(gt, kind="stable")
    sorted_gt = gt[sorter]
    if n_gt and len(pred):
        pos = np.minimum(np.searchsorted(sorted_gt, pred), n_gt - 1)
        found = sorted_gt[pos] == pred
        gt_row = np.where(found, sorter[pos], -1)
    else:
        found = np.zeros(len(pred), dtype=bool)
        gt_row = np.full(len(pred), -1, dtype=np.int64)

    unknown = np.flatnonzero(~found)
    listed = unknown[: log.room()]
    for p in listed:
        log.add(f"unknown {rows.id_field}: {unknown_hint}", rows.where(p), pred[p], rows.id_field)
    log.skip(len(unknown) - len(listed))

    pred_row = np.full(n_gt, -1, dtype=np.int64)
    known = np.flatnonzero(found)
    # np.unique's return_index gives FIRST occurrences: the first row of an id wins.
    unique_rows, first = np.unique(gt_row[known], return_index=True)
    pred_row[unique_rows] = known[first]
    is_first = np.zeros(len(known), dtype=bool)
    is_first[first] = True
    duplicates = known[~is_first]
    listed = duplicates[: log.room()]
    for p in listed:
        first = int(pred_row[gt_row[p]])
        log.add(
            f"duplicate {rows.id_field} (first given at {rows.where(first)})",
            rows.where(p),
            pred[p],
            rows.id_field,
        )
    log.skip(len(duplicates) - len(listed))

    need = np.ones(n_gt, dtype=bool) if required is None else np.asarray(required, dtype=bool)
    if len(rows.rejected):
        need = need & ~np.isin(gt, np.asarray(rows.rejected).astype(gt.dtype, copy=False))
    missing = np.flatnonzero(need & (pred_row < 0))
    listed = missing[: log.room()]
    for g in listed:
        log.add(f"no prediction for this {rows.id_field}", None, gt[g], rows.id_field)
    log.skip(len(missing) - len(listed))
    return IdMatch(gt_row, pred_row)


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class PredictionFormat:
    """What a prediction format looks like, to tell a participant which one they sent.

    ``kind`` is how the content is recognised: ``json`` (an array of records holding
    ``keys``), ``csv`` (``id,label`` lines whose label is one of ``labels``, any case) or
    ``npz`` (an archive holding the arrays ``keys``).
    """

    name: str  # "an NLVR2 predictions CSV": reads well after "this looks like"
    kind: str
    keys: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


_JSON_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')
#: Bytes looked at to recognise a format: enough for the first records or lines.
_SNIFF_BYTES = 4096


def sniff_format(data: bytes, formats: Sequence[PredictionFormat]) -> PredictionFormat | None:
    """The format among ``formats`` that (already decompressed) ``data`` looks like.

    Looks only at the first few KiB (record keys, the first line, the archive's names), so
    a truncated or otherwise broken file is still recognised; None when nothing matches.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            names = set(zipfile.ZipFile(upload.MemoryReader(data)).namelist())
        except READ_ERRORS:  # a damaged or hostile archive is recognised by nothing
            return None
        arrays = {n.removesuffix(".npy") for n in names}
        return next((f for f in formats if f.kind == "npz" and set(f.keys) <= arrays), None)
    head = data[:_SNIFF_BYTES]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{"):
        keys = {k.decode() for k in _JSON_KEY.findall(head)}
        matches = [f for f in formats if f.kind == "json" and set(f.keys) <= keys]
        return max(matches, key=lambda f: len(f.keys), default=None)
    lines = head.decode("utf-8-sig", errors="replace").splitlines()
    first = next((line for line in lines if line.strip()), "")
    fields = first.strip().split(",")
    if len(fields) != 2:
        return None
    label = fields[1].strip().lower()
    return next(
        (f for f in formats if f.kind == "csv" and label in {x.lower() for x in f.labels}),
        None,
    )


# --------------------------------------------------------------------------- writers
#
# The inverse of the parsers: official files from ids and values, so that baselines, the
# chance-level submissions (``chance``) and the tests write exactly what a participant
# would upload.


def write_answers(
    ids: Sequence[Any] | np.ndarray,
    answers: Sequence[str],
    *,
    id_field: str,
    answer_field: str,
) -> bytes:
    """``[{id_field: id, answer_field: answer}]`` (vqa2, vgqa: question_id/answer; gqa:
    questionId/prediction)."""
    return orjson.dumps(
        [{id_field: i, answer_field: a} for i, a in zip(_python(ids), list(answers), strict=True)]
    )


def write_choices(
    ids: Sequence[int] | np.ndarray,
    choices: Sequence[int] | np.ndarray,
    *,
    id_field: str,
    choice_field: str,
) -> bytes:
    """``[{id_field: id, choice_field: int}]`` (visual7w qa_id/box_id, guesswhat
    game_id/object_id)."""
    return orjson.dumps(
        [
            {id_field: i, choice_field: c}
            for i, c in zip(_python(ids), _python(choices), strict=True)
        ]
    )


def write_refexp(ids: Sequence[int] | np.ndarray, boxes: np.ndarray) -> bytes:
    """``[{"sent_id": id, "bbox": [x, y, w, h]}]``; float64 values keep every bit."""
    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist()
    return orjson.dumps(
        [{"sent_id": i, "bbox": b} for i, b in zip(_python(ids), rows, strict=True)]
    )


def write_labels_csv(
    ids: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray, names: Sequence[str]
) -> bytes:
    """``id,label`` lines, ``label = names[code]`` (nlvr2: False/True; snli_ve: the three
    class names)."""
    return "".join(
        f"{i},{names[c]}\n" for i, c in zip(_python(ids), _python(labels), strict=True)
    ).encode()


def write_score_matrix(
    caption_ids: Sequence[int] | np.ndarray, scores: np.ndarray, *, image_ids: np.ndarray
) -> bytes:
    """The retrieval NPZ: ``scores`` [captions x images], ``caption_ids``, ``image_ids``."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        scores=np.asarray(scores),
        caption_ids=np.asarray(caption_ids, dtype=np.int64),
        image_ids=np.asarray(image_ids, dtype=np.int64),
    )
    return buffer.getvalue()


def write_ranked_lists(
    caption_ids: Sequence[int] | np.ndarray, ranked: Sequence[Sequence[int]]
) -> bytes:
    """``[{"caption_id": id, "image_ids": [best first]}]``."""
    return orjson.dumps(
        [
            {"caption_id": c, "image_ids": _python(r)}
            for c, r in zip(_python(caption_ids), ranked, strict=True)
        ]
    )


def _python(values: Any) -> list[Any]:
    """Python scalars (numpy's are not JSON types)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


# --------------------------------------------------------------------------- packing

PredictionContainer = (
    AnswerPredictions
    | BoxPredictions
    | ChoicePredictions
    | LabelPredictions
    | ScoreMatrixPredictions
    | RankedListPredictions
)

#: The containers ``unpack`` may rebuild, by class name (nothing else is ever imported).
CONTAINERS: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (
        AnswerPredictions,
        BoxPredictions,
        ChoicePredictions,
        LabelPredictions,
        ScoreMatrixPredictions,
        RankedListPredictions,
    )
}


def num_rows(parsed: Any) -> int:
    """Rows a parsed file kept (captions for a score matrix)."""
    if isinstance(parsed, ScoreMatrixPredictions):
        return len(parsed.caption_ids)
    return len(parsed)


def pack(parsed: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A parsed container as (JSON-ready header, plain arrays), for ``np.savez``.

    Arrays stay arrays (a score matrix is not copied); a list of strings (answers) is
    stored as JSON bytes, which keeps any string exactly and, unlike a fixed-width numpy
    string array, costs no more than the strings; other fields (names, units) go in the
    header. ``unpack`` reverses it; no pickle is involved either way.
    """
    name = type(parsed).__name__
    if CONTAINERS.get(name) is not type(parsed):
        raise TypeError(f"cannot pack a {name}")
    header: dict[str, Any] = {"container": name, "fields": {}, "json": []}
    arrays: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(parsed):
        value = getattr(parsed, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value.astype(str) if value.dtype == object else value
        elif isinstance(value, list):
            arrays[f.name] = np.frombuffer(orjson.dumps(value), dtype=np.uint8)
            header["json"].append(f.name)
        else:
            header["fields"][f.name] = list(value) if isinstance(value, tuple) else value
    return header, arrays


def unpack(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
    """The container ``pack`` described; ``ValueError`` if the header names none."""
    cls = CONTAINERS.get(str(header.get("container")))
    if cls is None:
        raise ValueError(f"unknown prediction container {header.get('container')!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in header.get("json", ()):
            values[f.name] = orjson.loads(arrays[f.name].tobytes())
        elif f.name in arrays:
            values[f.name] = arrays[f.name]
        elif f.name in header["fields"]:
            value = header["fields"][f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
        else:
            raise ValueError(f"saved {cls.__name__} lacks its field {f.name!r}")
    return cls(**values)
