"""From the reader's example dicts to model tensors, task by task.

What a task feeds the model is derived from its ``TaskSpec``: the text is every string input
(a GuessWhat?! dialogue becomes its questions and answers), the image is the region features
``features="auto"`` chose, and the target follows the task's ``target_adapter``. Boxes
are normalised by the image's size from ``/images``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unify import tasks
from unify.errors import DataError
from unify.reader import SplitView, UnifiedFile
from unify.schema import FEATURES, IMAGES

#: Target adapters whose answer is one of a task's candidate boxes (the dataset defines them).
CANDIDATE_KINDS = ("choice", "object_choice")
#: Target adapters answered by a class of the task's label set.
CLASS_KINDS = ("vqa_soft", "answer_class", "label")
#: Where each candidate kind keeps its boxes (x, y, w, h) and ids in an example.
_CANDIDATES: dict[str, tuple[str, str | None]] = {
    "choice": ("candidate_boxes", "candidate_box_ids"),
    "object_choice": ("objects", None),
    "box_choice": ("regions", None),
}


@dataclass(frozen=True)
class TaskInfo:
    """What the model needs to know about one task of one file."""

    name: str
    kind: str  # the target adapter
    head: str  # the head it trains: tasks with the same head share its weights
    num_classes: int  # classes of a class head, 0 otherwise
    labels: tuple[str, ...]  # class names (answers of a vocabulary, or a label set)
    pair: bool  # two images per example (nlvr2)
    text_fields: tuple[str, ...]

    @property
    def uses_candidates(self) -> bool:
        return self.kind in CANDIDATE_KINDS


def task_info(uf: UnifiedFile, task: str, refer_candidates: bool = False) -> TaskInfo:
    """Heads by target adapter and label set: vqa2 and vgqa share the ``vqa2`` vocabulary,
    hence one answer classifier, as in 12-in-1; gqa has its own."""
    spec = tasks.get(task)
    kind = spec.target_adapter
    labels: tuple[str, ...] = ()
    if kind in CLASS_KINDS:
        label_set = uf.task_attrs(task).get("label_set")
        if label_set is None:
            raise DataError(f"{uf.path}: task {task} has no label_set attribute")
        label_set = str(label_set)
        if label_set.startswith("["):
            labels = tuple(json.loads(label_set))
        else:
            labels = tuple(uf.vocab(label_set))
        head = f"classes:{label_set}"
    elif kind == "retrieval":
        head = "align"
    elif kind == "box_choice" and not refer_candidates:
        head = "regions"
    else:
        head = "candidates"
    view = uf.split(task, spec.train_splits[0])
    text_fields = tuple(f for f in spec.inputs if f in view.fields and _is_text(f, view, kind))
    first = view.example(0) if len(view) else {}
    pair = isinstance(first.get("image_index"), list)
    return TaskInfo(task, kind, head, len(labels), labels, pair, text_fields)


def _is_text(field: str, view: SplitView, kind: str) -> bool:
    """A string column, or a dialogue (ragged questions and answers)."""
    if field in {c for c, _ in _CANDIDATES.values()}:
        return False
    value = view.example(0)[field] if len(view) else ""
    return isinstance(value, str) or (isinstance(value, dict) and "questions" in value)


def example_text(example: dict[str, Any], fields: tuple[str, ...]) -> str:
    parts = []
    for f in fields:
        value = example[f]
        if isinstance(value, dict):  # a dialogue: question answer question answer ...
            parts += [f"{q} {a}" for q, a in zip(value["questions"], value["answers"], strict=True)]
        else:
            parts.append(str(value))
    return " ; ".join(parts)


def image_sizes(uf: UnifiedFile) -> np.ndarray:
    """float32 [len(/images), 2]: width, height; 0 where nothing states it.

    ``/images`` has a size only where a raw file states one: Flickr30k (Karpathy's file),
    NLVR2 and GQA's own images have none (-1). Their region boxes are pixels of the
    image the feature TSV describes, whose ``image_w``/``image_h`` every feature set keeps
    (``image_size``), so those fill the gaps. Without them a Flickr30k box stayed in pixels
    (hundreds, areas of 1e5) and drowned the region features in its geometry: the model
    memorised training images but never generalised (flickr30k_retrieval at chance).
    """
    g = uf.h5[IMAGES]
    size = np.stack([uf.read(g["width"]), uf.read(g["height"])], axis=1).astype(np.float32)
    size[(size <= 0).any(axis=1)] = 0.0
    for name in uf.feature_names():
        group = uf.h5[FEATURES][name]
        rows = uf.read(group["image"]).astype(np.int64)
        stated = uf.read(group["image_size"]).astype(np.float32).reshape(-1, 2)
        fill = (size[rows] <= 0).any(axis=1) & (stated > 0).all(axis=1)
        size[rows[fill]] = stated[fill]
    return size


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (both x1, y1, x2, y2)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def geometry(xyxy: np.ndarray, size: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 over the image's width and height, and the relative area.

    An image whose size nothing states (0) is measured by the extent of its boxes, so the
    geometry stays in [0, 1] whatever the source (pixels would swamp the features).
    """
    g = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    w, h = float(size[0]), float(size[1])
    if w <= 0 or h <= 0:
        w = max(float(g[:, 2].max(initial=0.0)), 1.0)
        h = max(float(g[:, 3].max(initial=0.0)), 1.0)
    g = g / np.array([w, h, w, h], np.float32)
    area = (g[:, 2] - g[:, 0]).clip(0) * (g[:, 3] - g[:, 1]).clip(0)
    return np.concatenate([g, area[:, None]], axis=1)


@dataclass
class Encoder:
    """Turns a task's example dicts into the tensors of one batch."""

    tokenizer: Any
    sizes: np.ndarray
    max_text: int = 24
    max_regions: int = 36
    feature_dim: int = 0
    #: The text-only twin: region features are zeros (box geometry is kept, since boxes
    #: are the answers of the grounding tasks); what the text alone allows.
    text_only: bool = False

    def images(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Region tensors ``[B, P, R, ...]`` (P = 1, or 2 for an image pair)."""
        per = []
        for ex in examples:
            feats = ex["features"] if isinstance(ex["features"], list) else [ex["features"]]
            rows = ex["image_index"] if isinstance(ex["image_index"], list) else [ex["image_index"]]
            per.append(list(zip(feats, rows, strict=True)))
        return self.regions(per)

    def regions(
        self, per: list[list[tuple[dict[str, np.ndarray] | None, int]]]
    ) -> dict[str, torch.Tensor]:
        b, p = len(per), max(len(x) for x in per)
        r = max(
            (min(len(f["boxes"]), self.max_regions) for x in per for f, _ in x if f is not None),
            default=1,
        )
        r = max(r, 1)
        feats = np.zeros((b, p, r, self.feature_dim), np.float32)
        geo = np.zeros((b, p, r, 5), np.float32)
        boxes = np.zeros((b, p, r, 4), np.float32)
        mask = np.zeros((b, p, r), bool)
        for i, x in enumerate(per):
            for j, (f, row) in enumerate(x):
                if f is None:
                    continue
                n = min(len(f["boxes"]), self.max_regions)
                if not self.text_only:
                    feats[i, j, :n] = f["features"][:n]
                boxes[i, j, :n] = f["boxes"][:n]
                geo[i, j, :n] = geometry(f["boxes"][:n], self.sizes[row])
                mask[i, j, :n] = True
        return {
            "region_feats": torch.from_numpy(feats),
            "region_geo": torch.from_numpy(geo),
            "region_mask": torch.from_numpy(mask),
            "region_boxes": torch.from_numpy(boxes),
        }

    def text(self, examples: list[dict[str, Any]], info: TaskInfo) -> torch.Tensor:
        texts = [example_text(ex, info.text_fields) for ex in examples]
        return torch.from_numpy(self.tokenizer.encode(texts, self.max_text))

    def candidates(self, examples: list[dict[str, Any]], info: TaskInfo) -> dict[str, Any]:
        """The dataset's candidate boxes: geometry and the features of the detector region
        that overlaps each most (a box of its own has no features)."""
        column, id_column = _CANDIDATES[info.kind]
        boxes_xywh, ids = [], []
        for ex in examples:
            value = ex[column]
            if isinstance(value, dict):
                boxes_xywh.append(np.asarray(value["boxes"], np.float64).reshape(-1, 4))
                ids.append(np.asarray(value.get("ids", value.get("ann_ids")), np.int64))
            else:
                boxes_xywh.append(np.asarray(value, np.float64).reshape(-1, 4))
                ids.append(np.asarray(ex[id_column], np.int64))
        b, c = len(examples), max(max(len(x) for x in boxes_xywh), 1)
        geo = np.zeros((b, c, 5), np.float32)
        feats = np.zeros((b, c, self.feature_dim), np.float32)
        mask = np.zeros((b, c), bool)
        for i, (ex, bx) in enumerate(zip(examples, boxes_xywh, strict=True)):
            xyxy = xywh_to_xyxy(bx)
            geo[i, : len(bx)] = geometry(xyxy, self.sizes[ex["image_index"]])
            f = ex["features"]
            if f is not None and len(f["boxes"]) and len(bx) and not self.text_only:
                best = iou_matrix(xyxy, f["boxes"]).argmax(axis=1)
                feats[i, : len(bx)] = f["features"][best]
            mask[i, : len(bx)] = True
        return {
            "cand_geo": torch.from_numpy(geo),
            "cand_feats": torch.from_numpy(feats),
            "cand_mask": torch.from_numpy(mask),
            "cand_boxes": boxes_xywh,
            "cand_ids": ids,
        }

    def batch(self, examples: list[dict[str, Any]], info: TaskInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text(examples, info), **self.images(examples)}
        if info.head == "candidates":
            out.update(self.candidates(examples, info))
        out["target"] = self.targets(examples, info, out)
        out["ids"] = [ex["id"] for ex in examples]
        return out

    def targets(
        self, examples: list[dict[str, Any]], info: TaskInfo, out: dict[str, Any]
    ) -> torch.Tensor:
        """The training target per the task's adapter (``-1``: nothing to learn)."""
        if "target" not in examples[0]:
            return torch.full((len(examples),), -1, dtype=torch.long)
        if info.kind == "vqa_soft":
            dense = torch.zeros((len(examples), info.num_classes))
            for i, ex in enumerate(examples):
                t = ex["target"]
                dense[i, torch.as_tensor(t["labels"], dtype=torch.long)] = torch.as_tensor(
                    t["scores"]
                )
            return dense
        if info.kind == "retrieval":
            return torch.tensor([ex["target"]["image"] for ex in examples], dtype=torch.long)
        if info.head == "regions":  # the detector region that overlaps the gold box most
            index = []
            for ex in examples:
                f = ex["features"]
                if f is None or not len(f["boxes"]):
                    index.append(-1)
                    continue
                n = min(len(f["boxes"]), self.max_regions)
                ious = iou_matrix(xywh_to_xyxy(ex["target"]["box"]), f["boxes"][:n])[0]
                index.append(int(ious.argmax()))
            return torch.tensor(index, dtype=torch.long)
        return torch.tensor([ex["target"]["index"] for ex in examples], dtype=torch.long)
