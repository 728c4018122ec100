"""Chance levels against brute force: every candidate guess scored by the scorer itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalserver.metrics import GroundTruth, load_groundtruth, refexp, vqa
from evalserver.metrics import predictions as P
from evalserver.metrics.chance import ChanceLevel, chance_level
from unify.reader import UnifiedFile


def _wrap(task: str, metric: str, data: object) -> GroundTruth:
    return GroundTruth(task, "val", ("val",), metric, data)


def test_interval_is_the_normal_approximation() -> None:
    level = ChanceLevel(np.full(100, 0.5), np.full(100, 0.25))
    low, high = level.interval(0.99)
    assert level.percent == 50.0
    assert (low, high) == pytest.approx((50 - 2.5758293 * 5, 50 + 2.5758293 * 5))


def test_vqa_chance_equals_scoring_every_candidate() -> None:
    rng = np.random.default_rng(4)
    words = ["yes", "Yes", "no", "2", "two", "red", "Red.", "t-shirt", "t shirt", "the dog"]
    annotations = [
        {
            "question_id": i,
            "answers": [{"answer": w} for w in rng.choice(words, size=10).tolist()],
            "question_type": "what",
            "answer_type": "other",
        }
        for i in range(40)
    ]
    annotations[0]["answers"] = [{"answer": "yes"}] * 10  # all agree: exact comparison
    gt = vqa.VqaGroundTruth.from_annotations(annotations)
    level = chance_level(_wrap("vqa2", "vqa", gt))
    candidates = sorted(set(gt.answers))
    per_candidate = np.array(
        [
            vqa.per_question_accuracy(
                gt,
                P.parse_vqa(
                    P.write_answers(
                        gt.question_ids, [c] * 40, id_field="question_id", answer_field="answer"
                    )
                ),
            )
            for c in candidates
        ]
    )
    assert level.mean == pytest.approx(per_candidate.mean(axis=0), abs=1e-12)
    assert level.var == pytest.approx(per_candidate.var(axis=0), abs=1e-12)


def test_vgqa_chance_equals_scoring_every_candidate() -> None:
    answers = ["Green.", "green", "two", "2", "A man.", "man", "on the table"]
    gt = vqa.VgqaGroundTruth(np.arange(1, 8), answers)
    level = chance_level(_wrap("vgqa", "vgqa", gt))
    hits = []
    for c in sorted(set(answers)):
        data = P.write_answers(gt.qa_ids, [c] * 7, id_field="question_id", answer_field="answer")
        hits.append(vqa.score_vgqa(gt, P.parse_vqa(data)).per_example["score"])
    assert level.mean.tolist() == pytest.approx(np.mean(hits, axis=0).tolist())


def test_refexp_chance_counts_the_image_boxes_that_are_right(tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "refcocog")
    level = chance_level(gt)
    with UnifiedFile(tiny_h5) as uf:
        regions = [
            r["boxes"] for s in gt.splits for r in (e["regions"] for e in uf.split("refcocog", s))
        ]
    for i in range(0, len(regions), 7):
        boxes = np.asarray(regions[i], dtype=np.float64)
        right = refexp.iou(boxes, np.repeat(gt.boxes[i : i + 1], len(boxes), axis=0)) >= 0.5
        assert level.mean[i] == right.mean()
    assert (level.mean > 0).all()  # the target is among its image's boxes


def test_a_fixed_chance_level_holds_on_the_data(tiny_h5: Path) -> None:
    gt = load_groundtruth(tiny_h5, "visual7w")
    assert chance_level(gt).mean.tolist() == [0.25] * len(gt.qa_ids)
    assert json.dumps(chance_level(gt).percent) == "25.0"
