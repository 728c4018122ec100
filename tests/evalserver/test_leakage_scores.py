"""Seen / unseen scores (evalserver.stats.leakage) on the tiny sample built with and without
leakage cleaning: the counts equal an independent count made here with h5py from
``/images/group`` and the training splits, and both builds agree."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.chance import chance_submission
from evalserver.stats.leakage import example_seen, seen_unseen
from unify.reader import UnifiedFile
from unify.tasks import task_names


@pytest.fixture(scope="module")
def uncleaned(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unify.build import BuildOptions, resolve_tasks, run_build

    out = tmp_path_factory.mktemp("tiny_raw_build") / "tiny-raw.h5"
    run_build(tiny_raw, out, BuildOptions(tasks=resolve_tasks((), True), all=True, clean=False))
    return out


def independent_seen(path: Path, task: str, split: str) -> np.ndarray:
    """Per example of ``task/split``: does an image of its group appear in a raw training
    split (role train, or the examples cleaning moved to mteval)?"""
    with h5py.File(path, "r") as h5:
        group = h5["images"]["group"][()]
        train: set[int] = set()
        for name in h5["tasks"]:
            for sname, sgroup in h5["tasks"][name].items():
                if sgroup.attrs["role"] == "train" or sname == "mteval":
                    train.update(int(g) for g in group[sgroup["image"][()].ravel()])
        images = h5["tasks"][task][split]["image"][()]
    groups = group[images]
    hit = np.vectorize(lambda g: int(g) in train)(groups)
    return hit.any(axis=1) if hit.ndim == 2 else hit


@pytest.mark.slow
@pytest.mark.parametrize("task", ["vqa2", "nlvr2", "coco_retrieval"])
def test_seen_unseen_counts_match_an_independent_count(
    tiny_h5: Path, uncleaned: Path, task: str, tmp_path: Path
) -> None:
    assert task in task_names()
    counts = []
    for path in (tiny_h5, uncleaned):
        gt = load_groundtruth(path, task)
        split = gt.splits[0]
        expected = independent_seen(path, task, split)
        with UnifiedFile(path) as uf:
            seen = example_seen(uf, task, gt.splits, None, len(expected))
        assert seen is not None
        assert np.array_equal(seen, expected)
        counts.append((int(seen.sum()), int((~seen).sum())))
        # Through a scored result (its example ids), and the split of scores.
        upload = tmp_path / f"{path.stem}.pred"
        upload.write_bytes(chance_submission(gt, seed=3))
        result = score_file(task, gt, upload)
        scores = np.asarray(result.per_example["score"])
        with UnifiedFile(path) as uf:
            by_ids = example_seen(uf, task, gt.splits, result.example_ids, len(scores))
        assert by_ids is not None
        parts = seen_unseen(scores, by_ids)
        valid = ~np.isnan(scores)
        assert parts.n_seen == int((by_ids & valid).sum())
        assert parts.n_unseen == int((~by_ids & valid).sum())
        if parts.n_seen:
            assert parts.seen == pytest.approx(100 * scores[by_ids & valid].mean())
    # Cleaning moves training examples, never changes which evaluation images were seen.
    assert counts[0] == counts[1]
    if task != "nlvr2":  # the sample's nlvr2 shares no image with training
        assert 0 < counts[0][0] < sum(counts[0])
