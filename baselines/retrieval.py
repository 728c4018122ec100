"""Retrieval: the negatives a caption is trained against, the first pass's embedding loss,
and prediction over a gallery (the full score matrix, or a cheap first pass re-ranked).

The alignment head is a cross-encoder: a (caption, image) pair is one sequence, so a full
caption x image matrix costs one encoder pass per pair (5,000 x 5,000 = 25 M passes on
COCO's 5k test). Beyond ``full_matrix_up_to`` images the caption and the image are each
encoded once alone (the first pass: unit embeddings, trained with an in-batch contrastive
loss next to the alignment loss), their dot products pick each caption's ``rerank_top``
images, and only those pairs go through the alignment head; the file is then ranked lists
(``[{"caption_id", "image_ids"}]``), which the retrieval scorer accepts for t2i R@K.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

#: Region tensors of a batch: what a pair takes from its image.
REGION_KEYS = ("region_feats", "region_geo", "region_mask", "region_boxes")
#: Temperature of the first pass's contrastive loss (unit embeddings: cosine / 0.05).
FIRST_PASS_TEMPERATURE = 0.05


def negative_index(
    image_rows: torch.Tensor,
    negatives: int,
    captions: torch.Tensor,
    scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each caption of ``captions`` (batch rows), the batch rows of the images it is
    trained against: its own first, then ``negatives`` others ([b, K]), and a mask of the
    negatives that show the caption's own image (the loss ignores them).

    Without ``scores`` the negatives are the next images of the batch (cyclically); with
    ``scores`` ([b, B], the current model's alignment scores of each caption against every
    image of the batch) they are the highest-scoring images that are not the caption's
    (hard negatives, 12-in-1's option)."""
    b_all = len(image_rows)
    k = min(negatives + 1, b_all)
    own = image_rows[captions][:, None]
    if scores is None:
        j = (captions[:, None] + torch.arange(k)[None]) % b_all
    else:
        s = scores.float().masked_fill(image_rows[None, :] == own, float("-inf"))
        picked = s.topk(k - 1, dim=1).indices  # fewer real negatives: same-image ones, masked
        j = torch.cat([captions[:, None], picked], dim=1)
    same = (image_rows[j] == own) & (torch.arange(k)[None] > 0)
    return j, same


def pairs_of(batch: dict[str, Any], captions: torch.Tensor, j: torch.Tensor) -> dict[str, Any]:
    """The (caption, image) sequences: caption ``captions[i]`` with the images ``j[i]``."""
    k = j.shape[1]
    pairs: dict[str, Any] = {"text": batch["text"][captions].repeat_interleave(k, dim=0)}
    for key in REGION_KEYS:
        pairs[key] = batch[key][j.reshape(-1)]
    return pairs


@torch.no_grad()
def batch_scores(
    model: Any, task: str, head: str, batch: dict[str, Any], captions: torch.Tensor
) -> torch.Tensor:
    """Alignment scores [b, B] of the given captions against every image of the batch, in
    eval mode (no dropout, no random draw), for hard-negative mining."""
    was_training = model.training
    model.eval()
    try:
        b_all = batch["text"].shape[0]
        every = torch.arange(b_all)[None].expand(len(captions), b_all)
        out = model(task, head, pairs_of(batch, captions, every)).float()
    finally:
        model.train(was_training)
    return out.view(len(captions), b_all)


def first_pass_loss(
    model: Any, task: str, batch: dict[str, Any], captions: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of each caption's embedding against the embeddings of every image of
    the (global) batch, its own image the target; other captions of the same image are not
    negatives. Each rank embeds its captions and all the batch's images, so the averaged
    gradient equals a one-process run's."""
    text = model.embed_text(task, batch["text"][captions])
    images = model.embed_images(
        task, batch["region_feats"], batch["region_geo"], batch["region_mask"]
    )
    logits = text @ images.T / FIRST_PASS_TEMPERATURE
    rows = batch["target"].to(logits.device)
    cap = captions.to(logits.device)
    other = (rows[None, :] == rows[cap][:, None]) & (
        torch.arange(len(rows), device=logits.device)[None] != cap[:, None]
    )
    return F.cross_entropy(logits.masked_fill(other, float("-inf")), cap)


# --------------------------------------------------------------------------- prediction


Tensors = dict[str, torch.Tensor]


def full_matrix(
    score_pairs: Callable[[torch.Tensor, Tensors], torch.Tensor],
    text: torch.Tensor,
    gallery: Tensors,
    batch_size: int,
) -> np.ndarray:
    """float32 [N, M]: every caption against every gallery image, at most ``4 x
    batch_size`` pairs per forward pass (several captions against a small gallery, or
    one caption against a block of a large one), so memory does not grow with M."""
    n, m = text.shape[0], gallery["region_feats"].shape[0]
    scores = np.zeros((n, m), dtype=np.float32)
    pairs = batch_size * 4
    per_chunk = max(1, pairs // max(m, 1))
    block = min(m, pairs)
    for start in range(0, n, per_chunk):
        rows = torch.arange(start, min(start + per_chunk, n))
        for first in range(0, m, block):
            cols = torch.arange(first, min(first + block, m))
            t = text[rows].repeat_interleave(len(cols), dim=0)
            images = {k: v[cols.repeat(len(rows))] for k, v in gallery.items()}
            s = score_pairs(t, images).reshape(len(rows), len(cols)).numpy()
            scores[start : start + len(rows), first : first + len(cols)] = s
    return scores


def first_pass_top(
    text_emb: torch.Tensor, image_emb: torch.Tensor, top: int, chunk: int = 1024
) -> torch.Tensor:
    """int64 [N, top]: each caption's ``top`` gallery columns by embedding dot product,
    best first (ties: lower column), ``chunk`` captions at a time (memory ``chunk x M``)."""
    out = torch.empty((text_emb.shape[0], top), dtype=torch.long)
    for start in range(0, text_emb.shape[0], chunk):
        s = text_emb[start : start + chunk] @ image_emb.T
        out[start : start + chunk] = _top_columns(s, top)
    return out


def _top_columns(scores: torch.Tensor, top: int) -> torch.Tensor:
    """The ``top`` highest columns per row, best first; equal scores: lower column first
    (a stable sort, so the order never depends on the sort algorithm)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :top]


def rerank(
    score_pairs: Callable[[torch.Tensor, Tensors], torch.Tensor],
    text: torch.Tensor,
    gallery: Tensors,
    candidates: torch.Tensor,
    image_ids: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """int64 [N, top]: each caption's candidate columns re-ordered by the alignment head,
    as image ids, best first. Equal scores: lower image id first (the scorer's tie rule),
    so the top-1 equals the full matrix's whenever the full matrix's best is a candidate."""
    n, top = candidates.shape
    ids = torch.from_numpy(np.asarray(image_ids, dtype=np.int64))
    out = np.empty((n, top), dtype=np.int64)
    per_chunk = max(1, (batch_size * 4) // top)
    for start in range(0, n, per_chunk):
        rows = torch.arange(start, min(start + per_chunk, n))
        cols = candidates[rows]  # [b, top]
        t = text[rows].repeat_interleave(top, dim=0)
        images = {k: v[cols.reshape(-1)] for k, v in gallery.items()}
        s = score_pairs(t, images).reshape(len(rows), top)
        cand_ids = ids[cols]
        by_id = torch.argsort(cand_ids, dim=1, stable=True)  # ties resolved by image id
        s_by_id = torch.gather(s, 1, by_id)
        order = torch.gather(by_id, 1, _top_columns(s_by_id, top))
        out[rows.numpy()] = torch.gather(cand_ids, 1, order).numpy()
    return out
