"""Retrieval negatives: the next images of the batch by default, the hardest ones (highest
alignment score, not the caption's image) with ``hard_negatives``; training still learns
with them, and the first pass's embeddings learn to find each caption's image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.retrieval import batch_scores, negative_index, pairs_of
from tests.baselines.helpers import learned_score, tiny_config, train
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks

RETRIEVAL = [t for t in tasks.task_names() if tasks.get(t).target_adapter == "retrieval"]


def test_default_negatives_are_the_next_images() -> None:
    image_rows = torch.tensor([5, 6, 5, 7])
    j, same = negative_index(image_rows, 2, torch.arange(4))
    assert j.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]]
    assert same.tolist() == [[False, False, True], [False] * 3, [False, False, True], [False] * 3]


def test_hard_negatives_are_the_highest_scoring_other_images() -> None:
    image_rows = torch.tensor([10, 11, 10, 12, 13, 14])
    scores = torch.tensor(
        [
            [9.0, 1.0, 8.0, 3.0, 2.0, 0.0],  # row 2 shows row 0's image: never a negative
            [0.0, 9.0, 5.0, 5.0, 7.0, 1.0],
        ]
    )
    j, same = negative_index(image_rows, 3, torch.tensor([0, 1]), scores)
    assert j[0].tolist() == [0, 3, 4, 1]
    assert j[1][0] == 1 and j[1][1] == 4 and sorted(j[1][2:].tolist()) == [2, 3]
    assert not same.any()
    # Fewer other images than negatives: the rest are the caption's own image, masked.
    j, same = negative_index(torch.tensor([1, 1, 2]), 2, torch.tensor([0]), scores[:1, :3])
    assert j[0, :2].tolist() == [0, 2] and same[0].tolist() == [False, False, True]


def test_batch_scores_are_the_alignment_heads_in_eval_mode() -> None:
    from baselines.model import Baseline, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, feature_dim=6, tasks=["t"], heads={"align": 0}, dim=16,
                      attention_heads=2, ff=32, dropout=0.5, max_text=5)  # fmt: skip
    model = Baseline(cfg)
    b, r = 4, 3
    batch = {
        "text": torch.randint(1, 20, (b, 5)),
        "region_feats": torch.randn(b, 1, r, 6),
        "region_geo": torch.rand(b, 1, r, 5),
        "region_mask": torch.ones(b, 1, r, dtype=torch.bool),
        "region_boxes": torch.rand(b, 1, r, 4),
    }
    captions = torch.tensor([1, 3])
    model.train()
    got = batch_scores(model, "t", "align", batch, captions)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        for a, c in enumerate(captions.tolist()):
            for i in range(b):
                one = pairs_of(batch, torch.tensor([c]), torch.tensor([[i]]))
                assert float(got[a, i]) == pytest.approx(float(model("t", "align", one)), abs=1e-5)


@pytest.mark.slow
def test_hard_negatives_still_learn_and_the_first_pass_finds_images(
    featured_h5: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    task = RETRIEVAL[0]
    trainer = train(featured_h5, tmp_path / "run", tiny_config([task], hard_negatives=True))
    assert learned_score(trainer, task) >= 90.0

    # The first pass alone (default weight): each trained caption's image first among the
    # images of the 32 captions (chance: one in the gallery's few images).
    info = trainer.infos[0]
    view = trainer.uf.split(task, tasks.get(task).train_splits[0], features="auto")
    examples = [view.example(i) for i in range(32)]
    images = np.array([ex["image_index"] for ex in examples])
    gallery, gold = np.unique(images, return_inverse=True)
    first = {ex["image_index"]: ex for ex in examples}
    model = trainer.model.eval()
    with torch.no_grad():
        text = model.embed_text(task, trainer.encoder.text(examples, info))
        regions = trainer.encoder.images([first[int(g)] for g in gallery])
        image = model.embed_images(
            task, regions["region_feats"], regions["region_geo"], regions["region_mask"]
        )
    assert len(gallery) >= 5
    first_pass_r1 = float(np.mean((text @ image.T).argmax(dim=1).numpy() == gold))
    assert first_pass_r1 >= 0.9, first_pass_r1
