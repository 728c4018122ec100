"""Bootstrap intervals and paired tests (evalserver.stats): the cases the issue names, and
the resampling units (clusters, strata)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalserver.stats import board_seed, bootstrap, design_for, interval, paired_p_value


def correct(n: int, rate: float, seed: int) -> np.ndarray:
    """Exactly ``rate`` of ``n`` correct, in a random order."""
    values = np.zeros(n)
    values[: round(n * rate)] = 1.0
    return np.random.default_rng(seed).permutation(values)


def test_interval_of_1000_questions_at_70_percent_matches_the_normal_approximation() -> None:
    scores = correct(1000, 0.7, 0)
    resampled = bootstrap([scores], design_for(1000), board_seed("f", "vqa2", "minval"))
    found = interval(resampled[:, 0])
    normal = 1.959964 * math.sqrt(0.7 * 0.3 / 1000) * 100  # 2.84 points
    assert found.half_width == pytest.approx(normal, rel=0.12)
    assert found.low < 70.0 < found.high
    assert (found.low + found.high) / 2 == pytest.approx(70.0, abs=0.4)


def test_same_seed_same_interval_other_seed_other_resamples() -> None:
    scores = correct(500, 0.6, 1)
    design = design_for(500)
    first = bootstrap([scores], design, 7)
    assert np.array_equal(first, bootstrap([scores], design, 7))
    assert not np.array_equal(first, bootstrap([scores], design, 8))
    assert board_seed("a", "vqa2", "minval") == board_seed("a", "vqa2", "minval")
    assert board_seed("a", "vqa2", "minval") != board_seed("b", "vqa2", "minval")


def test_resamples_are_shared_by_every_entry() -> None:
    """Entries resampled together or alone see the same resamples."""
    a, b = correct(300, 0.5, 2), correct(300, 0.8, 3)
    design = design_for(300)
    both = bootstrap([a, b], design, 11)
    assert np.array_equal(both[:, 0], bootstrap([a], design, 11)[:, 0])
    assert np.array_equal(both[:, 1], bootstrap([b], design, 11)[:, 0])


def test_identical_predictions_give_p_one() -> None:
    a = correct(1000, 0.7, 4)
    resampled = bootstrap([a, a.copy()], design_for(1000), 3)
    assert paired_p_value(resampled[:, 1], resampled[:, 0], 70.0, 70.0) == 1.0


def test_a_clearly_better_entry_gives_p_below_001() -> None:
    leader = correct(1000, 0.7, 5)
    worse = leader.copy()
    worse[np.flatnonzero(worse == 1.0)[:80]] = 0.0  # 8 points worse, paired
    resampled = bootstrap([worse, leader], design_for(1000), 3)
    p = paired_p_value(resampled[:, 0], resampled[:, 1], 62.0, 70.0)
    assert p < 0.01
    # A tiny difference is not significant.
    close = leader.copy()
    close[np.flatnonzero(close == 1.0)[:1]] = 0.0
    resampled = bootstrap([close, leader], design_for(1000), 3)
    assert paired_p_value(resampled[:, 0], resampled[:, 1], 69.9, 70.0) > 0.3


def test_clusters_are_resampled_whole_and_strata_keep_their_size() -> None:
    # 100 sentences of 4 pairs each, all 4 right or all wrong: the cluster interval is the
    # one of 100 units (twice as wide as 400 independent examples would give).
    per_sentence = correct(100, 0.5, 6)
    scores = np.repeat(per_sentence, 4)
    sentences = np.repeat(np.arange(100), 4)
    clustered = interval(bootstrap([scores], design_for(400, clusters=sentences), 1)[:, 0])
    independent = interval(bootstrap([scores], design_for(400), 1)[:, 0])
    assert clustered.half_width == pytest.approx(2 * independent.half_width, rel=0.25)
    # Two splits, one all right and one all wrong: within-split resampling keeps 50%.
    split = np.array(["testA"] * 200 + ["testB"] * 200)
    pooled = np.r_[np.ones(200), np.zeros(200)]
    stratified = bootstrap([pooled], design_for(400, strata=split), 1)[:, 0]
    assert np.all(stratified == 50.0)
    assert np.std(bootstrap([pooled], design_for(400), 1)[:, 0]) > 1.0


def test_unscored_examples_do_not_count() -> None:
    scores = np.r_[np.ones(50), np.full(50, np.nan)]
    assert np.all(bootstrap([scores], design_for(100), 1)[:, 0] == 100.0)


def test_a_cluster_across_strata_is_refused() -> None:
    with pytest.raises(ValueError, match="spans two strata"):
        design_for(2, clusters=[0, 0], strata=["a", "b"])
