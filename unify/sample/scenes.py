"""Scenes of the generated world: objects with a category, a colour, a size and a box.

A scene belongs to a *photo*, not to a key: a COCO image that is also a VG image (or a
Flickr photo) has one scene under all its keys, so every task that sees the photo sees the
same objects, exactly as the leakage check assumes. A photo's scene is a pure function of
(world seed, photo uid), so nothing has to be held in memory to regenerate it.

Region features are a fixed random projection of each object's attributes and position
plus noise: a model (or a linear probe) that reads them can recover category, colour and
place, which is what makes every task learnable.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: (COCO category id, name, supercategory): real COCO ids so instances files look real.
CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
    (6, "bus", "vehicle"), (9, "boat", "vehicle"), (17, "cat", "animal"),
    (18, "dog", "animal"), (19, "horse", "animal"), (38, "kite", "sports"),
    (47, "cup", "kitchen"), (62, "chair", "furniture"),
)  # fmt: skip
CATEGORY_NAMES = tuple(name for _, name, _ in CATEGORIES)
CATEGORY_ID = {name: cid for cid, name, _ in CATEGORIES}
COLOURS = ("red", "blue", "green", "white", "black", "yellow", "brown", "gray")
SIZES_WH = ((640, 480), (500, 375), (800, 600), (480, 640), (640, 427))
#: Input of the feature projection: category one-hot, colour one-hot, large flag, box.
FEATURE_INPUT = len(CATEGORY_NAMES) + len(COLOURS) + 1 + 4


@dataclass(frozen=True)
class Obj:
    category: str
    colour: str
    large: bool
    box: tuple[float, float, float, float]  # x, y, w, h in pixels

    def side(self, width: int) -> str:
        """Which half of the picture the object's centre is in."""
        return "left" if self.box[0] + self.box[2] / 2 < width / 2 else "right"


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    objects: tuple[Obj, ...]

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.objects)

    def categories(self) -> list[str]:
        return sorted({o.category for o in self.objects})


def make_scene(seed: int, uid: str, min_objects: int = 2, max_objects: int = 6) -> Scene:
    """The scene of photo ``uid`` (deterministic)."""
    return _scene(seed, uid, min_objects, max_objects)


@lru_cache(maxsize=1 << 16)
def _scene(seed: int, uid: str, min_objects: int, max_objects: int) -> Scene:
    rng = random.Random(f"{seed}/{uid}")
    width, height = rng.choice(SIZES_WH)
    objects = []
    for _ in range(rng.randint(min_objects, max_objects)):
        large = rng.random() < 0.4
        scale = 0.5 if large else 0.25
        w = round(rng.uniform(0.1, scale) * width, 2)
        h = round(rng.uniform(0.1, scale) * height, 2)
        x = round(rng.uniform(0, width - w), 2)
        y = round(rng.uniform(0, height - h), 2)
        objects.append(Obj(rng.choice(CATEGORY_NAMES), rng.choice(COLOURS), large, (x, y, w, h)))
    return Scene(width, height, tuple(objects))


class FeatureProjector:
    """Region features: ``P @ attributes(+position) + noise``, P fixed by the world seed."""

    def __init__(self, seed: int, dim: int, noise: float = 0.1) -> None:
        rng = np.random.default_rng(seed)
        self.matrix = rng.normal(0, 1 / np.sqrt(FEATURE_INPUT), size=(FEATURE_INPUT, dim))
        self.matrix = self.matrix.astype(np.float32)
        self.noise = noise
        self.dim = dim

    def regions(self, scene: Scene, uid: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes x1, y1, x2, y2 [n, 4], features [n, dim]): one region per object plus two
        background regions (position only)."""
        rng = np.random.default_rng([seed, zlib.crc32(uid.encode())])
        rows, boxes = [], []
        for obj in scene.objects:
            v = np.zeros(FEATURE_INPUT, dtype=np.float32)
            v[CATEGORY_NAMES.index(obj.category)] = 1
            v[len(CATEGORY_NAMES) + COLOURS.index(obj.colour)] = 1
            v[len(CATEGORY_NAMES) + len(COLOURS)] = float(obj.large)
            x, y, w, h = obj.box
            v[-4:] = (x / scene.width, y / scene.height, w / scene.width, h / scene.height)
            rows.append(v)
            boxes.append((x, y, x + w, y + h))
        for k in range(2):
            v = np.zeros(FEATURE_INPUT, dtype=np.float32)
            x, y = k * scene.width / 2, 0.0
            w, h = scene.width / 2, float(scene.height)
            v[-4:] = (x / scene.width, 0.0, 0.5, 1.0)
            rows.append(v)
            boxes.append((x, y, x + w, y + h))
        attrs = np.stack(rows)
        feats = attrs @ self.matrix + rng.normal(0, self.noise, size=(len(rows), self.dim))
        return np.asarray(boxes, dtype=np.float32), feats.astype(np.float32)
