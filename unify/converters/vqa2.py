"""VQA v2 (Goyal et al. 2017): open-ended questions on COCO images, 10 answers each.

Splits as pinned in the canonical table: ``minval`` = the 3,000 val2014 questions with the
largest question_id, ``trainval`` = all of train2014 + the other val2014 questions, ``test``
and ``test-dev`` = the test2015 question files (no answers; a private build takes them from
the organisers' test2015 annotations, ``unify build --organiser``). The answer vocabulary and
soft targets follow the reference recipe (bottom-up-attention / 12-in-1): normalised
multiple-choice answers seen at least 9 times over train+val; a question's target for an
answer is 0.3/0.6/0.9/1.0 for 1/2/3/>=4 of its 10 normalised human answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import hidden, rules
from unify.converters.base import BuildContext, Converter, RawFile, require
from unify.errors import DataError, RecordError
from unify.images import coco_key
from unify.rules import Allowed, Count, Range, Same, Unique
from unify.table import Ragged, SplitTable, TaskTable
from unify.text import normalize_answer
from unify.vocab import Vocabulary

MINVAL_SIZE = 3000
MIN_ANSWER_COUNT = 9
#: Soft score by number of agreeing annotators (index = count, capped at 4).
SOFT_SCORES = (0.0, 0.3, 0.6, 0.9, 1.0)

QUESTIONS = "v2_OpenEnded_mscoco_{}_questions.json"
ANNOTATIONS = "v2_mscoco_{}_annotations.json"
TEST_SUBSETS = (("test", "test2015"), ("test-dev", "test-dev2015"))
#: The organisers' answers (``--organiser``): the annotations of every test2015 question,
#: test-dev2015's included (its questions are test2015 questions with the same ids).
ORGANISER_ANNOTATIONS = ANNOTATIONS.format("test2015")
#: Every annotation has this many human answers (the accuracy is min(#agreeing / 3, 1)).
NUM_ANSWERS = 10
#: The answer types the release uses (and the scorer reports a column for).
ANSWER_TYPES = ("yes/no", "number", "other")
ID_MAX = rules.INT64.max

QUESTION_RULES = (
    Unique("question_id", "question id"),
    Range("question_id", 0, ID_MAX),
    Range("image_id", 0, ID_MAX),
)
ANNOTATION_RULES = (
    Unique("question_id", "annotation of the question"),
    Same("image_id", "question image_id", "the annotation's image is its question's"),
    Count("answers", NUM_ANSWERS),
    Allowed("answer_type", ANSWER_TYPES),
)


class Vqa2(Converter):
    version = "1.0.0"
    homepage = "https://visualqa.org/download.html"
    field_rules = MappingProxyType(
        {"questions files": QUESTION_RULES, "annotations files": ANNOTATION_RULES}
    )
    organiser_files = (
        RawFile(ORGANISER_ANNOTATIONS, False, "answers of test2015 (test and test-dev)"),
    )
    answer_columns = (
        "question_type",
        "answer_type",
        "multiple_choice_answer",
        "answers",
        "targets",
    )
    raw_files = (
        RawFile(QUESTIONS.format("train2014"), True, "train questions"),
        RawFile(ANNOTATIONS.format("train2014"), True, "train annotations"),
        RawFile(QUESTIONS.format("val2014"), True, "val questions"),
        RawFile(ANNOTATIONS.format("val2014"), True, "val annotations"),
        RawFile(QUESTIONS.format("test2015"), False, "test questions (no answers)"),
        RawFile(QUESTIONS.format("test-dev2015"), False, "test-dev questions (no answers)"),
    )

    def convert(self, ctx: BuildContext) -> TaskTable:
        train, val = (self._read_answered(ctx, subset) for subset in ("train2014", "val2014"))
        both = np.intersect1d(train["id_array"], val["id_array"])
        if len(both):
            raise RecordError(
                self.file(ctx.raw_root, QUESTIONS.format("val2014")),
                int(both[0]),
                "question_id",
                f"duplicate question id {int(both[0])}: also a train2014 question",
            )
        n_train = len(train["id"])
        cols = {key: train[key] + val[key] for key in train if key not in ("image_id", "id_array")}
        id_array = np.concatenate([train["id_array"], val["id_array"]])
        del train["answers"], val["answers"]
        counts = Counter(normalize_answer(a) for a in cols["mc"])
        vocab = Vocabulary.from_counts(
            "vqa2", counts, MIN_ANSWER_COUNT, ["vqa2/train2014", "vqa2/val2014"], normalized=True
        )
        ctx.vocabularies[vocab.name] = vocab
        answers = Ragged.from_lists(values=cols.pop("answers"))
        answers.values["values"] = np.array(answers.values["values"], dtype=object)
        everything = SplitTable(
            "all",
            "train",
            {
                "id": id_array,
                "image": np.array(cols["image"], dtype=object),
                "subset": np.array(cols["subset"], dtype=object),
                "question": np.array(cols["question"], dtype=object),
                "question_type": np.array(cols["question_type"], dtype=object),
                "answer_type": np.array(cols["answer_type"], dtype=object),
                "multiple_choice_answer": np.array(cols["mc"], dtype=object),
                "answers": answers,
                "targets": soft_targets(answers, vocab),
            },
        )
        del cols

        val_ids = everything.columns["id"][n_train:]
        order = np.argsort(val_ids, kind="stable")
        holdout = np.zeros(len(val_ids), dtype=bool)
        holdout[order[max(0, len(order) - MINVAL_SIZE) :]] = True
        trainval_rows = np.concatenate([np.arange(n_train), n_train + np.flatnonzero(~holdout)])
        splits = [
            SplitTable("trainval", "train", everything.take(trainval_rows)),
            SplitTable("minval", "eval", everything.take(n_train + np.flatnonzero(holdout))),
        ]
        del everything
        report: dict[str, Any] = {
            "vocabulary_size": len(vocab),
            "min_answer_count": MIN_ANSWER_COUNT,
        }
        tests: dict[str, dict[str, Any]] = {}
        for split_name, subset in TEST_SUBSETS:
            name = QUESTIONS.format(subset)
            if not self.has_file(ctx, name):
                report[f"{split_name}_file"] = "absent"
                continue
            tests[split_name] = self._read_questions(ctx, name, "test2015")
        organiser = self.organiser_file(ctx, ORGANISER_ANNOTATIONS)
        if organiser is not None and "test" not in tests:
            raise DataError(
                f"{organiser}: organiser answers of test2015, but the raw folder has no "
                f"{QUESTIONS.format('test2015')} to pair them with"
            )
        tests = self._organiser_answers(ctx, tests)
        for split_name, part in tests.items():
            columns: dict[str, Any] = {
                "id": part["id_array"],
                "image": part["image"],
                "subset": part["subset"],
                "question": part["question"],
            }
            if "answers" in part:
                columns |= _answer_columns(part, vocab)
            splits.append(SplitTable(split_name, "eval", columns))
        for split in splits:
            ctx.images.add_many(split.columns["image"])
        report["counts"] = {s.name: s.num_examples for s in splits}
        return TaskTable(self.name, self.task_attrs(label_set="vqa2"), splits, report)

    def _read_questions(self, ctx: BuildContext, name: str, subset: str) -> dict[str, list[Any]]:
        path = self.file(ctx.raw_root, name)
        doc = self.load_json(ctx, name)
        questions = require(doc, "questions", list, path, "<top level>")
        ids: list[int] = []
        image_ids: list[int] = []
        texts: list[str] = []
        for i, q in enumerate(ctx.limit(ctx.progress(questions, desc=f"vqa2 {name}"))):
            try:
                qid, image_id, text = q["question_id"], q["image_id"], q["question"]
                ok = type(qid) is int and type(image_id) is int and type(text) is str
            except (KeyError, TypeError):
                ok = False
            if not ok:
                rid = q.get("question_id", f"#{i}") if isinstance(q, dict) else f"#{i}"
                require(q, "question_id", int, path, rid)
                require(q, "image_id", int, path, rid)
                require(q, "question", str, path, rid)
            ids.append(qid)
            image_ids.append(image_id)
            texts.append(text)
        # A present file must hold records, optional or not (optional = may be absent).
        rules.require_records(path, len(ids), "questions")
        columns = {
            "question_id": rules.int_array(ids, np.int64, path, "question_id", ids),
            "image_id": rules.int_array(image_ids, np.int64, path, "image_id", ids),
            "question": texts,
        }
        rules.check(path, ids, columns, QUESTION_RULES)
        return {
            "id": ids,
            "id_array": columns["question_id"],
            "image": [coco_key(i) for i in image_ids],
            "image_id": image_ids,
            "question": texts,
            "subset": [subset] * len(ids),
        }

    def _read_answered(self, ctx: BuildContext, subset: str) -> dict[str, list[Any]]:
        part = self._read_questions(ctx, QUESTIONS.format(subset), subset)
        ann_name = ANNOTATIONS.format(subset)
        ann_path = self.file(ctx.raw_root, ann_name)
        by_id = _annotations_by_id(self.load_json(ctx, ann_name), ann_path)
        if ctx.max_examples is None and len(by_id) != len(part["id"]):
            extra = sorted(set(by_id) - set(part["id"]))[:5]
            raise DataError(
                f"{ann_path}: {len(by_id)} annotations for {len(part['id'])} questions"
                + (f"; annotations without a question: {extra}" if extra else "")
            )
        return _attach_answers(part, by_id, ann_path)

    def _organiser_answers(
        self, ctx: BuildContext, parts: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The hidden splits' questions with the answers of the organisers' test2015
        annotations file, which covers test-dev too (test-dev2015 is a subset of
        test2015: its questions have the same ids).

        Every public question of a hidden split needs an annotation, and every annotation
        must be a public question (in smoke mode, ``--max-examples``, the public splits
        are cut short, so only the first holds).
        """
        path = self.organiser_file(ctx, ORGANISER_ANNOTATIONS)
        if path is None or not parts:
            return parts
        by_id = _annotations_by_id(self.load_organiser_json(ctx, path), path)
        public = [i for part in parts.values() for i in part["id"]]
        where = " and ".join(f"vqa2/{name}" for name in parts)
        hidden.check_ids(
            path, where, public, by_id, every_organiser_id=ctx.max_examples is None
        )
        return {name: _attach_answers(part, by_id, path) for name, part in parts.items()}


def _answer_columns(part: dict[str, list[Any]], vocab: Vocabulary) -> dict[str, Any]:
    """The answer columns of annotated questions (as trainval's and minval's)."""
    answers = Ragged.from_lists(values=part["answers"])
    answers.values["values"] = np.array(answers.values["values"], dtype=object)
    return {
        "question_type": np.array(part["question_type"], dtype=object),
        "answer_type": np.array(part["answer_type"], dtype=object),
        "multiple_choice_answer": np.array(part["mc"], dtype=object),
        "answers": answers,
        "targets": soft_targets(answers, vocab),
    }


def _annotations_by_id(doc: Any, ann_path: Path) -> dict[int, Any]:
    """The annotations of a file by question id (one each, at least one)."""
    annotations = require(doc, "annotations", list, ann_path, "<top level>")
    by_id: dict[int, Any] = {}
    for i, ann in enumerate(annotations):
        try:
            by_id[ann["question_id"]] = ann
        except (KeyError, TypeError):
            require(ann, "question_id", int, ann_path, f"#{i}")
    if len(by_id) != len(annotations):
        _explain_duplicate(annotations, ann_path)
    rules.require_records(ann_path, len(annotations), "annotations")
    return by_id


def _attach_answers(
    part: dict[str, list[Any]], by_id: dict[int, Any], ann_path: Path
) -> dict[str, list[Any]]:
    """``part``'s questions with their annotations' fields, every field checked."""
    intern: dict[str, str] = {}
    qtypes, atypes, mcs, answers = [], [], [], []
    for qid, image_id in zip(part["id"], part["image_id"], strict=True):
        ann = by_id.get(qid)
        if ann is None:
            raise RecordError(ann_path, qid, "question_id", "no annotation for this question")
        try:
            qtype, atype, mc = (
                ann["question_type"],
                ann["answer_type"],
                ann["multiple_choice_answer"],
            )
            raw = [a["answer"] for a in ann["answers"]]
            ok = (
                type(qtype) is str
                and type(atype) is str
                and type(mc) is str
                and len(raw) == NUM_ANSWERS
                and type(ann["image_id"]) is int
                and ann["image_id"] == image_id
            )
            if ok:  # interning also rejects unhashable answers (lists, objects)
                raw = [intern.setdefault(a, a) for a in raw]
        except (KeyError, TypeError):
            ok = False
        if not ok:
            _explain_annotation(ann, ann_path, qid, coco_key(image_id))
        qtypes.append(intern.setdefault(qtype, qtype))
        atypes.append(intern.setdefault(atype, atype))
        mcs.append(mc)
        answers.append(raw)
    # Answers are type-checked once per distinct value, not once per occurrence.
    if any(type(a) is not str for a in intern):
        for qid, raw in zip(part["id"], answers, strict=True):
            for j, a in enumerate(raw):
                if type(a) is not str:
                    raise RecordError(
                        ann_path,
                        qid,
                        f"answers[{j}].answer",
                        f"expected str, got {type(a).__name__} {a!r:.60}",
                    )
    # Answer types: checked once per distinct value; every row only on a failure.
    if set(atypes) - set(ANSWER_TYPES):
        rules.check(ann_path, part["id"], {"answer_type": atypes}, ANNOTATION_RULES)
    part.update(question_type=qtypes, answer_type=atypes, mc=mcs, answers=answers)
    return part


def _explain_annotation(ann: Any, path: Path, qid: int, image_key: str) -> None:
    """Slow path: find exactly which field of a bad annotation is wrong, and raise."""
    require(ann, "question_type", str, path, qid)
    require(ann, "answer_type", str, path, qid)
    require(ann, "multiple_choice_answer", str, path, qid)
    image_id = require(ann, "image_id", int, path, qid)
    if coco_key(image_id) != image_key:
        raise RecordError(path, qid, "image_id", f"{image_id} differs from the question's image")
    answers = require(ann, "answers", list, path, qid)
    if len(answers) != NUM_ANSWERS:
        raise RecordError(
            path, qid, "answers", f"{len(answers)} items, expected exactly {NUM_ANSWERS}"
        )
    for j, answer in enumerate(answers):
        if not isinstance(answer, dict) or "answer" not in answer:
            raise RecordError(path, qid, f"answers[{j}]", "expected an object with 'answer'")
        if type(answer["answer"]) is not str:
            value = answer["answer"]
            raise RecordError(
                path,
                qid,
                f"answers[{j}].answer",
                f"expected str, got {type(value).__name__} {value!r:.60}",
            )
    raise RecordError(path, qid, "answers", "malformed")


def _explain_duplicate(annotations: list[Any], path: Path) -> None:
    """Two annotations of one question: the second would silently replace the first."""
    seen: set[int] = set()
    for ann in annotations:
        qid = ann["question_id"]
        if qid in seen:
            raise RecordError(path, qid, "question_id", "a second annotation of this question")
        seen.add(qid)


def soft_targets(answers: Ragged, vocab: Vocabulary) -> Ragged:
    """Reference soft scores for every question at once.

    Each distinct raw answer is normalised once; then (question, label) pairs are counted
    with one sort instead of a Counter per question (658k questions x 10 answers).
    """
    flat = answers.values["values"]
    label_of = {a: vocab.label(normalize_answer(a)) for a in set(flat)}
    labels = np.fromiter(map(label_of.__getitem__, flat), dtype=np.int64, count=len(flat))
    lengths = np.diff(answers.offsets)
    question = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    keep = labels >= 0
    keys = question[keep] * (len(vocab) + 1) + labels[keep]
    uniq, counts = np.unique(keys, return_counts=True)
    owner = uniq // (len(vocab) + 1)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(lengths)), out=offsets[1:])
    scores = np.asarray(SOFT_SCORES, dtype=np.float32)[np.minimum(counts, 4)]
    return Ragged(offsets, {"labels": (uniq % (len(vocab) + 1)).astype(np.int32), "scores": scores})
