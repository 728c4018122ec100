"""Predictions of a trained model, written in the official format of each task.

The values are mapped to the metric's writer (``evalserver.metrics.SCORERS[metric].write``,
the same writers the chance submissions use), so a file is accepted by ``evalserver score``
and the server by construction; tests score every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.inputs import Encoder, TaskInfo
from baselines.model import Baseline
from baselines.retrieval import REGION_KEYS, first_pass_top, full_matrix, rerank
from evalserver.metrics import SCORERS
from evalserver.metrics.predictions import MIN_RANKED, write_ranked_lists
from unify import tasks
from unify.reader import UnifiedFile, resolve_features

Values = tuple[list[Any], Any, dict[str, Any]]
#: The ``extra`` key of retrieval values that are ranked lists (image ids, best first).
RANKED = "ranked"


def resolve_phase(task: str, phase: str) -> str:
    """``val``: the task's ``val_split`` (model selection); ``test``: its default phase
    (the leaderboard's); any other name is taken as the task's own phase or split."""
    spec = tasks.get(task)
    if phase == "val":
        return spec.val_split
    if phase == "test":
        return spec.default_phase
    return phase


def phase_splits(task: str, phase: str) -> tuple[str, ...]:
    spec = tasks.get(task)
    for p in spec.phases:
        if p.name == phase:
            return tuple(p.splits)
    if phase in spec.split_names:
        return (phase,)
    raise ValueError(f"task {task} has no phase or split {phase!r}")


@torch.no_grad()
def predict_split(
    model: Baseline,
    info: TaskInfo,
    uf: UnifiedFile,
    split: str,
    encoder: Encoder,
    batch_size: int = 128,
    rows: Sequence[int] | None = None,
    gallery: np.ndarray | None = None,
    retrieval: RetrievalSettings | None = None,
) -> Values:
    """``(ids, values, extra)`` for the metric's writer: of every example of the split, or
    of ``rows`` only (retrieval: against ``gallery``, rows of /images, instead of the
    split's candidates; ``retrieval`` says when the first pass and re-ranking take over)."""
    model.eval()
    view = uf.split(info.name, split, features="auto", targets=False)
    order = list(range(len(view))) if rows is None else [int(r) for r in rows]
    if info.kind == "retrieval":
        settings = retrieval or RetrievalSettings()
        return _retrieval(model, info, uf, view, order, encoder, batch_size, gallery, settings)
    ids: list[Any] = []
    values: list[Any] = []
    for start in range(0, len(order), batch_size):
        examples = [view.example(i) for i in order[start : start + batch_size]]
        batch = encoder.batch(examples, info)
        best = model(info.name, info.head, batch).argmax(dim=-1).cpu().numpy()
        ids += batch["ids"]
        for i, k in enumerate(best.tolist()):
            if info.kind in ("vqa_soft", "answer_class"):
                values.append(info.labels[k])
            elif info.kind == "label":
                values.append(k)
            elif info.head == "regions":
                x1, y1, x2, y2 = batch["region_boxes"][i, 0, k].tolist()
                values.append([x1, y1, x2 - x1, y2 - y1])
            elif info.kind == "box_choice":
                values.append(batch["cand_boxes"][i][k].tolist())
            else:
                values.append(int(batch["cand_ids"][i][k]))
    if info.kind in ("box_choice",):
        return ids, np.asarray(values, dtype=np.float64).reshape(-1, 4), {}
    return ids, values, {}


@dataclass(frozen=True)
class RetrievalSettings:
    """Up to ``full_matrix_up_to`` gallery images: the full score matrix (NPZ, both
    directions scored). Beyond: the first pass keeps each caption's ``rerank_top`` images
    and the alignment head re-ranks them (ranked-list JSON, t2i R@K only)."""

    full_matrix_up_to: int = 1000
    rerank_top: int = 100

    def __post_init__(self) -> None:
        if self.rerank_top < MIN_RANKED:
            raise ValueError(
                f"rerank_top {self.rerank_top}: a ranked list needs at least {MIN_RANKED} images"
            )


def _retrieval(
    model: Baseline,
    info: TaskInfo,
    uf: UnifiedFile,
    view: Any,
    order: list[int],
    encoder: Encoder,
    batch_size: int,
    gallery_rows: np.ndarray | None,
    settings: RetrievalSettings,
) -> Values:
    """The full caption x candidate score matrix of the cross-encoder's alignment score, or
    beyond ``settings.full_matrix_up_to`` images, ranked lists from the first pass
    re-ranked by it."""
    if gallery_rows is None:
        candidates = view.column("candidates").astype(np.int64)
    else:
        candidates = np.asarray(gallery_rows, dtype=np.int64)
    lookup = resolve_features(uf, "auto", candidates, view.where, "error")
    gallery = encoder.regions([[(lookup.read(int(r)), int(r))] for r in candidates])
    keys = uf.image_keys[candidates]
    image_ids = np.array([int(str(k).split(":", 1)[1]) for k in keys], dtype=np.int64)
    examples = [view.example(i) for i in order]
    text = encoder.text(examples, info)
    ids = [ex["id"] for ex in examples]

    def score_pairs(t: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(info.name, info.head, {"text": t, **images}).float().cpu()

    m = len(candidates)
    if m <= settings.full_matrix_up_to or m <= settings.rerank_top:
        scores = full_matrix(score_pairs, text, gallery, batch_size)
        return ids, scores, {"image_ids": image_ids}
    text_emb = torch.cat(
        [
            model.embed_text(info.name, text[s : s + batch_size]).cpu()
            for s in range(0, len(text), batch_size)
        ]
    )
    image_emb = torch.cat(
        [
            model.embed_images(
                info.name, *(gallery[k][s : s + batch_size] for k in REGION_KEYS[:3])
            ).cpu()
            for s in range(0, m, batch_size)
        ]
    )
    top = first_pass_top(text_emb, image_emb, settings.rerank_top)
    ranked = rerank(score_pairs, text, gallery, top, image_ids, batch_size)
    return ids, ranked, {RANKED: True}


def prediction_bytes(task: str, values: Values) -> bytes:
    """The file of ``values`` through the metric's writer (ranked lists: the retrieval
    ranked-list writer, the second format the scorer accepts)."""
    ids, vals, extra = values
    if extra.get(RANKED):
        return write_ranked_lists(ids, vals)
    return SCORERS[tasks.get(task).metric].write(ids, vals, **extra)


def extension(values: Values) -> str:
    """The file extension the values are written with: ranked lists are JSON."""
    return "json" if values[2].get(RANKED) else ""


def concat(parts: list[Values]) -> Values:
    """The values of a multi-split phase (refer ``all``): one file, rows of every split."""
    if len(parts) == 1:
        return parts[0]
    ids = [i for p in parts for i in p[0]]
    first = parts[0][1]
    if isinstance(first, np.ndarray):
        return ids, np.concatenate([p[1] for p in parts]), parts[0][2]
    return ids, [v for p in parts for v in p[1]], parts[0][2]


def predict_phase(
    model: Baseline,
    info: TaskInfo,
    uf: UnifiedFile,
    phase: str,
    encoder: Encoder,
    retrieval: RetrievalSettings | None = None,
) -> tuple[bytes, str]:
    """The phase's prediction file and its extension (the metric's first format, or
    ``json`` for ranked retrieval lists)."""
    parts = [
        predict_split(model, info, uf, s, encoder, retrieval=retrieval)
        for s in phase_splits(info.name, phase)
    ]
    values = concat(parts)
    ext = extension(values) or SCORERS[tasks.get(info.name).metric].formats[0].kind
    return prediction_bytes(info.name, values), ext
