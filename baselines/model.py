"""A transformer over [task token, text tokens, image regions (+ candidate boxes)].

One encoder shared by every task; small heads on top, one per head key of ``TaskInfo``
(answer classifiers per label set, one alignment score for retrieval, one score per region
for grounding, one score per candidate box, classifiers for verification).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# Segment types of the input sequence.
_TASK, _TEXT, _IMAGE0, _IMAGE1, _CANDIDATE = range(5)


@dataclass
class ModelConfig:
    """Sizes; the defaults train on a CPU in minutes."""

    vocab_size: int
    feature_dim: int
    tasks: list[str]
    heads: dict[str, int]  # head key -> classes (0: a score head)
    dim: int = 128
    layers: int = 2
    attention_heads: int = 4
    ff: int = 256
    dropout: float = 0.1
    max_text: int = 24
    text_encoder: str | None = None  # a transformers model name or folder
    #: Width of the retrieval first pass's caption and image embeddings (0: none, as in
    #: checkpoints from before the first pass; it then falls back on pooled hidden states).
    first_pass_dim: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Baseline(nn.Module):
    """The multi-task model; ``forward`` returns the logits of one task's head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.task_index = {t: i for i, t in enumerate(cfg.tasks)}
        self.tok = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
        self.text_model: nn.Module | None = None
        if cfg.text_encoder:
            from transformers import AutoModel

            self.text_model = AutoModel.from_pretrained(cfg.text_encoder)
            self.text_proj = nn.Linear(self.text_model.config.hidden_size, d)
        self.pos = nn.Embedding(cfg.max_text, d)
        self.task = nn.Embedding(len(cfg.tasks), d)
        self.segment = nn.Embedding(5, d)
        self.region = nn.Linear(cfg.feature_dim, d)
        self.geo = nn.Linear(5, d)
        self.cand = nn.Linear(cfg.feature_dim, d)
        self.cand_geo = nn.Linear(5, d)
        self.in_norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(
            d, cfg.attention_heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.heads = nn.ModuleDict(
            {
                key.replace(".", "_"): (
                    nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, n))
                    if n
                    else nn.Linear(d, 1)
                )
                for key, n in cfg.heads.items()
            }
        )
        if cfg.first_pass_dim:  # created last: the other parameters' initial draws stay
            self.first_pass_text = nn.Linear(d, cfg.first_pass_dim)
            self.first_pass_image = nn.Linear(d, cfg.first_pass_dim)

    def head(self, key: str) -> nn.Module:
        return self.heads[key.replace(".", "_")]

    def encode(
        self,
        task: str,
        text: torch.Tensor,
        region_feats: torch.Tensor,
        region_geo: torch.Tensor,
        region_mask: torch.Tensor,
        cand_feats: torch.Tensor | None = None,
        cand_geo: torch.Tensor | None = None,
        cand_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, slice]]:
        """Hidden states [B, S, d] and where each segment lies in S."""
        # Trailing padding columns are masked out of attention and read by no head: drop
        # them, so a batch of 7-word questions costs 7 tokens, not ``max_text`` (tokens are
        # left-aligned, 0 only as padding). Retrieval scoring, caption x gallery pairs, is
        # most of a validation's time.
        text = text[:, : max(1, int((text != 0).sum(dim=1).max()))]
        b, t = text.shape
        dev = self.tok.weight.device
        text = text.to(dev)
        parts = [
            self.task(torch.full((b, 1), self.task_index[task], device=dev))
            + self.segment.weight[_TASK]
        ]
        masks = [torch.ones((b, 1), dtype=torch.bool, device=dev)]
        positions = torch.arange(t, device=dev)
        if self.text_model is not None:
            words = self.text_model(input_ids=text, attention_mask=(text != 0).long())
            words = self.text_proj(words.last_hidden_state)
        elif t == 0:  # an image alone (the retrieval first pass)
            words = torch.zeros((b, 0, self.cfg.dim), device=dev)
        else:
            words = self.tok(text)
        parts.append(words + self.pos(positions)[None] + self.segment.weight[_TEXT])
        masks.append(text != 0)
        layout = {"text": slice(1, 1 + t)}
        start = 1 + t
        p, r = region_feats.shape[1], region_feats.shape[2]
        for j in range(p):
            seg = self.segment.weight[_IMAGE0 if j == 0 else _IMAGE1]
            parts.append(
                self.region(region_feats[:, j].to(dev)) + self.geo(region_geo[:, j].to(dev)) + seg
            )
            masks.append(region_mask[:, j].to(dev))
            layout[f"image{j}"] = slice(start, start + r)
            start += r
        if cand_feats is not None and cand_geo is not None and cand_mask is not None:
            c = cand_feats.shape[1]
            parts.append(
                self.cand(cand_feats.to(dev))
                + self.cand_geo(cand_geo.to(dev))
                + self.segment.weight[_CANDIDATE]
            )
            masks.append(cand_mask.to(dev))
            layout["candidates"] = slice(start, start + c)
        x = self.in_norm(torch.cat(parts, dim=1))
        keep = torch.cat(masks, dim=1)
        h = self.encoder(x, src_key_padding_mask=~keep)
        return self.out_norm(h), layout

    def forward(self, task: str, head: str, batch: dict[str, Any]) -> torch.Tensor:
        """Logits: [B, classes] (class heads), [B] (align), [B, R] (regions of the first
        image), [B, C] (candidates); padding scores -inf."""
        cand = [batch.get(k) for k in ("cand_feats", "cand_geo", "cand_mask")]
        h, layout = self.encode(
            task,
            batch["text"],
            batch["region_feats"],
            batch["region_geo"],
            batch["region_mask"],
            *cand,
        )
        if head == "regions":
            s = self.head(head)(h[:, layout["image0"]]).squeeze(-1)
            return s.masked_fill(~batch["region_mask"][:, 0].to(s.device), float("-inf"))
        if head == "candidates":
            s = self.head(head)(h[:, layout["candidates"]]).squeeze(-1)
            return s.masked_fill(~batch["cand_mask"].to(s.device), float("-inf"))
        pooled = h[:, 0]
        if head == "align":
            return self.head(head)(pooled).squeeze(-1)
        return self.head(head)(pooled)

    def embed_text(self, task: str, text: torch.Tensor) -> torch.Tensor:
        """Unit caption embeddings [B, D] for the retrieval first pass: the caption encoded
        alone (no image), its tokens' states averaged and projected."""
        b = text.shape[0]
        f = self.region.in_features
        none = torch.zeros((b, 0, 1, f)), torch.zeros((b, 0, 1, 5))
        h, layout = self.encode(task, text, *none, torch.zeros((b, 0, 1), dtype=torch.bool))
        words = h[:, layout["text"]]
        # ``encode`` drops trailing padding columns: the mask follows the states it kept.
        mask = (text[:, : words.shape[1]] != 0).to(h.device)
        pooled = _masked_mean(words, mask)
        if self.cfg.first_pass_dim:
            pooled = self.first_pass_text(pooled)
        return F.normalize(pooled.float(), dim=-1)

    def embed_images(
        self,
        task: str,
        region_feats: torch.Tensor,
        region_geo: torch.Tensor,
        region_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Unit image embeddings [B, D] for the retrieval first pass: the image's regions
        encoded without a caption, averaged and projected (first image of each example)."""
        b = region_feats.shape[0]
        text = torch.zeros((b, 0), dtype=torch.long)
        feats, geo, mask = region_feats[:, :1], region_geo[:, :1], region_mask[:, :1]
        h, layout = self.encode(task, text, feats, geo, mask)
        pooled = _masked_mean(h[:, layout["image0"]], mask[:, 0].to(h.device))
        if self.cfg.first_pass_dim:
            pooled = self.first_pass_image(pooled)
        return F.normalize(pooled.float(), dim=-1)


def _masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def loss_of(kind: str, head: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """12-in-1's losses: BCE on VQA soft scores (times the classes, as ViLBERT), softmax
    cross-entropy otherwise (over classes, regions, candidates or retrieval pairs)."""
    target = target.to(logits.device)
    if kind == "vqa_soft":
        return F.binary_cross_entropy_with_logits(logits, target) * logits.shape[1]
    keep = target >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[keep], target[keep])
