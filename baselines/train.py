"""Training: round-robin multi-task (or single-task) with stop-and-go, exact resume.

Determinism: every random draw comes from the seed (data order from ``(seed, task,
epoch)``, dropout and initialisation from torch's generator, saved in each checkpoint), so
a run resumed from a checkpoint continues with the same losses as one never stopped.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from baselines.distributed import from_rank0, mean_values, share, slice_batch, world, wrap
from baselines.inputs import Encoder, TaskInfo, task_info
from baselines.model import Baseline, ModelConfig, loss_of, parameter_count
from baselines.predict import RetrievalSettings, predict_split, prediction_bytes
from baselines.retrieval import batch_scores, first_pass_loss, negative_index, pairs_of
from baselines.schedule import StopAndGo, StopAndGoConfig
from baselines.text import PretrainedTokenizer, Tokenizer
from evalserver.metrics import load_groundtruth, score_file
from unify import tasks as task_specs
from unify.reader import UnifiedFile

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    tasks: list[str]
    max_steps: int = 1000
    time_budget: float = 0.0  # seconds; 0: none
    batch_size: int = 32
    task_batch_size: dict[str, int] = field(default_factory=dict)
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of max_steps
    clip: float = 1.0
    seed: int = 0
    val_every: int = 0  # iterations between validations; 0: one epoch of the largest task
    validate: bool = True
    negatives: int = 7  # sampled (in-batch) negative images per caption
    #: Retrieval negatives: the highest-scoring other images of the batch (the alignment
    #: head's scores, no gradient) instead of the next ones; 12-in-1's hard negatives.
    hard_negatives: bool = False
    #: Weight of the retrieval first pass's contrastive loss (caption and image embedded
    #: apart); 0: no first-pass embeddings (re-ranking then starts from pooled states).
    #: Small: the alignment head is what is scored (at 1.0 flickr30k's 32 examples were
    #: learned to 87.5 % instead of 97 % in 300 steps; at 0.1 the first pass still finds
    #: every caption's image first among them).
    first_pass_loss: float = 0.1
    first_pass_dim: int = 64
    #: Validation of retrieval: the full matrix up to this many gallery images, beyond it
    #: the first pass's ``rerank_top`` images re-ranked (as ``baseline predict``).
    full_matrix_up_to: int = 1000
    rerank_top: int = 100
    max_train_examples: int = 0  # per task; 0: all (tests train on a few)
    refer_candidates: bool = False  # refer: the dataset's boxes instead of detector regions
    text_only: bool = False  # the text-only twin: no region features (box geometry kept)
    text_encoder: str | None = None  # a pretrained transformers encoder (name or folder)
    dim: int = 128
    layers: int = 2
    attention_heads: int = 4
    ff: int = 256
    dropout: float = 0.1
    max_text: int = 24
    max_regions: int = 36
    stop_and_go: StopAndGoConfig = field(default_factory=StopAndGoConfig)
    device: str = "auto"
    threads: int = 0  # torch's CPU threads; 0: torch's default

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if "stop_and_go" in d and isinstance(d["stop_and_go"], dict):
            d["stop_and_go"] = StopAndGoConfig(**d["stop_and_go"])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**d)

    def batch_of(self, task: str) -> int:
        return self.task_batch_size.get(task, self.batch_size)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TaskStream:
    """A task's training examples in a seeded order, epoch after epoch; its position is
    part of the checkpoint."""

    def __init__(self, uf: UnifiedFile, info: TaskInfo, seed: int, limit: int) -> None:
        spec = task_specs.get(info.name)
        self.view = uf.split(info.name, spec.train_splits[0], features="auto", targets=True)
        self.n = min(len(self.view), limit) if limit else len(self.view)
        if self.n == 0:
            raise ValueError(f"{uf.path}: task {info.name} has no training examples")
        self.seed, self.key = seed, sum(info.name.encode())
        self.epoch, self.pos = 0, 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.key, self.epoch]).permutation(self.n)

    def take(self, size: int) -> list[dict[str, Any]]:
        out = []
        while len(out) < size:
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self.order = self._order()
            out.append(self.view.example(int(self.order[self.pos])))
            self.pos += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def restore(self, s: dict[str, int]) -> None:
        self.epoch, self.pos = s["epoch"], s["pos"]
        self.order = self._order()


def make_tokenizer(
    text_encoder: str | None, state: dict[str, Any] | None
) -> Tokenizer | PretrainedTokenizer | None:
    """The pretrained encoder's tokenizer, the checkpoint's own, or None (build one)."""
    if text_encoder:
        return PretrainedTokenizer(text_encoder)
    if state is not None:
        return Tokenizer(state["tokenizer"])
    return None


def build_tokenizer(uf: UnifiedFile, infos: list[TaskInfo], limit: int) -> Tokenizer:
    from baselines.inputs import example_text

    texts = []
    for info in infos:
        view = uf.split(
            info.name, task_specs.get(info.name).train_splits[0], select=list(info.text_fields)
        )
        n = min(len(view), limit) if limit else len(view)
        texts += [example_text(view.example(i), info.text_fields) for i in range(n)]
    return Tokenizer.build(texts)


def feature_dim(uf: UnifiedFile, task: str) -> int:
    view = uf.split(task, task_specs.get(task).train_splits[0], features="auto")
    f = view.example(0)["features"]
    f = f[0] if isinstance(f, list) else f
    return int(f["features"].shape[1])


class RoundRobinStep(torch.nn.Module):
    """The forward pass of one training iteration: every active task's batch through the
    model, one loss per task. One module call per step, so that ``DistributedDataParallel``
    (which wraps it) sees one forward and one backward per step and all-reduces the
    gradients in buckets while the backward runs; heads of tasks that did not train this
    step (stop-and-go) are unused, hence ``find_unused_parameters``."""

    def __init__(self, model: Baseline, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(
        self, jobs: list[tuple[TaskInfo, dict[str, Any]]], rank: int, size_world: int
    ) -> torch.Tensor:
        """Losses [tasks] of this rank's share of each global batch."""
        losses = []
        for info, batch in jobs:
            rows = share(batch["text"].shape[0], rank, size_world)
            if info.kind == "retrieval":
                losses.append(self._retrieval(info, batch, rows))
            else:
                part = slice_batch(batch, rows)
                logits = self.model(info.name, info.head, part).float()
                losses.append(loss_of(info.kind, info.head, logits, part["target"]))
        return torch.stack(losses)

    def _retrieval(self, info: TaskInfo, batch: dict[str, Any], rows: slice) -> torch.Tensor:
        """Cross-entropy over each caption's image and its negatives (drawn from the global
        batch, then this rank's captions), plus the first pass's embedding loss."""
        captions = torch.arange(batch["text"].shape[0])[rows]
        scores = None
        if self.cfg.hard_negatives:
            scores = batch_scores(self.model, info.name, info.head, batch, captions).cpu()
        j, same = negative_index(batch["target"], self.cfg.negatives, captions, scores)
        logits = self.model(info.name, info.head, pairs_of(batch, captions, j)).float()
        logits = logits.view(same.shape).masked_fill(same.to(logits.device), float("-inf"))
        target = torch.zeros(len(captions), dtype=torch.long)
        loss = loss_of(info.kind, info.head, logits, target)
        if self.cfg.first_pass_loss:
            loss = loss + self.cfg.first_pass_loss * first_pass_loss(
                self.model, info.name, batch, captions
            )
        return loss


class Trainer:
    def __init__(self, data: Path, out: Path, cfg: TrainConfig, resume: bool = False) -> None:
        self.data, self.out, self.cfg = Path(data), Path(out), cfg
        self.uf = UnifiedFile(self.data)
        self.rank, self.world = world()
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.infos = [task_info(self.uf, t, cfg.refer_candidates) for t in cfg.tasks]
        ckpt = self.out / CHECKPOINT
        state = None
        if resume:
            if not ckpt.exists():
                raise FileNotFoundError(f"{ckpt}: no checkpoint to resume")
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
        self.tokenizer = make_tokenizer(cfg.text_encoder, state)
        if self.tokenizer is None:
            self.tokenizer = build_tokenizer(self.uf, self.infos, cfg.max_train_examples)
        torch.manual_seed(cfg.seed)
        heads: dict[str, int] = {}
        for info in self.infos:
            heads[info.head] = info.num_classes
        self.model_cfg = ModelConfig(
            vocab_size=1 if cfg.text_encoder else len(self.tokenizer),
            feature_dim=feature_dim(self.uf, cfg.tasks[0]),
            tasks=list(cfg.tasks),
            heads=heads,
            dim=cfg.dim,
            layers=cfg.layers,
            attention_heads=cfg.attention_heads,
            ff=cfg.ff,
            dropout=cfg.dropout,
            max_text=cfg.max_text,
            text_encoder=cfg.text_encoder,
            first_pass_dim=_first_pass_dim(cfg, self.infos, state),
        )
        self.model = Baseline(self.model_cfg).to(self.device)
        self.encoder = Encoder(
            self.tokenizer,
            _sizes(self.uf),
            cfg.max_text,
            cfg.max_regions,
            self.model_cfg.feature_dim,
            cfg.text_only,
        )
        self.streams = {
            i.name: TaskStream(self.uf, i, cfg.seed, cfg.max_train_examples) for i in self.infos
        }
        decay = [p for n, p in self.model.named_parameters() if p.dim() > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() <= 1]
        self.opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        warm = max(1, int(cfg.warmup * cfg.max_steps))
        total = max(cfg.max_steps, warm + 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm)))
        )
        self.sg = StopAndGo(list(cfg.tasks), cfg.stop_and_go)
        self.step = 0
        self.elapsed = 0.0
        self.seen = dict.fromkeys(cfg.tasks, 0)
        self.history: list[dict[str, Any]] = []
        if state is not None:
            self._restore(state)
        # After the restore: DDP broadcasts rank 0's parameters when it wraps the model.
        self.step_module = wrap(RoundRobinStep(self.model, cfg), self.world)

    # ------------------------------------------------------------------ checkpoints
    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.sg.load_state_dict(state["stop_and_go"])
        for t, s in state["streams"].items():
            self.streams[t].restore(s)
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.seen, self.history = state["seen"], state["history"]
        torch.set_rng_state(state["torch_rng"])

    def save(self) -> None:
        if self.rank != 0:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "stop_and_go": self.sg.state_dict(),
            "streams": {t: s.state() for t, s in self.streams.items()},
            "step": self.step,
            "elapsed": self.elapsed,
            "seen": self.seen,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "tokenizer": self.tokenizer.to_json(),
            "model_config": self.model_cfg.to_dict(),
            "train_config": _jsonable(asdict(self.cfg)),
            "data": str(self.data),
        }
        tmp = self.out / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    # ------------------------------------------------------------------ training
    def train_step(self) -> dict[str, float]:
        """One round-robin iteration: a batch of every active task, one optimizer step."""
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        jobs = []
        for info in self.infos:
            if not self.sg.trains(info.name, self.step):
                continue
            examples = self.streams[info.name].take(self.cfg.batch_of(info.name))
            jobs.append((info, self.encoder.batch(examples, info)))
            self.seen[info.name] += len(examples)
        if not jobs:  # every task stopped and none due this iteration
            self.step += 1
            self.sched.step()
            return {}
        with self._autocast():
            task_losses = self.step_module(jobs, self.rank, self.world)
        task_losses.sum().backward()  # DDP averages the gradients over ranks here
        if self.cfg.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        values = mean_values(task_losses.detach().double().cpu(), self.world)
        return {info.name: float(v) for (info, _), v in zip(jobs, values, strict=True)}

    def _autocast(self) -> Any:
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def val_every(self) -> int:
        if self.cfg.val_every:
            return self.cfg.val_every
        return max(math.ceil(s.n / self.cfg.batch_of(t)) for t, s in self.streams.items())

    def validate(self) -> dict[str, float]:
        """Each task's primary metric on its ``val_split``, scored by the server's scorer."""
        scores = {}
        for info in self.infos:
            spec = task_specs.get(info.name)
            settings = RetrievalSettings(self.cfg.full_matrix_up_to, self.cfg.rerank_top)
            values = predict_split(
                self.model, info, self.uf, spec.val_split, self.encoder, retrieval=settings
            )
            gt = load_groundtruth(self.uf, info.name, spec.val_split)
            result = score_file(info.name, gt, prediction_bytes(info.name, values))
            scores[info.name] = float(result.metrics[spec.primary])
        return scores

    def run(self, progress: bool = True) -> dict[str, Any]:
        log = (self.out / "metrics.jsonl").open("a") if self.rank == 0 else io.StringIO()
        progress = progress and self.rank == 0
        every = self.val_every()
        start = time.monotonic() - self.elapsed
        bar = tqdm(total=self.cfg.max_steps, initial=self.step, disable=not progress, desc="train")
        try:
            while self.step < self.cfg.max_steps:
                over = (
                    bool(self.cfg.time_budget) and time.monotonic() - start >= self.cfg.time_budget
                )
                if from_rank0(over, self.world):
                    break
                losses = self.train_step()
                self.elapsed = time.monotonic() - start
                log.write(
                    json.dumps(
                        {
                            "step": self.step,
                            "loss": losses,
                            "lr": self.sched.get_last_lr()[0],
                            "seconds": round(self.elapsed, 3),
                        }
                    )
                    + "\n"
                )
                bar.update(1)
                bar.set_postfix(loss=f"{sum(losses.values()):.3f}")
                if self.cfg.validate and self.step % every == 0:
                    self._validate_and_log(log)
            if self.cfg.validate and (not self.history or self.history[-1]["step"] != self.step):
                self._validate_and_log(log)
            self.elapsed = time.monotonic() - start
            self.save()
        finally:
            bar.close()
            log.close()
        if self.rank == 0:
            plot_curves(self.history, self.out / "validation.png")
        validating = sum(h.get("seconds", 0.0) for h in self.history)
        training = max(self.elapsed - validating, 1e-9)
        return {
            "steps": self.step,
            "seconds": self.elapsed,
            "validation_seconds": validating,
            "examples_per_second": sum(self.seen.values()) / training,
            "seen": self.seen,
            "parameters": parameter_count(self.model),
            "validation": self.history[-1]["scores"] if self.history else {},
        }

    def _validate_and_log(self, log: Any) -> None:
        began = time.monotonic()
        scores = from_rank0(self.validate() if self.rank == 0 else None, self.world)
        for t, v in scores.items():
            self.sg.update(t, v)
        entry = {
            "step": self.step,
            "scores": scores,
            "stopped": [t for t, s in self.sg.states.items() if s.stopped],
            # how long this validation took: training throughput leaves it out
            "seconds": round(time.monotonic() - began, 3),
        }
        self.history.append(entry)
        log.write(json.dumps({"validation": entry}) + "\n")
        log.flush()
        self.save()


def _first_pass_dim(cfg: TrainConfig, infos: list[TaskInfo], state: dict[str, Any] | None) -> int:
    """The first pass's width: the checkpoint's when resuming (0 in one from before the
    first pass), else ``first_pass_dim`` when a retrieval task trains it."""
    if state is not None:
        return int(state["model_config"].get("first_pass_dim", 0))
    trained = cfg.first_pass_loss and any(i.kind == "retrieval" for i in infos)
    return cfg.first_pass_dim if trained else 0


def _sizes(uf: UnifiedFile) -> np.ndarray:
    from baselines.inputs import image_sizes

    return image_sizes(uf)


def _jsonable(d: Any) -> Any:
    return json.loads(
        json.dumps(d, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o))
    )


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Per-task validation curves as a PNG (drawn with Pillow, no plotting library)."""
    from baselines.plot import curves_png

    if history:
        curves_png(history, path)


def load_run(run: Path, data: Path) -> tuple[Baseline, list[TaskInfo], Encoder, UnifiedFile]:
    """A trained run's model (eval mode), its tasks and the encoder to feed it ``data``."""
    ckpt = Path(run) / CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: no checkpoint (train with `baseline train --out {run}`)")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    tcfg = state["train_config"]
    mcfg = ModelConfig(**state["model_config"])
    model = Baseline(mcfg)
    model.load_state_dict(state["model"])
    model.eval()
    uf = UnifiedFile(data)
    missing = [t for t in mcfg.tasks if t not in uf.tasks]
    if missing:
        raise ValueError(
            f"{data}: the run was trained on task(s) {', '.join(missing)}, not in this file"
        )
    infos = [task_info(uf, t, tcfg.get("refer_candidates", False)) for t in mcfg.tasks]
    tokenizer = make_tokenizer(mcfg.text_encoder, state)
    encoder = Encoder(
        tokenizer,
        _sizes(uf),
        mcfg.max_text,
        tcfg.get("max_regions", 36),
        mcfg.feature_dim,
        tcfg.get("text_only", False),
    )
    return model, infos, encoder, uf
