"""Writer of bottom-up-attention region-feature TSV files (the format of the released
Faster R-CNN features: no header; image_id, image_w, image_h, num_boxes, boxes, features,
with boxes and features base64-encoded float32 arrays)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unify.sample.jsonfile import atomic_binary


@dataclass(frozen=True)
class RegionRow:
    image_id: int | str
    width: int
    height: int
    boxes: np.ndarray  # float32 [n, 4]: x1, y1, x2, y2 in pixels
    features: np.ndarray  # float32 [n, dim]


def tsv_line(row: RegionRow) -> bytes:
    boxes = np.ascontiguousarray(row.boxes, dtype=np.float32)
    feats = np.ascontiguousarray(row.features, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or feats.shape[0] != boxes.shape[0]:
        raise ValueError(f"image {row.image_id}: boxes {boxes.shape} and features {feats.shape}")
    return (
        b"\t".join(
            (
                str(row.image_id).encode(),
                str(row.width).encode(),
                str(row.height).encode(),
                str(len(boxes)).encode(),
                base64.b64encode(boxes.tobytes()),
                base64.b64encode(feats.tobytes()),
            )
        )
        + b"\n"
    )


def write_tsv(path: Path, rows: Iterable[RegionRow]) -> Path:
    """Stream rows to ``path`` (temp file + rename; memory does not grow with the file)."""
    with atomic_binary(path) as f:
        for row in rows:
            f.write(tsv_line(row))
    return path
