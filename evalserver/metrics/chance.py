"""Chance level of each task's primary metric, and a chance-level submission, by metric.

A ``TaskSpec`` states what chance guesses over (``chance.over``: the split's distinct
answers, the candidate images, the image's boxes, the classes) and, where it does not
depend on the data, the level itself (``chance.percent``). Here, per METRIC, is the
expected score of a guess drawn uniformly from that set, computed per example from the
ground truth (``ChanceLevel``: per-example mean and variance, so a confidence interval
follows), and a generator of such a guess written in the official format: the server can
post it as a baseline entry, and the tests check that it scores within the interval.

    level = chance_level(gt)                  # gt = load_groundtruth(...)
    level.percent, level.interval(0.99)
    data = chance_submission(gt, seed=0)      # bytes of an official prediction file
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from types import MappingProxyType
from typing import Any

import numpy as np

from evalserver.metrics import refexp, vqa
from evalserver.metrics.groundtruth import GroundTruth
from evalserver.metrics.phaseread import read_phase
from evalserver.metrics.registry import SCORERS
from unify.errors import DataError
from unify.reader import UnifiedFile
from unify.text import clean_whitespace, normalize_answer

__all__ = ["CHANCE", "ChanceLevel", "Guess", "chance_level", "chance_submission"]


@dataclass(frozen=True)
class ChanceLevel:
    """Per scored example, the mean and variance of its score under the uniform guess
    (scores in [0, 1]; examples the rule does not score are left out)."""

    mean: np.ndarray
    var: np.ndarray

    @property
    def percent(self) -> float:
        """The expected primary metric, in percent."""
        return 100.0 * float(self.mean.mean())

    def interval(self, confidence: float = 0.99) -> tuple[float, float]:
        """Central interval of the primary metric (percent) at ``confidence``, by the
        normal approximation of a sum of independent per-example scores."""
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        sd = float(np.sqrt(self.var.sum())) / len(self.var)
        return self.percent - 100.0 * z * sd, self.percent + 100.0 * z * sd


@dataclass(frozen=True)
class Guess:
    """A uniform guess per example, ready for the metric's ``Scorer.write``."""

    ids: np.ndarray
    values: Any
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChanceModel:
    expected: Callable[[GroundTruth], ChanceLevel]
    guess: Callable[[GroundTruth, np.random.Generator], Guess]


def _bernoulli(p: np.ndarray) -> ChanceLevel:
    p = np.asarray(p, dtype=np.float64)
    return ChanceLevel(p, p * (1 - p))


# --------------------------------------------------------------------------- vqa, vgqa, gqa


def _distinct(answers: Any) -> list[str]:
    return sorted(set(answers))


def _vqa_expected(gt: GroundTruth) -> ChanceLevel:
    """Per question, the mean over the split's distinct raw answers a of the official
    value of a: only answers whose compared code (raw when the humans agree, normalised
    otherwise) matches a human count, each with the pattern value of the humans it
    matches."""
    data: vqa.VqaGroundTruth = gt.data
    index = data.index
    candidates = _distinct(data.answers)
    cleaned = [clean_whitespace(a) for a in candidates]
    size = len(index.vocabulary)
    by_raw = np.bincount([index.vocabulary[c] for c in cleaned], minlength=size)
    by_norm = np.bincount([index.vocabulary[normalize_answer(c)] for c in cleaned], minlength=size)
    mean = np.empty(len(index.counts))
    second = np.empty(len(index.counts))
    for q, (n, agree) in enumerate(
        zip(index.counts.tolist(), index.all_agree.tolist(), strict=True)
    ):
        row = index.codes[q, :n]
        counts = by_raw if agree else by_norm
        values = vqa.pattern_values(n) if n <= 16 else None
        total = total2 = 0.0
        for code in np.unique(row).tolist():
            k = int(counts[code])
            if k == 0:
                continue
            hits = row == code
            if values is not None:
                value = float(values[int((hits.astype(np.int64) << np.arange(n)).sum())])
            else:
                value = vqa.official_question_accuracy(hits.tolist())
            total += k * value
            total2 += k * value * value
        mean[q] = total / len(candidates)
        second[q] = total2 / len(candidates)
    return ChanceLevel(mean, np.maximum(second - mean**2, 0.0))


def _answer_guess(ids: np.ndarray, answers: Any, rng: np.random.Generator) -> Guess:
    candidates = _distinct(answers)
    picks = rng.integers(0, len(candidates), size=len(ids))
    return Guess(ids, [candidates[i] for i in picks.tolist()])


def _vgqa_expected(gt: GroundTruth) -> ChanceLevel:
    """Per QA pair, the share of the split's distinct answers equal to the gold one after
    the rule's normalisation."""
    data: vqa.VgqaGroundTruth = gt.data
    candidates = _distinct(data.answers)
    normalized = [normalize_answer(clean_whitespace(a)) for a in candidates]
    share = {
        k: v / len(candidates)
        for k, v in zip(*np.unique(normalized, return_counts=True), strict=True)
    }
    return _bernoulli(np.array([share.get(g, 0.0) for g in data.normalized]))


def _gqa_expected(gt: GroundTruth) -> ChanceLevel:
    """Exact match: 1 / (distinct answers of the balanced questions) for each of them."""
    data = gt.data
    answers = data.answers[: data.num_balanced]
    return _bernoulli(np.full(data.num_balanced, 1.0 / len(set(answers))))


def _gqa_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    data = gt.data
    return _answer_guess(data.ids[: data.num_balanced], data.answers[: data.num_balanced], rng)


# --------------------------------------------------------------------------- retrieval


def _retrieval_expected(gt: GroundTruth) -> ChanceLevel:
    """R@1 of random scores: 1 / (candidate images) per scored caption."""
    data = gt.data
    return _bernoulli(np.full(int(data.scored.sum()), 1.0 / len(data.image_ids)))


def _retrieval_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    data = gt.data
    scores = rng.random((len(data.caption_ids), len(data.image_ids)))
    return Guess(data.caption_ids, scores, {"image_ids": data.image_ids})


# --------------------------------------------------------------------------- refer


def _regions(gt: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, boxes) of each expression's candidate regions: its image's COCO boxes."""
    if gt.path is None:
        raise DataError(f"{gt.task}: the candidate regions need the unified file")
    with UnifiedFile(gt.path) as uf:
        regions = read_phase(uf, gt.task, gt.splits).ragged("regions")
    return regions.offsets, np.asarray(regions.values["boxes"], dtype=np.float64)


def _refexp_expected(gt: GroundTruth) -> ChanceLevel:
    """Per expression, the share of its image's boxes that the default rule counts as
    right (IoU with the target >= 0.5)."""
    offsets, boxes = _regions(gt)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    right = refexp.iou(boxes, np.asarray(gt.data.boxes)[owner], "default") >= 0.5
    hits = np.bincount(owner, weights=right, minlength=len(offsets) - 1)
    return _bernoulli(hits / np.diff(offsets))


def _refexp_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    offsets, boxes = _regions(gt)
    picks = offsets[:-1] + (rng.random(len(offsets) - 1) * np.diff(offsets)).astype(np.int64)
    return Guess(gt.data.sent_ids, boxes[picks])


def _pointing_expected(gt: GroundTruth) -> ChanceLevel:
    """The share of the question's candidate boxes that are the gold box."""
    data = gt.data
    candidates = np.asarray(data.candidate_box_ids)
    return _bernoulli((candidates == data.gold_box_ids[:, None]).mean(axis=1))


def _pointing_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    candidates = np.asarray(gt.data.candidate_box_ids)
    picks = rng.integers(0, candidates.shape[1], size=len(candidates))
    return Guess(gt.data.qa_ids, candidates[np.arange(len(candidates)), picks])


def _objects(gt: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    data = gt.data
    if data.object_offsets is None:
        raise DataError(f"{gt.task}: the ground truth does not list the games' objects")
    return np.asarray(data.object_offsets), np.asarray(data.candidate_ids)


def _guesswhat_expected(gt: GroundTruth) -> ChanceLevel:
    """The share of the game's objects that are its target."""
    offsets, candidates = _objects(gt)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    hits = np.bincount(
        owner,
        weights=candidates == np.asarray(gt.data.object_ids)[owner],
        minlength=len(offsets) - 1,
    )
    return _bernoulli(hits / np.diff(offsets))


def _guesswhat_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    offsets, candidates = _objects(gt)
    picks = offsets[:-1] + (rng.random(len(offsets) - 1) * np.diff(offsets)).astype(np.int64)
    return Guess(gt.data.game_ids, candidates[picks])


# --------------------------------------------------------------------------- classes


def _nlvr2_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    return Guess(gt.data.identifiers, rng.integers(0, 2, size=len(gt.data.identifiers)))


def _snli_ve_scored(gt: GroundTruth) -> np.ndarray:
    return np.asarray(gt.data.labels) >= 0


def _snli_ve_guess(gt: GroundTruth, rng: np.random.Generator) -> Guess:
    scored = _snli_ve_scored(gt)
    ids = np.asarray(gt.data.pair_ids)[scored]
    return Guess(ids, rng.integers(0, 3, size=len(ids)))


#: metric name -> its chance model.
CHANCE: Mapping[str, ChanceModel] = MappingProxyType(
    {
        "vqa": ChanceModel(
            _vqa_expected, lambda gt, rng: _answer_guess(gt.data.question_ids, gt.data.answers, rng)
        ),
        "gqa": ChanceModel(_gqa_expected, _gqa_guess),
        "vgqa": ChanceModel(
            _vgqa_expected, lambda gt, rng: _answer_guess(gt.data.qa_ids, gt.data.answers, rng)
        ),
        "retrieval": ChanceModel(_retrieval_expected, _retrieval_guess),
        "refexp": ChanceModel(_refexp_expected, _refexp_guess),
        "pointing": ChanceModel(_pointing_expected, _pointing_guess),
        "guesswhat": ChanceModel(_guesswhat_expected, _guesswhat_guess),
        "nlvr2": ChanceModel(
            lambda gt: _bernoulli(np.full(len(gt.data.identifiers), 0.5)), _nlvr2_guess
        ),
        "snli_ve": ChanceModel(
            lambda gt: _bernoulli(np.full(int(_snli_ve_scored(gt).sum()), 1.0 / 3)),
            _snli_ve_guess,
        ),
    }
)


def _model(gt: GroundTruth) -> ChanceModel:
    try:
        return CHANCE[gt.metric]
    except KeyError:
        raise DataError(f"no chance model for metric {gt.metric!r} ({gt.task})") from None


def chance_level(gt: GroundTruth) -> ChanceLevel:
    """The expected primary metric of a uniform guess over what ``chance.over`` says."""
    return _model(gt).expected(gt)


def chance_submission(gt: GroundTruth, seed: int = 0) -> bytes:
    """A uniform guess for every example, written in the task's official format."""
    guess = _model(gt).guess(gt, np.random.default_rng(seed))
    return SCORERS[gt.metric].write(guess.ids, guess.values, **guess.extra)
