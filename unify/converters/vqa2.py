"""VQA v2 (Goyal et al. 2017): open-ended questions on COCO images, 10 answers each.

Splits as pinned in the canonical table: ``minval`` = the 3,000 val2014 questions with the
largest question_id, ``trainval`` = all of train2014 + the other val2014 questions, ``test``
and ``test-dev`` = the test2015 question files (no answers). The answer vocabulary and
soft targets follow the reference recipe (bottom-up-attention / 12-in-1): normalised
multiple-choice answers seen at least 9 times over train+val; a question's target for an
answer is 0.3/0.6/0.9/1.0 for 1/2/3/>=4 of its 10 normalised human answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from unify.converters.base import BuildContext, Converter, RawFile, SplitDecl, require
from unify.errors import DataError, RecordError
from unify.images import coco_key
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


class Vqa2(Converter):
    name = "vqa2"
    title = "VQA v2"
    version = "1.0.0"
    task_group = "vqa"
    metric = "vqa"
    example_unit = "question"
    id_field = "question_id"
    homepage = "https://visualqa.org/download.html"
    raw_files = (
        RawFile(QUESTIONS.format("train2014"), True, "train questions"),
        RawFile(ANNOTATIONS.format("train2014"), True, "train annotations"),
        RawFile(QUESTIONS.format("val2014"), True, "val questions"),
        RawFile(ANNOTATIONS.format("val2014"), True, "val annotations"),
        RawFile(QUESTIONS.format("test2015"), False, "test questions (no answers)"),
        RawFile(QUESTIONS.format("test-dev2015"), False, "test-dev questions (no answers)"),
    )
    splits = (
        SplitDecl("trainval", "train", "train2014 + val2014 minus minval"),
        SplitDecl("minval", "eval", "the 3,000 val2014 questions with the largest question_id"),
        SplitDecl("test", "eval", "test2015 questions, no answers"),
        SplitDecl("test-dev", "eval", "test-dev2015 questions, no answers"),
    )

    def convert(self, ctx: BuildContext) -> TaskTable:
        answered = [self._read_answered(ctx, subset) for subset in ("train2014", "val2014")]
        train, val = answered
        counts = Counter(normalize_answer(a) for part in answered for a in part["mc"])
        vocab = Vocabulary.from_counts(
            "vqa2", counts, MIN_ANSWER_COUNT, ["vqa2/train2014", "vqa2/val2014"], normalized=True
        )
        ctx.vocabularies[vocab.name] = vocab

        val_ids = np.asarray(val["id"], dtype=np.int64)
        order = np.argsort(val_ids, kind="stable")
        holdout = np.zeros(len(val_ids), dtype=bool)
        holdout[order[max(0, len(order) - MINVAL_SIZE) :]] = True
        train_rows = np.arange(len(train["id"]))
        splits = [
            _answered_split(
                "trainval", "train", [(train, train_rows), (val, np.flatnonzero(~holdout))], vocab
            ),
            _answered_split("minval", "eval", [(val, np.flatnonzero(holdout))], vocab),
        ]
        report: dict[str, Any] = {
            "vocabulary_size": len(vocab),
            "min_answer_count": MIN_ANSWER_COUNT,
        }
        for split_name, subset in TEST_SUBSETS:
            name = QUESTIONS.format(subset)
            if not self.has_file(ctx, name):
                report[f"{split_name}_file"] = "absent"
                continue
            part = self._read_questions(ctx, name, "test2015")
            splits.append(
                SplitTable(
                    split_name,
                    "eval",
                    {
                        "id": np.asarray(part["id"], dtype=np.int64),
                        "image": part["image"],
                        "subset": part["subset"],
                        "question": part["question"],
                    },
                )
            )
        for split in splits:
            ctx.images.add_many(split.columns["image"])
        report["counts"] = {s.name: s.num_examples for s in splits}
        return TaskTable(self.name, self.task_attrs(label_set="vqa2"), splits, report)

    def _read_questions(self, ctx: BuildContext, name: str, subset: str) -> dict[str, list[Any]]:
        path = self.file(ctx.raw_root, name)
        doc = self.load_json(ctx, name)
        questions = require(doc, "questions", list, path, "<top level>")
        ids: list[int] = []
        images: list[str] = []
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
            images.append(coco_key(image_id))
            texts.append(text)
        return {"id": ids, "image": images, "question": texts, "subset": [subset] * len(ids)}

    def _read_answered(self, ctx: BuildContext, subset: str) -> dict[str, list[Any]]:
        part = self._read_questions(ctx, QUESTIONS.format(subset), subset)
        ann_name = ANNOTATIONS.format(subset)
        ann_path = self.file(ctx.raw_root, ann_name)
        doc = self.load_json(ctx, ann_name)
        annotations = require(doc, "annotations", list, ann_path, "<top level>")
        by_id: dict[int, Any] = {}
        for i, ann in enumerate(annotations):
            try:
                by_id[ann["question_id"]] = ann
            except (KeyError, TypeError):
                require(ann, "question_id", int, ann_path, f"#{i}")
        del doc, annotations
        if ctx.max_examples is None and len(by_id) != len(part["id"]):
            extra = sorted(set(by_id) - set(part["id"]))[:5]
            raise DataError(
                f"{ann_path}: {len(by_id)} annotations for {len(part['id'])} questions"
                + (f"; annotations without a question: {extra}" if extra else "")
            )
        intern: dict[str, str] = {}
        qtypes, atypes, mcs, answers = [], [], [], []
        for qid, image_key in zip(part["id"], part["image"], strict=True):
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
                    and all(type(a) is str for a in raw)
                    and len(raw) > 0
                    and coco_key(ann["image_id"]) == image_key
                )
            except (KeyError, TypeError):
                ok = False
            if not ok:
                _explain_annotation(ann, ann_path, qid, image_key)
            qtypes.append(intern.setdefault(qtype, qtype))
            atypes.append(intern.setdefault(atype, atype))
            mcs.append(mc)
            answers.append([intern.setdefault(a, a) for a in raw])
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
    if not answers:
        raise RecordError(path, qid, "answers", "empty list")
    for j, answer in enumerate(answers):
        require(answer, "answer", str, path, f"{qid} answers[{j}]")
    raise RecordError(path, qid, "answers", "malformed")


def soft_targets(raw_answers: list[str], vocab: Vocabulary) -> tuple[list[int], list[float]]:
    """Reference soft scores: count normalised human answers per in-vocabulary answer."""
    counts = Counter(normalize_answer(a) for a in raw_answers)
    labels, scores = [], []
    for answer, k in sorted(counts.items(), key=lambda item: vocab.label(item[0])):
        label = vocab.label(answer)
        if label >= 0:
            labels.append(label)
            scores.append(SOFT_SCORES[min(k, 4)])
    return labels, scores


def _answered_split(
    name: str, role: Any, parts: list[tuple[dict[str, list[Any]], np.ndarray]], vocab: Vocabulary
) -> SplitTable:
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "id",
            "image",
            "subset",
            "question",
            "question_type",
            "answer_type",
            "mc",
            "answers",
        )
    }
    for part, rows in parts:
        for key, out in cols.items():
            src = part[key]
            out.extend(src[i] for i in rows)
    labels, scores = (
        zip(*(soft_targets(a, vocab) for a in cols["answers"]), strict=True)
        if cols["answers"]
        else ((), ())
    )
    return SplitTable(
        name,
        role,
        {
            "id": np.asarray(cols["id"], dtype=np.int64),
            "image": cols["image"],
            "subset": cols["subset"],
            "question": cols["question"],
            "question_type": cols["question_type"],
            "answer_type": cols["answer_type"],
            "multiple_choice_answer": cols["mc"],
            "answers": Ragged.from_lists(values=cols["answers"]),
            "targets": Ragged.from_lists(
                {"labels": np.int32, "scores": np.float32}, labels=list(labels), scores=list(scores)
            ),
        },
    )
