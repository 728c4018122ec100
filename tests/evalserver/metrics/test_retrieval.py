"""Retrieval: brute-force reference with ties, the first-5 rule, folds, ranked lists."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalserver.metrics import predictions as P
from evalserver.metrics import retrieval as R
from evalserver.metrics.predictions import ValidationError


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def brute_force(
    scores: np.ndarray, caption_ids: np.ndarray, caption_image: np.ndarray, image_ids: np.ndarray
) -> dict[str, float]:
    """Sort every list explicitly by (-score, id): the documented tie rule, literally."""
    t2i, i2t = [], []
    for c in range(len(caption_ids)):
        order = sorted(range(len(image_ids)), key=lambda j: (-scores[c, j], image_ids[j]))
        t2i.append(order.index(caption_image[c]))
    for j in range(len(image_ids)):
        mine = [c for c in range(len(caption_ids)) if caption_image[c] == j]
        if not mine:
            continue
        order = sorted(range(len(caption_ids)), key=lambda c: (-scores[c, j], caption_ids[c]))
        i2t.append(min(order.index(c) for c in mine))

    def stats(ranks: list[int], prefix: str) -> dict[str, float]:
        r = np.array(ranks)
        out = {f"{prefix}_r{k}": 100.0 * np.sum(r < k) / len(r) for k in (1, 5, 10)}
        out[f"{prefix}_medr"] = float(np.floor(np.median(r)) + 1)
        out[f"{prefix}_meanr"] = float(r.mean() + 1)
        return out

    out = stats(i2t, "i2t") | stats(t2i, "t2i")
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


@st.composite
def matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_images = draw(st.integers(1, 12))
    per_image = draw(st.integers(1, 5))
    n_captions = n_images * per_image
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct values: plenty of ties, the case the tie rule is for.
    scores = rng.integers(0, draw(st.integers(1, 4)), size=(n_captions, n_images)).astype(
        np.float32
    )
    image_ids = rng.choice(10_000, size=n_images, replace=False).astype(np.int64)
    caption_ids = rng.choice(100_000, size=n_captions, replace=False).astype(np.int64)
    caption_image = rng.permutation(np.repeat(np.arange(n_images), per_image))
    return scores, caption_ids, caption_image, image_ids


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_equals_brute_force_with_ties(case: tuple) -> None:
    scores, caption_ids, caption_image, image_ids = case
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids)
    result = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    expected = brute_force(scores, caption_ids, caption_image, image_ids)
    assert result.metrics == pytest.approx(expected, abs=0, rel=0)


@settings(max_examples=30, deadline=None)
@given(matrices(), st.integers(0, 2**32 - 1))
def test_row_and_column_order_do_not_matter(case: tuple, seed: int) -> None:
    scores, caption_ids, caption_image, image_ids = case
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids)
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(len(caption_ids)), rng.permutation(len(image_ids))
    a = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    b = R.score(
        gt, P.ScoreMatrixPredictions(scores[rows][:, cols], caption_ids[rows], image_ids[cols])
    )
    assert a.metrics == b.metrics


def test_tie_rule_lower_id_first() -> None:
    image_ids = np.array([30, 10, 20])
    caption_ids = np.array([7, 5, 6])
    caption_image = np.array([0, 1, 2])
    scores = np.zeros((3, 3), dtype=np.float32)  # everything tied
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids)
    result = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    # t2i: gold image 30 ranks after 10 and 20 (rank 2), 10 first (0), 20 second (1).
    assert result.per_example["t2i_rank"].tolist() == [3, 1, 2]  # 1-based, gt order
    assert result.per_example["score"].tolist() == [0.0, 1.0, 0.0]
    assert result.example_ids.tolist() == [7, 5, 6]
    # i2t: caption 7 of image 30 ranks after captions 5 and 6.
    assert result.metrics["i2t_r1"] == pytest.approx(100 / 3)
    assert R.t2i_ranks(scores, np.array([0, 1, 2]), image_ids).tolist() == [2, 0, 1]
    assert R.i2t_ranks(scores, np.array([0, 1, 2]), caption_ids, 3).tolist() == [2, 0, 1]


def test_only_first_five_captions_by_sentid_are_scored() -> None:
    image_ids = np.array([1, 2])
    caption_ids = np.array([17, 11, 12, 13, 14, 15, 16, 21, 22, 23, 24, 25])
    caption_image = np.array([0] * 7 + [1] * 5)
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids)
    assert caption_ids[gt.scored].tolist() == [11, 12, 13, 14, 15, 21, 22, 23, 24, 25]
    scores = np.where(caption_image[:, None] == np.arange(2), 1.0, 0.0).astype(np.float32)
    scores[0] = [0.0, 1.0]  # caption 17 (7th of image 1, by sentid) is wrong but ignored
    result = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    assert result.metrics["t2i_r1"] == 100.0
    assert result.details["counts"] == {"captions_scored": 10, "captions_ignored": 2, "images": 2}
    # Per caption of the ground truth: the 6th and 7th of image 1 are not scored.
    assert result.per_example["t2i_rank"].tolist() == [0, 1, 1, 1, 1, 1, 0] + [1] * 5
    assert np.isnan(result.per_example["score"][[0, 6]]).all()
    # The unscored captions may be left out of the file; the scored ones may not.
    keep = np.isin(caption_ids, [16, 17], invert=True)
    ok = R.score(gt, P.ScoreMatrixPredictions(scores[keep], caption_ids[keep], image_ids))
    assert ok.metrics == result.metrics
    problems = R.validate(gt, P.ScoreMatrixPredictions(scores[1:], caption_ids[1:], image_ids))
    assert problems == []
    problems = R.validate(gt, P.ScoreMatrixPredictions(scores[:-1], caption_ids[:-1], image_ids))
    assert [str(p) for p in problems] == ["caption_id 25: no prediction for this caption_id"]


def test_coco_folds_average_and_fold0() -> None:
    rng = np.random.default_rng(3)
    n_images, folds = 20, 5
    image_ids = np.arange(100, 100 + n_images)
    caption_image = np.repeat(np.arange(n_images), 5)
    caption_ids = np.arange(len(caption_image)) * 3
    image_folds = np.arange(n_images) % folds
    scores = rng.integers(0, 3, size=(len(caption_ids), n_images)).astype(np.float32)
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids, image_folds)
    result = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    per_fold = []
    for f in range(folds):
        imgs = np.flatnonzero(image_folds == f)
        caps = np.flatnonzero(np.isin(caption_image, imgs))
        local = np.searchsorted(imgs, caption_image[caps])
        per_fold.append(
            brute_force(scores[np.ix_(caps, imgs)], caption_ids[caps], local, image_ids[imgs])
        )
    for name in per_fold[0]:
        assert result.details["folds"][0][name] == per_fold[0][name]
        assert result.metrics[f"1k_avg_{name}"] == pytest.approx(
            np.mean([m[name] for m in per_fold])
        )
    assert "1k_avg_t2i_medr" in result.lower_is_better


def test_perfect_scores() -> None:
    image_ids = np.arange(1, 21)
    caption_image = np.repeat(np.arange(20), 5)
    caption_ids = np.arange(100)
    scores = (caption_image[:, None] == np.arange(20)).astype(np.float32)
    gt = R.RetrievalGroundTruth(caption_ids, caption_image, image_ids)
    result = R.score(gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    assert result.metrics["t2i_r1"] == result.metrics["i2t_r1"] == 100.0
    assert result.metrics["rsum"] == 600.0
    assert result.metrics["t2i_medr"] == 1.0 and result.metrics["t2i_meanr"] == 1.0


# --------------------------------------------------------------------------- file formats

GT = R.RetrievalGroundTruth(
    np.arange(1, 13), np.repeat(np.arange(12), 1), np.arange(100, 112, dtype=np.int64)
)


def test_npz_round_trip_gz(tmp_path: Path) -> None:
    import gzip

    scores = np.eye(12, dtype=np.float32)
    data = npz_bytes(scores=scores, caption_ids=np.arange(1, 13), image_ids=np.arange(100, 112))
    (tmp_path / "s.npz.gz").write_bytes(gzip.compress(data))
    parsed = P.parse_retrieval(tmp_path / "s.npz.gz")
    assert R.score(GT, parsed).metrics["t2i_r1"] == 100.0


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"scores": np.zeros((12, 12)), "caption_ids": np.arange(1, 13)},
            "image_ids: the .npz has no array 'image_ids'",
        ),
        (
            {
                "scores": np.zeros((12, 11)),
                "caption_ids": np.arange(1, 13),
                "image_ids": np.arange(100, 112),
            },
            "shape (12, 11) does not match",
        ),
        (
            {
                "scores": np.zeros(12),
                "caption_ids": np.arange(1, 13),
                "image_ids": np.arange(100, 112),
            },
            "must be a 2-D real array",
        ),
        (
            {
                "scores": np.zeros((12, 12)),
                "caption_ids": np.arange(1, 13) * 1.0,
                "image_ids": np.arange(100, 112),
            },
            "caption_ids: must be a 1-D integer array",
        ),
    ],
)
def test_npz_shape_and_key_problems(arrays: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        P.parse_retrieval(npz_bytes(**arrays))
    assert message in str(info.value)


def test_npz_nan_rows_are_named_by_caption_id() -> None:
    scores = np.eye(12, dtype=np.float32)
    scores[3, 5] = np.nan
    scores[7, 0] = np.inf
    with pytest.raises(ValidationError) as info:
        P.parse_retrieval(
            npz_bytes(scores=scores, caption_ids=np.arange(1, 13), image_ids=np.arange(100, 112))
        )
    text = [str(p) for p in info.value.problems]
    assert (
        text[0]
        == "scores, caption_id 4: scores row 3 has a non-finite value (first: image_id 105 = nan)"
    )
    assert text[1].startswith("scores, caption_id 8: scores row 7")


def test_npz_id_problems() -> None:
    scores = np.eye(12, dtype=np.float32)
    caption_ids = np.arange(1, 13)
    caption_ids[11] = 1  # duplicate, and caption 12 missing
    image_ids = np.arange(100, 112)
    image_ids[0] = 999  # unknown, and image 100 missing
    problems = [
        str(p) for p in R.validate(GT, P.ScoreMatrixPredictions(scores, caption_ids, image_ids))
    ]
    first = "first given at caption_ids index 0"
    assert problems == [
        f"caption_ids index 11, caption_id 1: duplicate caption_id ({first})",
        "caption_id 12: no prediction for this caption_id",
        "image_ids index 0, image_id 999: unknown image_id: not a candidate image of this split",
        "image_id 100: no prediction for this image_id",
    ]


def test_not_an_npz() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        P.parse_retrieval(b"\x00\x01garbage")
    with pytest.raises(ValidationError, match=r"not a readable \.npz"):
        P.parse_retrieval(b"PK\x03\x04broken zip")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    with pytest.raises(ValidationError, match=r"single \.npy"):
        P.parse_retrieval(buffer.getvalue())


def test_ranked_lists() -> None:
    records = []
    for c in range(1, 13):
        gold = 99 + c
        others = [i for i in range(100, 112) if i != gold]
        position = c % 12  # caption c finds its image at 0-based position c % 12 (or not at all)
        ranked = [*others[:position], gold, *others[position:]]
        records.append({"caption_id": c, "image_ids": ranked[:10]})
    result = R.score(GT, P.parse_retrieval(json.dumps(records).encode()))
    # positions 0..11: < 1 once, < 5 five times, < 10 ten times (10 and 11 fall off the list).
    assert result.metrics == {"t2i_r1": 100 / 12, "t2i_r5": 500 / 12, "t2i_r10": 1000 / 12}
    assert "i2t" in result.details["not_reported"]
    # 1-based rank within the list; -1 where the list does not hold the image.
    assert result.per_example["t2i_rank"].tolist() == [*range(2, 11), -1, -1, 1]


def test_ranked_list_problems() -> None:
    records = [
        {"caption_id": 1, "image_ids": list(range(100, 109))},
        {"caption_id": 2, "image_ids": [100] * 10},
        {"caption_id": 3, "image_ids": [*range(100, 109), 5]},
        {"caption_id": 4, "image_ids": "100"},
    ]
    with pytest.raises(ValidationError) as info:
        P.parse_retrieval(json.dumps(records).encode())
    text = [str(p) for p in info.value.problems]
    assert text == [
        "record 1, caption_id 1: image_ids must list at least 10 image ids, got 9",
        "record 2, caption_id 2: image_ids lists image id 100 more than once",
        "record 4, caption_id 4: image_ids must be an array of image ids, got string",
    ]
    parsed = P.parse_retrieval(json.dumps(records[2:3]).encode())
    problems = [str(p) for p in R.validate(GT, parsed)]
    assert (
        "record 1, caption_id 3: image_ids holds 1 id(s) that are not candidate images of this "
        "split, e.g. 5"
    ) in problems
