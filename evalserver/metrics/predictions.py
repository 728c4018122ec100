"""Reading, parsing and validating prediction files, for every task, with messages for people.

A participant who uploads a broken file must learn everything that is wrong with it in one
go, each problem named by its line or record and its example id, never by a stack trace:
the official scripts either crash (KeyError, assert) or, worse, score a partial file. So
parsing here never raises on bad content except ``ValidationError``, which carries ALL the
problems found (listed up to a cap, with the total count).

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
import gzip
import io
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

__all__ = [
    "CONTAINERS",
    "MAX_PROBLEMS",
    "AnswerPredictions",
    "BoxPredictions",
    "ChoicePredictions",
    "IdMatch",
    "LabelPredictions",
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

#: Problems listed in full; the rest are only counted.
MAX_PROBLEMS = 50
#: String ids longer than this are rejected (no release id comes close; it bounds memory).
MAX_ID_LENGTH = 256
#: Minimum length of a ranked list of image ids (R@10 needs ten).
MIN_RANKED = 10

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a prediction file, located by line/record and example id."""

    message: str
    location: str | None = None  # "line 12", "record 3", "scores"
    id: str | None = None  # the example id, as text
    id_field: str | None = None  # "question_id", "identifier", ...

    def __str__(self) -> str:
        where = [w for w in (self.location, self._id_text()) if w]
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def _id_text(self) -> str | None:
        if self.id is None:
            return None
        return f"{self.id_field} {self.id}" if self.id_field else self.id


class ValidationError(Exception):
    """A prediction file cannot be scored; ``problems`` lists why (at most ``MAX_PROBLEMS``).

    ``total`` counts every problem found, listed or not, so a message can say "and 12,000
    more" instead of flooding the participant.
    """

    def __init__(self, problems: Sequence[Problem], total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        super().__init__(self._summary())

    def _summary(self) -> str:
        lines = [f"the prediction file has {self.total} problem(s):"]
        lines += [f"  {p}" for p in self.problems]
        hidden = self.total - len(self.problems)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)


class ProblemLog:
    """Collects problems up to a cap while counting all of them."""

    def __init__(self, cap: int = MAX_PROBLEMS) -> None:
        self.cap = cap
        self.problems: list[Problem] = []
        self.total = 0

    def __bool__(self) -> bool:
        return self.total > 0

    def room(self) -> int:
        """How many more problems would be listed (callers build only that many messages)."""
        return max(0, self.cap - len(self.problems))

    def add(
        self,
        message: str,
        location: str | None = None,
        id: Any = None,
        id_field: str | None = None,
    ) -> None:
        self.total += 1
        if len(self.problems) < self.cap:
            text = None if id is None else str(id)
            self.problems.append(Problem(message, location, text, id_field))

    def skip(self, count: int) -> None:
        """Count problems that were found in bulk but are not listed."""
        self.total += max(0, count)

    def extend(self, problems: Sequence[Problem]) -> None:
        for problem in problems:
            self.total += 1
            if len(self.problems) < self.cap:
                self.problems.append(problem)

    def listing(self) -> list[Problem]:
        """The listed problems, plus one closing entry counting those not listed."""
        hidden = self.total - len(self.problems)
        tail = [Problem(f"... and {hidden} more problem(s) not listed")] if hidden > 0 else []
        return [*self.problems, *tail]

    def raise_if_any(self) -> None:
        if self.total:
            raise ValidationError(self.problems, self.total)


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
    """Per caption, image ids best first; ``ranked`` is padded with -1 past ``lengths``."""

    ranked: np.ndarray  # int64 [N, L]
    lengths: np.ndarray  # int64 [N]


# --------------------------------------------------------------------------- reading


def read_source(source: Source, *, max_bytes: int | None = None) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic.

    ``max_bytes`` bounds the DECOMPRESSED size (a small .gz can expand to gigabytes).
    A missing file is the caller's error (OSError), not a problem of the submission.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()  # type: ignore[union-attr]
    else:
        data = Path(source).read_bytes()  # type: ignore[arg-type]
    if data[:2] != b"\x1f\x8b":
        if max_bytes is not None and len(data) > max_bytes:
            raise ValidationError([Problem(f"the file is larger than {max_bytes} bytes")])
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValidationError([Problem(f"not a valid gzip file: {exc}")]) from None
    if max_bytes is not None and len(out) > max_bytes:
        raise ValidationError([Problem(f"the decompressed file is larger than {max_bytes} bytes")])
    return out


def _load_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError([Problem(f"not valid JSON: {exc}")]) from None


def _records(data: bytes, example: str) -> list[Any]:
    value = _load_json(data)
    if not isinstance(value, list):
        kind = type(value).__name__
        raise ValidationError(
            [Problem(f"expected a JSON array of records like {example}, got a JSON {kind}")]
        )
    return value


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _is_int(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _check_id(value: Any, kind: type, field: str) -> str | None:
    """None if ``value`` is a valid id of ``kind``, else the reason."""
    if kind is int:
        if _is_int(value):
            return None
        return f"{field} must be an integer, got {_type_name(value)} {_short(value)}"
    if type(value) is not str:
        return f"{field} must be a string, got {_type_name(value)} {_short(value)}"
    if not value:
        return f"{field} is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{field} is longer than {MAX_ID_LENGTH} characters"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def id_array(ids: Sequence[Any], kind: type) -> np.ndarray:
    """Ids as a sortable numpy array: int64, or fixed-width unicode for strings."""
    if kind is int:
        return np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return np.zeros(0, dtype="<U1")
    return np.asarray(ids, dtype=str).reshape(-1)


ValueCheck = Callable[[Any], tuple[Any, str | None]]


def _parse_json_rows(
    data: bytes,
    *,
    id_field: str,
    id_kind: type,
    value_field: str,
    check: ValueCheck,
    example: str,
    log: ProblemLog,
) -> tuple[np.ndarray, list[Any], np.ndarray, np.ndarray]:
    """Walk a JSON array of records; keep good rows, log every bad one.

    Returns ids, values, positions of the good rows and the ids of rows rejected for a bad
    value (their id was fine).
    """
    records = _records(data, example)
    rejected: list[Any] = []
    ids: list[Any] = []
    values: list[Any] = []
    positions: list[int] = []
    for number, record in enumerate(records, start=1):
        where = f"record {number}"
        if type(record) is not dict:
            log.add(f"expected an object like {example}, got {_type_name(record)}", where)
            continue
        if id_field not in record:
            log.add(f"missing key {id_field!r}", where)
            continue
        rid = record[id_field]
        reason = _check_id(rid, id_kind, id_field)
        if reason:
            log.add(reason, where)
            continue
        if value_field not in record:
            log.add(f"missing key {value_field!r}", where, rid, id_field)
            rejected.append(rid)
            continue
        value, reason = check(record[value_field])
        if reason:
            log.add(f"{value_field} {reason}", where, rid, id_field)
            rejected.append(rid)
            continue
        ids.append(rid)
        values.append(value)
        positions.append(number)
    if not records:
        log.add("the file holds no predictions (empty array)")
    positions_array = np.asarray(positions, dtype=np.int64)
    return id_array(ids, id_kind), values, positions_array, id_array(rejected, id_kind)


def _string_value(value: Any) -> tuple[Any, str | None]:
    if type(value) is str:
        return value, None
    return None, f"must be a string, got {_type_name(value)} {_short(value)}"


def _int_value(value: Any) -> tuple[Any, str | None]:
    if _is_int(value):
        return value, None
    return None, f"must be an integer, got {_type_name(value)} {_short(value)}"


def _box_value(value: Any) -> tuple[Any, str | None]:
    if type(value) is not list or len(value) != 4:
        shape = f"{len(value)} values" if type(value) is list else _type_name(value)
        return None, f"must be [x, y, w, h] (4 numbers), got {shape}"
    if not all(type(v) in (int, float) for v in value):
        return None, f"must hold 4 numbers, got {_short(value)}"
    box = [float(v) for v in value]
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
# (``check_file``); only a file that cannot be read at all still raises.


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
) -> AnswerPredictions:
    """A JSON array of ``{id_field: id, answer_field: str}``."""
    own, log = log is None, ProblemLog() if log is None else log
    sample_id = "1" if id_kind is int else '"1"'
    ids, answers, positions, rejected = _parse_json_rows(
        read_source(source),
        id_field=id_field,
        id_kind=id_kind,
        value_field=answer_field,
        check=_string_value,
        example=f'{{"{id_field}": {sample_id}, "{answer_field}": "..."}}',
        log=log,
    )
    _finish(log, own)
    return AnswerPredictions(ids, positions, "record", id_field, answers, rejected=rejected)


def parse_vqa(source: Source, *, log: ProblemLog | None = None) -> AnswerPredictions:
    """vqa2 and vgqa: ``[{"question_id": int, "answer": str}]`` (vgqa: question_id = qa_id)."""
    return parse_answers(
        source, id_field="question_id", id_kind=int, answer_field="answer", log=log
    )


def parse_gqa(source: Source, *, log: ProblemLog | None = None) -> AnswerPredictions:
    """``[{"questionId": str, "prediction": str}]``; ids are strings and never cast."""
    return parse_answers(
        source, id_field="questionId", id_kind=str, answer_field="prediction", log=log
    )


def parse_refexp(source: Source, *, log: ProblemLog | None = None) -> BoxPredictions:
    """``[{"sent_id": int, "bbox": [x, y, w, h]}]`` with finite numbers, w and h >= 0."""
    own, log = log is None, ProblemLog() if log is None else log
    ids, boxes, positions, rejected = _parse_json_rows(
        read_source(source),
        id_field="sent_id",
        id_kind=int,
        value_field="bbox",
        check=_box_value,
        example='{"sent_id": 1, "bbox": [x, y, w, h]}',
        log=log,
    )
    _finish(log, own)
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return BoxPredictions(ids, positions, "record", "sent_id", array, rejected=rejected)


def parse_choices(
    source: Source, *, id_field: str, choice_field: str, log: ProblemLog | None = None
) -> ChoicePredictions:
    """``[{id_field: int, choice_field: int}]``."""
    own, log = log is None, ProblemLog() if log is None else log
    ids, choices, positions, rejected = _parse_json_rows(
        read_source(source),
        id_field=id_field,
        id_kind=int,
        value_field=choice_field,
        check=_int_value,
        example=f'{{"{id_field}": 1, "{choice_field}": 2}}',
        log=log,
    )
    _finish(log, own)
    array = np.asarray(choices, dtype=np.int64).reshape(-1)
    return ChoicePredictions(
        ids, positions, "record", id_field, array, choice_field, rejected=rejected
    )


def parse_pointing(source: Source, *, log: ProblemLog | None = None) -> ChoicePredictions:
    """visual7w: ``[{"qa_id": int, "box_id": int}]``."""
    return parse_choices(source, id_field="qa_id", choice_field="box_id", log=log)


def parse_guesswhat(source: Source, *, log: ProblemLog | None = None) -> ChoicePredictions:
    """guesswhat: ``[{"game_id": int, "object_id": int}]``."""
    return parse_choices(source, id_field="game_id", choice_field="object_id", log=log)


# --------------------------------------------------------------------------- CSV tasks


def _text_lines(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            [Problem(f"not UTF-8 text (byte {exc.start}: {exc.reason})")]
        ) from None
    return text.splitlines()


def _parse_csv_labels(
    data: bytes,
    *,
    id_field: str,
    label_field: str,
    names: tuple[str, ...],
    log: ProblemLog,
) -> LabelPredictions:
    """``id,label`` per line, no header; blank lines skipped; labels case-insensitive."""
    lookup = {name.lower(): i for i, name in enumerate(names)}
    allowed = " or ".join(names)
    ids: list[str] = []
    labels: list[int] = []
    positions: list[int] = []
    rejected: list[str] = []
    for number, line in enumerate(_text_lines(data), start=1):
        where = f"line {number}"
        if not line.strip():
            continue
        fields = line.rstrip("\r").split(",")
        if len(fields) != 2:
            log.add(
                f"expected 2 comma-separated fields {id_field},{label_field}, got {len(fields)}",
                where,
            )
            continue
        rid, label = fields
        reason = _check_id(rid, str, id_field)
        if reason:
            log.add(reason, where)
            continue
        if rid != rid.strip():
            log.add(f"{id_field} has surrounding spaces: {rid!r}", where)
            continue
        code = lookup.get(label.lower())
        if code is None:
            header = number == 1 and label.strip().lower() == label_field.lower()
            hint = " (no header line is expected)" if header else ""
            log.add(f"{label_field} must be {allowed}, got {label!r}{hint}", where, rid, id_field)
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


def parse_nlvr2(source: Source, *, log: ProblemLog | None = None) -> LabelPredictions:
    """The official CSV: ``identifier,prediction`` per line, True/False in any case."""
    own, log = log is None, ProblemLog() if log is None else log
    rows = _parse_csv_labels(
        read_source(source),
        id_field="identifier",
        label_field="prediction",
        names=NLVR2_LABELS,
        log=log,
    )
    _finish(log, own)
    return rows


def parse_snli_ve(source: Source, *, log: ProblemLog | None = None) -> LabelPredictions:
    """``pairID,label`` lines, or a JSON array ``[{"pairID": str, "label": str}]``."""
    own, log = log is None, ProblemLog() if log is None else log
    data = read_source(source)
    if data.lstrip()[:1] == b"[":
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
            log=log,
        )
        codes = np.asarray(labels, dtype=np.int8)
        rows = LabelPredictions(
            ids, positions, "record", "pairID", codes, SNLI_VE_LABELS, rejected=rejected
        )
    else:
        rows = _parse_csv_labels(
            data, id_field="pairID", label_field="label", names=SNLI_VE_LABELS, log=log
        )
    _finish(log, own)
    return rows


# --------------------------------------------------------------------------- retrieval


def parse_retrieval(
    source: Source, *, log: ProblemLog | None = None
) -> ScoreMatrixPredictions | RankedListPredictions:
    """An NPZ score matrix (zip content) or a JSON array of ranked lists."""
    own, log = log is None, ProblemLog() if log is None else log
    data = read_source(source)
    if data[:4] == b"PK\x03\x04":
        parsed: ScoreMatrixPredictions | RankedListPredictions = _parse_npz(data, log)
    elif data[:6] == b"\x93NUMPY":
        message = "a single .npy array was given; expected an .npz with 3 arrays"
        raise ValidationError([Problem(message + " (scores, caption_ids, image_ids)")])
    else:
        parsed = _parse_ranked(data, log)
    _finish(log, own)
    return parsed


def _parse_npz(data: bytes, log: ProblemLog) -> ScoreMatrixPredictions:
    """Structural problems (missing array, wrong shape) raise at once: nothing can be
    checked further; non-finite scores are logged per caption row."""
    structure = ProblemLog()
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValidationError([Problem(f"not a readable .npz file: {exc}")]) from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in ("scores", "caption_ids", "image_ids"):
            if key not in archive.files:
                held = sorted(archive.files)
                structure.add(f"the .npz has no array {key!r} (it holds {held})", key)
                continue
            try:
                arrays[key] = archive[key]
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                structure.add(f"cannot read the array: {exc}", key)
    structure.raise_if_any()
    scores, caption_ids, image_ids = arrays["scores"], arrays["caption_ids"], arrays["image_ids"]
    for key, ids in (("caption_ids", caption_ids), ("image_ids", image_ids)):
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            message = f"must be a 1-D integer array, got {ids.dtype} with shape {ids.shape}"
            structure.add(message, key)
    if scores.ndim != 2 or scores.dtype.kind not in "fiu":
        message = f"must be a 2-D real array, got {scores.dtype} with shape {scores.shape}"
        structure.add(message, "scores")
    structure.raise_if_any()
    if scores.shape != (len(caption_ids), len(image_ids)):
        structure.add(
            f"shape {scores.shape} does not match (len(caption_ids), len(image_ids)) = "
            f"({len(caption_ids)}, {len(image_ids)})",
            "scores",
        )
        structure.raise_if_any()
    if scores.dtype.kind == "f":
        finite = np.isfinite(scores).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            listed = bad[: log.room()]
            for row in listed:
                col = int(np.flatnonzero(~np.isfinite(scores[row]))[0])
                log.add(
                    f"scores row {row} has a non-finite value (first: image_id "
                    f"{int(image_ids[col])} = {scores[row, col]})",
                    "scores",
                    int(caption_ids[row]),
                    "caption_id",
                )
            log.skip(len(bad) - len(listed))
    return ScoreMatrixPredictions(
        scores, caption_ids.astype(np.int64, copy=False), image_ids.astype(np.int64, copy=False)
    )


def _ranked_value(value: Any) -> tuple[Any, str | None]:
    if type(value) is not list:
        return None, f"must be an array of image ids, got {_type_name(value)}"
    if len(value) < MIN_RANKED:
        return None, f"must list at least {MIN_RANKED} image ids, got {len(value)}"
    if not all(_is_int(v) for v in value):
        bad = next(v for v in value if not _is_int(v))
        return None, f"must hold integers only, got {_type_name(bad)} {_short(bad)}"
    if len(set(value)) != len(value):
        seen: set[int] = set()
        dup = next(v for v in value if v in seen or seen.add(v))  # type: ignore[func-returns-value]
        return None, f"lists image id {dup} more than once"
    return value, None


def _parse_ranked(data: bytes, log: ProblemLog) -> RankedListPredictions:
    ids, lists, positions, rejected = _parse_json_rows(
        data,
        id_field="caption_id",
        id_kind=int,
        value_field="image_ids",
        check=_ranked_value,
        example='{"caption_id": 1, "image_ids": [ten or more image ids, best first]}',
        log=log,
    )
    lengths = np.asarray([len(v) for v in lists], dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else MIN_RANKED
    ranked = np.full((len(lists), width), -1, dtype=np.int64)
    for row, values in enumerate(lists):
        ranked[row, : len(values)] = values
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
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError, EOFError):
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
