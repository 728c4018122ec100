"""Shared pieces of the baseline tests: a tiny model config and a learned-examples score.

A score is always the server's (``evalserver.metrics``): predictions are written in the
task's official format and parsed and scored like a submission.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from baselines.predict import predict_split, prediction_bytes
from baselines.train import TrainConfig, Trainer
from evalserver.metrics import load_groundtruth, score_file
from evalserver.metrics.retrieval import RetrievalGroundTruth
from unify import tasks


def tiny_config(task_list: list[str], **over: object) -> TrainConfig:
    """A model small enough for a shared 2-core CPU; no dropout, so it memorises fast."""
    base: dict[str, object] = {
        "tasks": task_list,
        "max_steps": 300,
        "batch_size": 32,
        "max_train_examples": 32,
        "validate": False,
        "dim": 64,
        "layers": 2,
        "attention_heads": 2,
        "ff": 128,
        "dropout": 0.0,
        "lr": 1e-3,
        "warmup": 0.05,
        "threads": 1,
        "max_text": 16,
        "negatives": 3,
    }
    base.update(over)
    return TrainConfig.from_dict(base)


def learned_score(trainer: Trainer, task: str, n: int = 32) -> float:
    """The primary metric over the first ``n`` training examples (those trained on)."""
    info = next(i for i in trainer.infos if i.name == task)
    spec = tasks.get(task)
    split = spec.train_splits[0]
    uf = trainer.uf
    if info.kind == "retrieval":
        view = uf.split(task, split)
        images = view.image_rows()[:n].astype(np.int64)
        gallery = np.unique(images)
        values = predict_split(
            trainer.model, info, uf, split, trainer.encoder, rows=range(n), gallery=gallery
        )
        gt = RetrievalGroundTruth(
            np.asarray(values[0], dtype=np.int64),
            np.searchsorted(gallery, images),
            values[2]["image_ids"],
        )
        result = score_file(task, gt, prediction_bytes(task, values))
        return float(result.metrics[spec.primary])
    values = predict_split(trainer.model, info, uf, split, trainer.encoder)
    gt = load_groundtruth(uf, task, split)
    result = score_file(task, gt, prediction_bytes(task, values))
    trained = {str(i) for i in values[0][:n]}
    ids = [str(i) for i in result.example_ids]
    scores = np.asarray(result.per_example["score"], dtype=np.float64)
    picked = [s for i, s in zip(ids, scores, strict=True) if i in trained and not np.isnan(s)]
    assert picked, f"{task}: none of the trained examples is scored"
    return 100.0 * float(np.mean(picked))


def train(h5: Path, out: Path, cfg: TrainConfig) -> Trainer:
    trainer = Trainer(h5, out, cfg)
    trainer.run(progress=False)
    return trainer
