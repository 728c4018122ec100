"""Retrieval beyond ``full_matrix_up_to`` gallery images: the first pass keeps each
caption's ``rerank_top`` images, the alignment head re-ranks them, and the file is a
ranked-list JSON that the server's scorer accepts.

The threshold is lowered (the fixture's galleries hold 30-40 images) so that both paths run
on the same split: the full matrix and the re-ranked lists must agree on every caption's
top-1 whenever the full matrix's best image is among the first pass's candidates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import baselines.predict as predict_module
from baselines.cli import main as baseline
from baselines.predict import RetrievalSettings, predict_split, prediction_bytes
from baselines.retrieval import first_pass_top, full_matrix, rerank
from baselines.train import Trainer
from evalserver.cli import main as evalserver
from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.predictions import RankedListPredictions, parse_retrieval
from tests.baselines.helpers import tiny_config
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks

RETRIEVAL = [t for t in tasks.task_names() if tasks.get(t).target_adapter == "retrieval"]


def matrix_pairs(matrix: torch.Tensor) -> Callable[..., torch.Tensor]:
    """A stand-in alignment head: the pair (caption i, image j) scores ``matrix[i, j]``
    (the caption's index rides in its text, the image's in its features)."""

    def score_pairs(text: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        return matrix[text[:, 0], images["region_feats"][:, 0, 0, 0].long()]

    return score_pairs


def best_by_scorer_rule(scores: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Each row's top image id under the scorer's tie rule (equal scores: lower id)."""
    top = scores.max(axis=1, keepdims=True)
    return np.where(scores == top, image_ids[None], np.iinfo(np.int64).max).min(axis=1)


def test_rerank_top1_equals_full_matrix_when_best_is_a_candidate() -> None:
    rng = np.random.default_rng(0)
    n, m, top = 60, 50, 10
    matrix = torch.from_numpy(rng.integers(0, 6, size=(n, m)).astype(np.float32))  # many ties
    image_ids = rng.permutation(1000)[:m].astype(np.int64)
    text = torch.arange(n)[:, None]
    gallery = {"region_feats": torch.arange(m, dtype=torch.float32).view(m, 1, 1, 1)}
    # A noisy first pass: the true scores plus noise, so some best images are missed.
    first = matrix + torch.from_numpy(rng.normal(0, 2.0, size=(n, m)).astype(np.float32))
    candidates = first_pass_top(first, torch.eye(m), top, chunk=7)
    ranked = rerank(matrix_pairs(matrix), text, gallery, candidates, image_ids, batch_size=8)

    assert ranked.shape == (n, top)
    best = best_by_scorer_rule(matrix.numpy(), image_ids)
    best_col = {int(i): c for c, i in enumerate(image_ids)}
    within = np.array(
        [best_col[int(best[i])] in set(candidates[i].tolist()) for i in range(n)], dtype=bool
    )
    assert within.any() and not within.all()  # both cases occur
    assert (ranked[within, 0] == best[within]).all()
    # Every list is its candidates, ordered by score (ties: lower id first).
    col_of = np.vectorize(best_col.get)
    for i in range(n):
        assert sorted(col_of(ranked[i]).tolist()) == sorted(candidates[i].tolist())
        s = matrix.numpy()[i, col_of(ranked[i])]
        keys = list(zip(-s, ranked[i], strict=True))
        assert keys == sorted(keys)


def test_first_pass_chunks_agree_and_order_ties_by_column() -> None:
    rng = np.random.default_rng(1)
    text = torch.from_numpy(rng.integers(0, 3, size=(23, 4)).astype(np.float32))
    images = torch.from_numpy(rng.integers(0, 3, size=(40, 4)).astype(np.float32))
    whole = first_pass_top(text, images, 10, chunk=1000)
    assert torch.equal(first_pass_top(text, images, 10, chunk=3), whole)
    s = (text @ images.T).numpy()
    for i in range(len(text)):
        expected = sorted(range(40), key=lambda c: (-s[i, c], c))[:10]
        assert whole[i].tolist() == expected


def untrained(h5: Path, tmp_path: Path, task: str) -> Trainer:
    return Trainer(h5, tmp_path / "run", tiny_config([task], max_steps=1))


@pytest.mark.parametrize("task", RETRIEVAL)
def test_both_paths_on_one_split(
    task: str,
    featured_h5: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer = untrained(featured_h5, tmp_path, task)
    trainer.run(progress=False)  # one step: the first-pass projections are not at init
    info, split = trainer.infos[0], tasks.get(task).val_split
    gt = load_groundtruth(trainer.uf, task, split)
    m = len(gt.data.image_ids)
    assert m > 10

    full = predict_split(trainer.model, info, trainer.uf, split, trainer.encoder)
    assert full[1].shape == (len(full[0]), m)  # at most full_matrix_up_to: the whole matrix

    # The first pass as predict runs it, except that every other caption's last candidate
    # becomes its full-matrix best image when the first pass missed it (an untrained first
    # pass rarely finds it): both cases of the property occur.
    image_ids = full[2]["image_ids"]
    best = best_by_scorer_rule(full[1], image_ids)
    best_col = np.searchsorted(image_ids, best, sorter=np.argsort(image_ids))
    best_col = np.argsort(image_ids)[best_col]
    seen: list[tuple[int, ...]] = []
    real_top = predict_module.first_pass_top

    def spy(text_emb: torch.Tensor, image_emb: torch.Tensor, top: int) -> torch.Tensor:
        seen.append((text_emb.shape[0], image_emb.shape[0], top))
        cand = real_top(text_emb, image_emb, top, chunk=4)
        for i in range(0, len(cand), 2):
            if int(best_col[i]) not in cand[i].tolist():
                cand[i, -1] = int(best_col[i])
        return cand

    def no_matrix(*args: object, **kwargs: object) -> None:
        raise AssertionError("a full score matrix beyond the threshold")

    monkeypatch.setattr(predict_module, "first_pass_top", spy)
    monkeypatch.setattr(predict_module, "full_matrix", no_matrix)
    settings = RetrievalSettings(full_matrix_up_to=10, rerank_top=10)
    ranked = predict_split(
        trainer.model, info, trainer.uf, split, trainer.encoder, retrieval=settings
    )
    assert seen == [(len(full[0]), m, 10)]
    assert ranked[0] == full[0] and ranked[1].shape == (len(full[0]), 10)

    blob = prediction_bytes(task, ranked)
    assert isinstance(parse_retrieval(blob), RankedListPredictions)
    result = score_file(task, gt, blob)
    assert result.details["shortest_list"] == 10
    assert 0.0 <= result.metrics["t2i_r1"] <= 100.0
    assert set(result.metrics) == {"t2i_r1", "t2i_r5", "t2i_r10"}

    # Top-1 of re-ranking = the full matrix's top-1 where the first pass kept it.
    kept = np.array([best[i] in set(ranked[1][i].tolist()) for i in range(len(best))])
    assert kept[::2].all()
    assert (ranked[1][kept, 0] == best[kept]).all()


def test_predict_cli_writes_ranked_lists_that_score(
    featured_h5: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    task = RETRIEVAL[0]
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"dim": 32, "layers": 1, "attention_heads": 2, "ff": 64,
                                  "threads": 1, "batch_size": 8, "validate": False}))  # fmt: skip
    run = tmp_path / "run"
    args = ["train", "--data", str(featured_h5), "--tasks", task, "--out", str(run),
            "--config", str(config), "--max-steps", "1"]  # fmt: skip
    r = CliRunner().invoke(baseline, args)
    assert r.exit_code == 0, r.output
    out = tmp_path / "preds"
    args = ["predict", "--run", str(run), "--data", str(featured_h5), "--phase", "val",
            "--out", str(out), "--full-matrix-up-to", "10", "--rerank-top", "12"]  # fmt: skip
    r = CliRunner().invoke(baseline, args)
    assert r.exit_code == 0, r.output
    phase = tasks.get(task).val_split
    path = out / f"{task}.{phase}.json"
    assert [p.name for p in out.iterdir()] == [path.name]
    rows = json.loads(path.read_text())
    assert all(len(r["image_ids"]) == 12 for r in rows)
    args = ["score", "--data", str(featured_h5), "--task", task, "--phase", phase, "--json",
            str(path)]  # fmt: skip
    r = CliRunner().invoke(evalserver, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["primary"] == "t2i_r1" and "t2i_r10" in d["metrics"]


def test_rerank_top_below_a_ranked_lists_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        RetrievalSettings(rerank_top=5)


def test_full_matrix_blocks_cover_every_pair_once() -> None:
    """Small galleries: several captions per pass; large ones: blocks of one caption's
    row (memory bounded by the pairs per pass, not by the gallery)."""
    matrix = torch.randn(7, 1300)
    text = torch.arange(7)[:, None]
    gallery = {"region_feats": torch.arange(1300, dtype=torch.float32).view(-1, 1, 1, 1)}
    sizes: list[int] = []

    def score_pairs(t: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        sizes.append(len(t))
        return matrix_pairs(matrix)(t, images)

    for batch_size in (1, 8, 128, 1000):
        sizes.clear()
        assert np.array_equal(full_matrix(score_pairs, text, gallery, batch_size), matrix.numpy())
        assert max(sizes) <= max(4 * batch_size, 1)
