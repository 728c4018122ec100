"""Caption-based image retrieval: Recall@K, median and mean rank (fartashf/vsepp rule).

From one score matrix ``scores[caption, image]`` both directions are scored:
- t2i (caption -> image): rank of the caption's image among all candidate images;
- i2t (image -> caption): for each image, the best rank of its captions among all captions.
R@K = 100 * fraction of ranks (0-based) < K, K in 1/5/10; medr = floor(median) + 1;
meanr = mean + 1; rsum = i2t R@1+5+10 + t2i R@1+5+10 (vsepp's order of addition).

Only the FIRST 5 captions of each image by sentid are scored (vsepp's 5-per-image layout;
COCO has a few images with 6 or 7 captions). Predictions for the other captions of the
split are accepted and ignored.

Tie rule (vsepp's argsort leaves ties to the sort algorithm): candidates with EQUAL scores
are ordered by ascending id - among equal-scoring images the lower image id ranks first,
among equal-scoring captions the lower caption id (sentid) ranks first. So a rank is
``#(strictly higher scores) + #(equal scores with a lower id)``, independent of the order
of rows and columns in the submitted matrix.

COCO: the 5k test set in one pass, plus "1k": the same metrics on each of the 5 folds of
1,000 images (fold per image from the ground truth), averaged over folds like vsepp's
``evalrank(fold5=True)`` (``1k_avg_*``); each fold's figures, fold 0 among them (what
12-in-1 reports), are in ``details["folds"]``.

Per caption of the ground truth (``per_example``): ``t2i_rank``, the 1-based rank of its
image (0: a caption the rule does not score; -1: a ranked list that does not hold its
image), and ``score``, 1.0 when its image is ranked first (NaN when not scored).

Ranked-list submissions (``[{"caption_id", "image_ids": [>= 10 ids]}]``) give t2i R@K for
K up to the shortest list only, on the full candidate set; no i2t, medr, meanr or folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from evalserver.metrics.phaseread import read_phase
from evalserver.metrics.predictions import (
    Problem,
    ProblemLog,
    RankedListPredictions,
    Rows,
    ScoreMatrixPredictions,
    match_ids,
)
from evalserver.metrics.result import Result
from unify.errors import SchemaError
from unify.reader import UnifiedFile

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "VERSION",
    "RetrievalGroundTruth",
    "groundtruth",
    "i2t_ranks",
    "recall_metrics",
    "score",
    "t2i_ranks",
    "validate",
]

VERSION = "retrieval-vsepp-1"
CAPTIONS_PER_IMAGE = 5
KS = (1, 5, 10)
#: Rows (or columns) compared per block: bounds temporary memory to ~ block x 5,000 bytes.
_BLOCK = 2048


@dataclass(frozen=True, eq=False)
class RetrievalGroundTruth:
    """Captions of a split with their image, and the candidate images (release order)."""

    caption_ids: np.ndarray  # int64 [C], sentid
    caption_image: np.ndarray  # int64 [C], index into image_ids
    image_ids: np.ndarray  # int64 [I]
    image_folds: np.ndarray | None = None  # int64 [I], COCO 1k fold 0-4

    def __post_init__(self) -> None:
        c, i = len(self.caption_ids), len(self.image_ids)
        if c == 0 or i == 0:
            raise ValueError("the ground truth needs captions and candidate images")
        if len(self.caption_image) != c:
            raise ValueError("caption_image needs one entry per caption")
        image = np.asarray(self.caption_image)
        if image.min() < 0 or image.max() >= i:
            raise ValueError("caption_image must index image_ids")
        if len(np.unique(self.caption_ids)) != c or len(np.unique(self.image_ids)) != i:
            raise ValueError("caption ids and image ids must be unique")
        if self.image_folds is not None and len(self.image_folds) != i:
            raise ValueError("image_folds needs one entry per image")

    @cached_property
    def scored(self) -> np.ndarray:
        """Bool [C]: the caption is among the first 5 of its image by sentid."""
        order = np.lexsort((self.caption_ids, self.caption_image))
        image = np.asarray(self.caption_image)[order]
        starts = np.r_[0, np.flatnonzero(np.diff(image)) + 1]
        lengths = np.diff(np.r_[starts, len(image)])
        within = np.arange(len(image)) - np.repeat(starts, lengths)
        scored = np.zeros(len(order), dtype=bool)
        scored[order[within < CAPTIONS_PER_IMAGE]] = True
        return scored


def groundtruth(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> RetrievalGroundTruth:
    """Captions of one split, their image, the split's candidate images (``candidates``,
    release order) with their numeric ids, and their 1k folds (``candidate_folds``, COCO
    test only)."""
    phase = read_phase(uf, task, splits)
    view = phase.one_split("retrieval")
    image_rows = phase.column("image").astype(np.int64)
    if "candidates" not in view.arrays:
        raise SchemaError(f"{phase.where} has no split array 'candidates'")
    candidates = view.column("candidates").astype(np.int64)
    position = np.full(len(uf.image_keys), -1, dtype=np.int64)
    position[candidates] = np.arange(len(candidates))
    caption_image = position[image_rows]
    if (caption_image < 0).any():
        bad = int(image_rows[np.flatnonzero(caption_image < 0)[0]])
        raise SchemaError(f"{phase.where}: image {uf.image_keys[bad]} is not a candidate")
    folds = None
    if "candidate_folds" in view.arrays:
        folds = view.column("candidate_folds").astype(np.int64)
    return RetrievalGroundTruth(
        phase.ids(int), caption_image, _numeric_ids(uf, candidates, phase.where), folds
    )


def _numeric_ids(uf: UnifiedFile, rows: np.ndarray, where: str) -> np.ndarray:
    """``coco:391895`` -> 391895: the ids a submission names images by."""
    keys = uf.image_keys[rows]
    try:
        return np.fromiter((int(k.split(":", 1)[1]) for k in keys), np.int64, len(keys))
    except (IndexError, ValueError):
        bad = next(k for k in keys if not k.partition(":")[2].isdigit())
        raise SchemaError(f"{where}: image key {bad!r} has no numeric id") from None


# --------------------------------------------------------------------------- ranks


def t2i_ranks(scores: np.ndarray, gold_col: np.ndarray, col_key: np.ndarray) -> np.ndarray:
    """0-based rank of each row's gold column; ties ordered by ascending ``col_key``."""
    gold_col = np.asarray(gold_col, dtype=np.int64)
    gold_key = np.asarray(col_key)[gold_col]
    ranks = np.empty(len(gold_col), dtype=np.int64)
    for start in range(0, len(gold_col), _BLOCK):
        stop = min(start + _BLOCK, len(gold_col))
        block = scores[start:stop]
        gold = block[np.arange(stop - start), gold_col[start:stop]][:, None]
        higher = np.count_nonzero(block > gold, axis=1)
        tied = (block == gold) & (col_key[None, :] < gold_key[start:stop, None])
        ranks[start:stop] = higher + np.count_nonzero(tied, axis=1)
    return ranks


def i2t_ranks(
    scores: np.ndarray, row_image: np.ndarray, row_key: np.ndarray, n_images: int
) -> np.ndarray:
    """Per column (image), the best 0-based rank of its rows (captions) in that column.

    The best caption of an image is its highest-scoring one (ties: lowest ``row_key``),
    whose rank is computed once: #(higher) + #(equal with a lower key). Images without any
    caption get rank -1.
    """
    row_image = np.asarray(row_image, dtype=np.int64)
    row_key = np.asarray(row_key)
    own = scores[np.arange(len(row_image)), row_image]
    # Highest own score first, then lowest key; np.unique's inverse is a dense rank of the
    # scores (exact for every dtype, unlike negating them).
    _, dense = np.unique(own, return_inverse=True)
    order = np.lexsort((row_key, -dense.reshape(-1), row_image))
    first = np.r_[True, np.diff(row_image[order]) != 0]
    best_rows = order[first]
    best_image = row_image[best_rows]
    has_caption = np.zeros(n_images, dtype=bool)
    has_caption[best_image] = True
    target = np.zeros(n_images, dtype=scores.dtype)
    target[best_image] = own[best_rows]
    target_key = np.zeros(n_images, dtype=row_key.dtype)
    target_key[best_image] = row_key[best_rows]
    ranks = np.empty(n_images, dtype=np.int64)
    step = max(1, _BLOCK // 8)
    for start in range(0, n_images, step):
        stop = min(start + step, n_images)
        block = scores[:, start:stop]
        best = target[None, start:stop]
        higher = np.count_nonzero(block > best, axis=0)
        tied = (block == best) & (row_key[:, None] < target_key[None, start:stop])
        ranks[start:stop] = higher + np.count_nonzero(tied, axis=0)
    ranks[~has_caption] = -1
    return ranks


def recall_metrics(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    """vsepp's figures from 0-based ranks: R@1/5/10 in percent, medr, meanr (1-based)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"{prefix}_r{k}": 100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in KS}
    out[f"{prefix}_medr"] = float(np.floor(np.median(ranks)) + 1)
    out[f"{prefix}_meanr"] = float(ranks.mean() + 1)
    return out


def _both_directions(
    scores: np.ndarray,
    gold_col: np.ndarray,
    col_key: np.ndarray,
    row_key: np.ndarray,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    t2i = t2i_ranks(scores, gold_col, col_key)
    i2t = i2t_ranks(scores, gold_col, row_key, scores.shape[1])
    i2t = i2t[i2t >= 0]
    metrics = recall_metrics(i2t, "i2t") | recall_metrics(t2i, "t2i")
    metrics["rsum"] = (
        metrics["i2t_r1"]
        + metrics["i2t_r5"]
        + metrics["i2t_r10"]
        + metrics["t2i_r1"]
        + metrics["t2i_r5"]
        + metrics["t2i_r10"]
    )
    return metrics, t2i, i2t


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, eq=False)
class _MatrixMatch:
    rows: np.ndarray  # matrix row of each SCORED gt caption (gt order of scored captions)
    cols: np.ndarray  # matrix column of each gt image


def _index_rows(ids: np.ndarray, unit: str, field: str) -> Rows:
    return Rows(np.asarray(ids, dtype=np.int64), np.arange(len(ids)), unit, field)


def _match_matrix(
    gt: RetrievalGroundTruth, predictions: ScoreMatrixPredictions, log: ProblemLog
) -> _MatrixMatch:
    captions = _index_rows(predictions.caption_ids, "caption_ids index", "caption_id")
    images = _index_rows(predictions.image_ids, "image_ids index", "image_id")
    cap = match_ids(
        gt.caption_ids,
        captions,
        log,
        required=gt.scored,
        unknown_hint="not a caption (sentid) of this split",
    )
    img = match_ids(gt.image_ids, images, log, unknown_hint="not a candidate image of this split")
    return _MatrixMatch(cap.pred_row[gt.scored], img.pred_row)


def _match_ranked(
    gt: RetrievalGroundTruth, predictions: RankedListPredictions, log: ProblemLog
) -> np.ndarray:
    match = match_ids(
        gt.caption_ids,
        predictions,
        log,
        required=gt.scored,
        unknown_hint="not a caption (sentid) of this split",
    )
    known = np.isin(predictions.ranked, gt.image_ids)
    row_of = np.repeat(np.arange(len(predictions.lengths)), predictions.lengths)
    bad_rows = np.unique(row_of[~known])
    listed = bad_rows[: log.room()]
    for row in listed:
        values = predictions.row(int(row))
        bad = values[~np.isin(values, gt.image_ids)]
        log.add(
            f"image_ids holds {len(bad)} id(s) that are not candidate images of this split, "
            f"e.g. {int(bad[0])}",
            predictions.where(row),
            int(predictions.ids[row]),
            "caption_id",
        )
    log.skip(len(bad_rows) - len(listed))
    return match.pred_row[gt.scored]


def validate(
    gt: RetrievalGroundTruth,
    predictions: ScoreMatrixPredictions | RankedListPredictions,
    log: ProblemLog | None = None,
) -> list[Problem]:
    log = ProblemLog() if log is None else log
    if isinstance(predictions, ScoreMatrixPredictions):
        _match_matrix(gt, predictions, log)
    else:
        _match_ranked(gt, predictions, log)
    return log.listing()


# --------------------------------------------------------------------------- scoring


def score(
    gt: RetrievalGroundTruth, predictions: ScoreMatrixPredictions | RankedListPredictions
) -> Result:
    """Recall@K both ways from a score matrix, or t2i only from ranked lists."""
    if isinstance(predictions, RankedListPredictions):
        return _score_ranked(gt, predictions)
    log = ProblemLog()
    match = _match_matrix(gt, predictions, log)
    log.raise_if_any()

    rows = match.rows
    if len(rows) == predictions.scores.shape[0] and (np.diff(rows) > 0).all():
        scores = predictions.scores  # already exactly the scored captions, in gt order
    else:
        scores = predictions.scores[rows]  # keep only the scored captions, in gt order
    scored_idx = np.flatnonzero(gt.scored)
    caption_ids = gt.caption_ids[scored_idx]
    gold_col = match.cols[gt.caption_image[scored_idx]]
    col_key = predictions.image_ids  # tie key of each matrix column: its image id

    metrics, t2i, _ = _both_directions(scores, gold_col, col_key, caption_ids)
    details: dict[str, Any] = {
        "counts": {
            "captions_scored": len(scored_idx),
            "captions_ignored": int(len(predictions.caption_ids) - len(scored_idx)),
            "images": len(gt.image_ids),
        },
        "tie_rule": "equal scores: lower image id / lower caption id ranks first",
    }
    if gt.image_folds is not None:
        fold_metrics = _fold_metrics(gt, scores, gold_col, col_key, caption_ids, match.cols)
        details["folds"] = fold_metrics
        names = list(fold_metrics[0])
        average = np.array([[m[k] for k in names] for m in fold_metrics]).mean(axis=0)
        metrics |= {f"1k_avg_{k}": float(v) for k, v in zip(names, average, strict=True)}
    lower = tuple(k for k in metrics if k.endswith(("medr", "meanr")))
    return Result(
        metrics,
        details,
        VERSION,
        "t2i_r1",
        True,
        lower,
        _per_caption(gt, t2i + 1),
        example_ids=gt.caption_ids,
    )


def _per_caption(gt: RetrievalGroundTruth, ranks: np.ndarray) -> dict[str, np.ndarray]:
    """1-based t2i ranks of the scored captions spread over every caption of the ground
    truth (0 where not scored), and the primary metric's per-caption value."""
    rank = np.zeros(len(gt.caption_ids), dtype=np.int64)
    rank[gt.scored] = ranks
    score = np.full(len(rank), np.nan)
    score[gt.scored] = (ranks == 1).astype(np.float64)
    return {"score": score, "t2i_rank": rank}


def _fold_metrics(
    gt: RetrievalGroundTruth,
    scores: np.ndarray,
    gold_col: np.ndarray,
    col_key: np.ndarray,
    caption_ids: np.ndarray,
    image_col: np.ndarray,
) -> list[dict[str, float]]:
    """The 1k protocol: each fold's images against that fold's captions only."""
    assert gt.image_folds is not None
    caption_image = gt.caption_image[gt.scored]
    caption_fold = np.asarray(gt.image_folds)[caption_image]
    out = []
    folds = np.asarray(gt.image_folds)
    for fold in np.unique(folds[folds >= 0]):  # -1: an image without a fold
        fold_images = np.flatnonzero(folds == fold)
        cols = image_col[fold_images]  # matrix columns of the fold's images
        local = np.full(scores.shape[1], -1, dtype=np.int64)
        local[cols] = np.arange(len(cols))
        rows = np.flatnonzero(caption_fold == fold)
        sub = scores[np.ix_(rows, cols)]
        metrics, _, _ = _both_directions(
            sub, local[gold_col[rows]], col_key[cols], caption_ids[rows]
        )
        out.append(metrics)
    return out


def _score_ranked(gt: RetrievalGroundTruth, predictions: RankedListPredictions) -> Result:
    log = ProblemLog()
    rows = _match_ranked(gt, predictions, log)
    log.raise_if_any()
    scored_idx = np.flatnonzero(gt.scored)
    gold = gt.image_ids[gt.caption_image[scored_idx]]
    lengths = predictions.lengths[rows]
    starts = predictions.offsets[rows]
    # The selected lists, flat: each value with its list (segment) and place in the list.
    segment = np.repeat(np.arange(len(rows)), lengths)
    place = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    values = predictions.ranked[np.repeat(starts, lengths) + place]
    hit = values == gold[segment]  # at most one per list: lists hold no repeats
    found = np.zeros(len(rows), dtype=bool)
    found[segment[hit]] = True
    ranks = lengths.copy()  # >= length: not within the list
    ranks[segment[hit]] = place[hit]
    shortest = int(lengths.min())
    per_caption = _per_caption(gt, np.where(found, ranks + 1, -1))
    metrics = {
        f"t2i_r{k}": 100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in KS if k <= shortest
    }
    details: dict[str, Any] = {
        "counts": {"captions_scored": len(scored_idx), "images": len(gt.image_ids)},
        "shortest_list": shortest,
        "not_reported": "i2t, medr, meanr, rsum and 1k folds need a full score matrix",
    }
    return Result(
        metrics, details, VERSION, "t2i_r1", True, (), per_caption, example_ids=gt.caption_ids
    )
