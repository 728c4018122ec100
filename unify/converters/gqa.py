"""GQA (Hudson & Manning 2019), balanced questions of release 1.2.

Question ids are digit strings of different lengths and stay strings (never cast).
``minval`` = the 3,000 val balanced questions with the largest id compared as integers;
``trainval`` = train + the other val questions; ``testdev`` as released. The optional
all-questions files feed the consistency metric: ``minval_all`` keeps the val_all questions
on minval images and ``testdev_all`` the whole testdev_all file (role extra). The files are
hundreds of MB to GB, so they are streamed, never loaded whole.

Every answered question keeps ``steps``, its number of reasoning steps as the official
``eval.py`` counts them (:func:`program_steps`), for accuracy per steps. The optional
``val_choices.json`` / ``testdev_choices.json`` (the evaluation download: per question the
``valid`` and ``plausible`` answers) become the ragged columns ``valid_answers`` and
``plausible_answers`` of ``minval`` / ``testdev``, the splits that are scored, so validity
and plausibility are ground truth of the file; every question of such a split needs an
entry. The ``submission`` questions (``submission_all_questions.json``, no answers) are a
hidden split: a private build (``--organiser``) takes their answers from the organisers'
file of the same name, every record the public question of its id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import hidden, rules
from unify.converters.base import BuildContext, Converter, RawFile, require
from unify.errors import DataError, RecordError
from unify.images import gqa_key
from unify.rules import Digits, NonEmpty, Unique
from unify.table import Ragged, SplitTable, TaskTable
from unify.vocab import Vocabulary

MINVAL_SIZE = 3000
MIN_ANSWER_COUNT = 9

#: The official ``getStepsNum``: a program operation whose "operation: argument" text
#: contains one of these is not a reasoning step (the final query/exist step).
NON_STEPS = ("exist", "query: name", "choose name")
#: Choices file -> the balanced split whose questions it gives valid/plausible answers for.
CHOICES = {"val_choices.json": "minval", "testdev_choices.json": "testdev"}
CHOICE_FIELDS = (("valid", "valid_answers"), ("plausible", "plausible_answers"))
#: The challenge's questions (no answers in the release); the organisers' file of the same
#: name under ``<organiser>/gqa/`` holds them with their answers (``--organiser``).
SUBMISSION = "submission_all_questions.json"

#: Rules of every question file (the key of a record is its question id).
QUESTION_RULES = (
    NonEmpty("questionId"),
    Digits("questionId"),
    Unique("questionId", "question id"),
)
#: Checked inline on the fast path (documented with the rules): ``imageId`` is ASCII
#: letters and digits (digits: a Visual Genome id), ``isBalanced`` a JSON boolean (the
#: string "false" is not false), ``fullAnswer``/``groups.*`` a string or null, ``entailed``
#: a list of question-id strings (never an object stored as its repr).
INLINE_RULES = (
    "`imageId`: ASCII letters and digits, never empty",
    "`isBalanced`: a JSON boolean (absent: true)",
    "`fullAnswer`, `groups.global`, `groups.local`: a string or null",
    "`entailed`: a list of question-id strings",
)
CHOICE_RULES = ("`valid`, `plausible`: lists of answer strings",)

ANSWERED_FIELDS = (
    "question",
    "answer",
    "full_answer",
    "structural",
    "semantic",
    "detailed",
    "group_global",
    "group_local",
)


def program_steps(semantic: list[dict[str, Any]]) -> int:
    """Reasoning steps of a question's ``semantic`` program, as the official ``eval.py``
    counts them: operations except those whose "operation: argument" text contains
    ``exist``, ``query: name`` or ``choose name`` (substring tests, as the script does)."""
    steps = 0
    for op in semantic:
        text = f"{op['operation']}: {op['argument']}"
        if not ("exist" in text or "query: name" in text or "choose name" in text):
            steps += 1
    return steps


class Gqa(Converter):
    version = "1.1.0"  # 1.1: steps; valid/plausible answers from the choices files
    homepage = "https://cs.stanford.edu/people/dorarad/gqa/download.html"
    organiser_files = (RawFile(SUBMISSION, False, "submission questions with their answers"),)
    answer_columns = (
        *ANSWERED_FIELDS[1:],
        "label",
        "steps",
        "entailed",
        *(column for _, column in CHOICE_FIELDS),
    )
    field_rules = MappingProxyType(
        {"question files": (*INLINE_RULES, *QUESTION_RULES), "choices files": CHOICE_RULES}
    )
    raw_files = (
        RawFile("train_balanced_questions.json", True, "balanced training questions"),
        RawFile("val_balanced_questions.json", True, "balanced validation questions"),
        RawFile("testdev_balanced_questions.json", True, "balanced test-dev questions"),
        RawFile("val_all_questions.json", False, "all val questions (consistency)"),
        RawFile("testdev_all_questions.json", False, "all test-dev questions (consistency)"),
        RawFile(SUBMISSION, False, "challenge submission questions, no answers"),
        RawFile("val_choices.json", False, "valid/plausible answers of val questions"),
        RawFile("testdev_choices.json", False, "valid/plausible answers of testdev questions"),
    )

    def convert(self, ctx: BuildContext) -> TaskTable:
        train = self._read(ctx, "train_balanced_questions.json")
        val = self._read(ctx, "val_balanced_questions.json")
        testdev = self._read(ctx, "testdev_balanced_questions.json")

        counts = Counter(a for part in (train, val) for a in part["answer"])
        vocab = Vocabulary.from_counts(
            "gqa",
            counts,
            MIN_ANSWER_COUNT,
            ["gqa/train_balanced", "gqa/val_balanced"],
            normalized=False,
        )
        ctx.vocabularies[vocab.name] = vocab

        val_ids = np.array([int(i) for i in val["id"]], dtype=object)  # Digits: safe
        order = sorted(range(len(val_ids)), key=lambda i: val_ids[i])
        holdout = np.zeros(len(val_ids), dtype=bool)
        holdout[order[max(0, len(order) - MINVAL_SIZE) :]] = True
        minval_rows = np.flatnonzero(holdout)

        splits = [
            _table(
                "trainval",
                "train",
                [(train, np.arange(len(train["id"]))), (val, np.flatnonzero(~holdout))],
                vocab,
            ),
            _table("minval", "eval", [(val, minval_rows)], vocab),
            _table("testdev", "eval", [(testdev, np.arange(len(testdev["id"])))], vocab),
        ]
        report: dict[str, Any] = {"vocabulary_size": len(vocab)}
        if self.has_file(ctx, "val_all_questions.json"):
            minval_images = {val["image"][i] for i in minval_rows}
            part = self._read(ctx, "val_all_questions.json", keep_images=minval_images)
            splits.append(
                _table("minval_all", "extra", [(part, np.arange(len(part["id"])))], vocab)
            )
        if self.has_file(ctx, "testdev_all_questions.json"):
            part = self._read(ctx, "testdev_all_questions.json")
            splits.append(
                _table("testdev_all", "extra", [(part, np.arange(len(part["id"])))], vocab)
            )
        if self.has_file(ctx, SUBMISSION):
            part = self._read(ctx, SUBMISSION, answered=False)
            splits.append(self._submission(ctx, part, vocab))
        elif (organiser := self.organiser_file(ctx, SUBMISSION)) is not None:
            raise DataError(
                f"{organiser}: organiser answers of the submission questions, but the raw "
                f"folder has no {SUBMISSION} to pair them with"
            )
        for file, split_name in CHOICES.items():
            if self.has_file(ctx, file):
                split = next(s for s in splits if s.name == split_name)
                split.columns.update(self._choices(ctx, file, split))
        for split in splits:
            ctx.images.add_many(split.columns["image"])
        report["counts"] = {s.name: s.num_examples for s in splits}
        return TaskTable(self.name, self.task_attrs(label_set="gqa"), splits, report)

    def _submission(
        self, ctx: BuildContext, public: dict[str, list[Any]], vocab: Vocabulary
    ) -> SplitTable:
        """The submission split: the public questions, with the answers of the organisers'
        file of the same name when the build has one.

        The organisers' file is a questions file with answers (every field of the balanced
        files); each of its records must be the public question of the same id (same image,
        text and ``isBalanced``), every public question must have one and (outside smoke
        mode, which cuts the public file short) every record must be a public question.
        """
        columns: dict[str, Any] = {
            "id": public["id"],
            "image": public["image"],
            "question": public["question"],
            "is_balanced": np.asarray(public["is_balanced"], dtype=bool),
        }
        path = self.organiser_file(ctx, SUBMISSION)
        if path is None:
            return SplitTable("submission", "eval", columns)
        answered = self._read(ctx, SUBMISSION, organiser=path)
        hidden.check_ids(
            path,
            "gqa/submission",
            public["id"],
            answered["id"],
            every_organiser_id=ctx.max_examples is None,
        )
        row_of = {qid: i for i, qid in enumerate(answered["id"])}
        order = [row_of[q] for q in public["id"]]
        same = (("image", "imageId"), ("question", "question"), ("is_balanced", "isBalanced"))
        for i, (qid, row) in enumerate(zip(public["id"], order, strict=True)):
            for key, what in same:
                if answered[key][row] != public[key][i]:
                    raise RecordError(
                        path, qid, what, f"differs from the public question's {what}"
                    )
        return _table("submission", "eval", [(answered, np.asarray(order, dtype=np.int64))], vocab)

    def _choices(self, ctx: BuildContext, name: str, split: SplitTable) -> dict[str, Ragged]:
        """``valid_answers`` and ``plausible_answers`` of every question of ``split``.

        The file covers all questions of its release split (millions for val); it is
        streamed and only the entries of ``split`` are kept, read to the end so its digest
        is complete. A question of the split without an entry is an error: the official
        script would stop on it.
        """
        path = self.file(ctx.raw_root, name)
        wanted = set(split.columns["id"])
        found: dict[str, tuple[list[str], list[str]]] = {}
        for qid, rec in self.iter_json_items(ctx, name):
            if qid not in wanted:
                continue
            try:
                valid, plausible = rec["valid"], rec["plausible"]
                ok = (
                    type(valid) is list
                    and type(plausible) is list
                    and all(type(a) is str for a in valid)
                    and all(type(a) is str for a in plausible)
                )
            except (KeyError, TypeError):
                ok = False
            if not ok:
                for key, _ in CHOICE_FIELDS:
                    answers = require(rec, key, list, path, qid)
                    if not all(isinstance(a, str) for a in answers):
                        raise RecordError(path, qid, key, "expected a list of answer strings")
            found[qid] = (valid, plausible)
        missing = [q for q in split.columns["id"] if q not in found]
        if missing:
            raise RecordError(
                path,
                missing[0],
                "valid",
                f"no entry for this question of gqa/{split.name} "
                f"({len(missing)} of its {len(wanted)} questions have none)",
            )
        rows = [found[q] for q in split.columns["id"]]
        out = {
            column: Ragged.from_lists(values=[row[k] for row in rows])
            for k, (_, column) in enumerate(CHOICE_FIELDS)
        }
        return out

    def _read(
        self,
        ctx: BuildContext,
        name: str,
        keep_images: set[str] | None = None,
        answered: bool = True,
        organiser: Path | None = None,
    ) -> dict[str, list[Any]]:
        """The records of question file ``name`` (or of the organisers' file ``organiser``,
        read whole even in smoke mode: its records are matched to the public ones by id)."""
        path = self.file(ctx.raw_root, name) if organiser is None else organiser
        cols: dict[str, list[Any]] = {
            k: [] for k in ("id", "image", "is_balanced", "entailed", "steps", *ANSWERED_FIELDS)
        }
        intern: dict[str, str] = {}
        items: Iterable[tuple[str, Any]] = (
            self.iter_json_items(ctx, name)
            if organiser is None
            else self.iter_organiser_json_items(ctx, organiser)
        )
        records = 0
        chosen = ctx.progress(items, desc=f"gqa {name}")
        for qid, rec in ctx.limit(chosen) if organiser is None else chosen:
            records += 1
            row = _parse(rec, qid, path, answered)
            if keep_images is not None and row[1] not in keep_images:
                continue
            cols["id"].append(qid)
            cols["image"].append(row[1])
            cols["is_balanced"].append(row[2])
            cols["entailed"].append(row[3])
            if answered:
                cols["steps"].append(row[5])
                for key, value in zip(ANSWERED_FIELDS, row[4], strict=True):
                    cols[key].append(
                        intern.setdefault(value, value) if key != "question" else value
                    )
            else:
                cols["question"].append(row[4][0])
        # Exhaust the stream in smoke mode so the file's digest is still complete.
        _drain(items)
        # A present file must hold records, optional or not (optional = may be absent).
        rules.require_records(path, records, "questions")
        self._check(path, cols)
        return cols

    @staticmethod
    def _check(path: Path, cols: dict[str, list[Any]]) -> None:
        """The file's column rules; every row only on a failure."""
        if set(map(type, chain.from_iterable(cols["entailed"]))) - {str}:
            for qid, row in zip(cols["id"], cols["entailed"], strict=True):
                for j, e in enumerate(row):
                    if type(e) is not str:
                        raise RecordError(
                            path,
                            qid,
                            f"entailed[{j}]",
                            f"expected a question id string, got {type(e).__name__} {e!r:.60}",
                        )
        columns: dict[str, Any] = {"questionId": cols["id"]}
        rules.check(path, cols["id"], columns, QUESTION_RULES)


def _drain(items: Iterator[Any] | Iterable[Any]) -> None:
    for _ in items:
        pass


def _parse(rec: Any, qid: str, path: Path, answered: bool) -> tuple[Any, ...]:
    """Fast path with a precise slow path for the error message."""
    try:
        image = rec["imageId"]
        question = rec["question"]
        entailed = rec.get("entailed")
        if entailed is None:
            entailed = []
        balanced = rec.get("isBalanced", True)
        if answered:
            types, groups = rec["types"], rec["groups"]
            full, group_global, group_local = (
                rec.get("fullAnswer"),
                groups.get("global"),
                groups.get("local"),
            )
            values = (
                question,
                rec["answer"],
                "" if full is None else full,
                types["structural"],
                types["semantic"],
                types["detailed"],
                "" if group_global is None else group_global,
                "" if group_local is None else group_local,
            )
            steps = program_steps(rec["semantic"])
        else:
            values = (question,)  # no answers: the question is the only text field
            steps = 0
        ok = (
            type(image) is str
            and image.isascii()
            and image.isalnum()
            and all(type(v) is str for v in values)
            and type(question) is str
            and type(entailed) is list
            and type(balanced) is bool
        )
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        _explain(rec, qid, path, answered)
    return qid, gqa_key(image), balanced, entailed, values, steps


def _explain(rec: Any, qid: str, path: Path, answered: bool) -> None:
    """Slow path: name the bad field of a question record, and raise."""
    image = require(rec, "imageId", str, path, qid)
    if not (image.isascii() and image.isalnum()):
        raise RecordError(
            path, qid, "imageId", f"expected ASCII letters and digits, got {image!r:.60}"
        )
    require(rec, "question", str, path, qid)
    if answered:
        require(rec, "answer", str, path, qid)
        types = require(rec, "types", dict, path, qid)
        for key in ("structural", "semantic", "detailed"):
            require(types, key, str, path, f"{qid} types")
        groups = require(rec, "groups", dict, path, qid)
        for key in ("global", "local"):
            if groups.get(key) is not None:
                require(groups, key, str, path, f"{qid} groups")
        if rec.get("fullAnswer") is not None:
            require(rec, "fullAnswer", str, path, qid)
    if rec.get("entailed") is not None and not isinstance(rec["entailed"], list):
        raise RecordError(path, qid, "entailed", "expected a list of question ids")
    balanced = rec.get("isBalanced", True)
    if type(balanced) is not bool:
        raise RecordError(
            path,
            qid,
            "isBalanced",
            f"expected a JSON boolean, got {type(balanced).__name__} {balanced!r:.60}",
        )
    if answered:
        semantic = require(rec, "semantic", list, path, qid)
        if not _program_ok(semantic):
            raise RecordError(
                path, qid, "semantic", "expected a list of {operation, argument} objects"
            )
    raise RecordError(path, qid, "<record>", "malformed")  # pragma: no cover


def _program_ok(semantic: Any) -> bool:
    """The program is a list of operations, each with an ``operation`` and an ``argument``
    (formatted as text like the official script does, whatever their JSON type)."""
    return type(semantic) is list and all(
        type(op) is dict and "operation" in op and "argument" in op for op in semantic
    )


def _table(
    name: str, role: Any, parts: list[tuple[dict[str, list[Any]], np.ndarray]], vocab: Vocabulary
) -> SplitTable:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("id", "image", "is_balanced", "entailed", "steps", *ANSWERED_FIELDS)
    }
    for part, rows in parts:
        for key, out in cols.items():
            out.extend(part[key][i] for i in rows)
    columns: dict[str, Any] = {"id": cols["id"], "image": cols["image"]}
    for key in ANSWERED_FIELDS:
        columns[key] = cols[key]
    columns["label"] = np.fromiter(
        (vocab.label(a) for a in cols["answer"]), dtype=np.int32, count=len(cols["answer"])
    )
    columns["is_balanced"] = np.asarray(cols["is_balanced"], dtype=bool)
    columns["steps"] = np.asarray(cols["steps"], dtype=np.int16)
    columns["entailed"] = Ragged.from_lists(values=cols["entailed"])
    return SplitTable(name, role, columns)
