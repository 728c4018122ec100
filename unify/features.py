"""`unify features import`: bottom-up-attention region features into a unified file.

Feature files are tens of GB, so the import streams: one TSV line at a time, appended in
blocks to resizable HDF5 datasets; memory stays flat whatever the file size. The unified
file is never modified in place: the import writes a copy next to it and renames the copy
over it only when complete (a crash leaves the original untouched).

Layout of ``/features/<name>`` (docs/schema.md):
``image`` int32 [M] rows of /images; ``offsets`` int64 [M+1]; ``boxes`` float32 [B, 4]
(x1, y1, x2, y2 pixels, as in the TSV); ``features`` float16 [B, dim]; ``image_size``
int32 [M, 2] (w, h from the TSV); ``row`` int32 [len(/images)]: the feature row of each
image or -1, so a reader finds an image's regions in O(1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unify import checksums
from unify.errors import DataError, MalformedFileError
from unify.images import KEY_OF_ID
from unify.schema import FEATURES, IMAGES
from unify.writer import atomic_output

BLOCK_IMAGES = 256
#: Universe name -> image key of an id as the universe's files write it.
UNIVERSES = KEY_OF_ID


@dataclass
class ImportReport:
    name: str
    images: int = 0
    boxes: int = 0
    dim: int = 0
    bytes_read: int = 0
    skipped_unknown: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    duplicates: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Row:
    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    features: np.ndarray


def _parse_line(line: bytes, path: Path, lineno: int, dim: int | None) -> _Row:
    if not line.endswith(b"\n"):
        raise MalformedFileError(
            path,
            f"line {lineno}: truncated (no end of line); "
            "the file was probably cut off while copying",
        )
    parts = line.rstrip(b"\r\n").split(b"\t")
    if len(parts) != 6:
        raise MalformedFileError(
            path,
            f"line {lineno}: {len(parts)} tab-separated fields, "
            "expected 6 (image_id, image_w, image_h, num_boxes, "
            "boxes, features)",
        )
    image_id = parts[0].decode("utf-8", "replace")
    try:
        width, height, n = int(parts[1]), int(parts[2]), int(parts[3])
        boxes = np.frombuffer(base64.b64decode(parts[4], validate=True), dtype=np.float32)
        feats = np.frombuffer(base64.b64decode(parts[5], validate=True), dtype=np.float32)
    except (ValueError, binascii.Error) as exc:
        raise MalformedFileError(path, f"line {lineno} (image {image_id}): {exc}") from None
    if boxes.size != n * 4:
        raise MalformedFileError(
            path, f"line {lineno} (image {image_id}): num_boxes {n} but {boxes.size // 4} boxes"
        )
    if n <= 0:
        raise MalformedFileError(
            path, f"line {lineno} (image {image_id}): num_boxes {n}, expected a positive count"
        )
    if feats.size % n:
        raise MalformedFileError(
            path,
            f"line {lineno} (image {image_id}): features of "
            f"{feats.size} floats do not split into {n} boxes",
        )
    row_dim = feats.size // n
    if dim is not None and row_dim != dim:
        raise MalformedFileError(
            path,
            f"line {lineno} (image {image_id}): feature dimension "
            f"{row_dim}, earlier lines have {dim}",
        )
    return _Row(image_id, width, height, boxes.reshape(n, 4), feats.reshape(n, row_dim))


def _lines(path: Path, sha: Any) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb", buffering=1 << 22) as f:
        for lineno, line in enumerate(f, start=1):
            sha.update(line)
            yield lineno, line


class _Appender:
    """Resizable datasets grown block by block."""

    def __init__(self, group: h5py.Group, dim: int) -> None:
        self.boxes = group.create_dataset(
            "boxes", shape=(0, 4), maxshape=(None, 4), dtype=np.float32, chunks=(8192, 4)
        )
        self.features = group.create_dataset(
            "features",
            shape=(0, dim),
            maxshape=(None, dim),
            dtype=np.float16,
            chunks=(max(1, (1 << 20) // (2 * dim)), dim),
        )
        self.image: list[int] = []
        self.sizes: list[tuple[int, int]] = []
        self.counts: list[int] = []
        self._pending: list[_Row] = []
        # Hashed as written: reading gigabytes of features back for a checksum would cost
        # as much as the import.
        self.digests = {"boxes": checksums.Digest(), "features": checksums.Digest()}

    def add(self, index: int, row: _Row) -> None:
        self.image.append(index)
        self.sizes.append((row.width, row.height))
        self.counts.append(len(row.boxes))
        self._pending.append(row)
        if len(self._pending) >= BLOCK_IMAGES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        boxes = np.concatenate([r.boxes for r in self._pending])
        feats = np.concatenate([r.features for r in self._pending]).astype(np.float16)
        start = self.boxes.shape[0]
        self.boxes.resize(start + len(boxes), axis=0)
        self.features.resize(start + len(boxes), axis=0)
        self.boxes[start:] = boxes
        self.features[start:] = feats
        self.digests["boxes"].numbers(boxes)
        self.digests["features"].numbers(feats)
        self._pending.clear()

    def stamp(self) -> None:
        """Record the checksums of boxes and features (after the last ``flush``)."""
        for name, digest in self.digests.items():
            ds = getattr(self, name)
            ds.attrs[checksums.ATTR] = digest.hexdigest(ds.dtype, ds.shape)


def import_features(
    unified: Path,
    tsvs: list[Path],
    name: str,
    universe: str,
    force: bool = False,
    progress: Callable[..., Any] | None = None,
) -> ImportReport:
    """Import TSV files as ``/features/<name>`` of ``unified`` (atomically)."""
    if universe not in UNIVERSES:
        raise DataError(f"unknown universe {universe!r}; choose from {', '.join(UNIVERSES)}")
    to_key = UNIVERSES[universe]
    for tsv in tsvs:
        if not tsv.is_file():
            raise DataError(f"feature file {tsv} does not exist")
    with h5py.File(unified, "r") as f:
        if IMAGES not in f:
            raise DataError(f"{unified}: not a unified file (no /images)")
        if FEATURES in f and name in f[FEATURES] and not force:
            raise DataError(f"{unified}: features {name!r} exist; use --force to replace them")
    report = ImportReport(name)
    with atomic_output(unified) as tmp:
        shutil.copyfile(unified, tmp)
        with h5py.File(tmp, "r+") as f:
            keys = f[IMAGES]["key"].asstr()[:]
            index = {k: i for i, k in enumerate(keys)}
            root = f.require_group(FEATURES)
            if name in root:
                del root[name]
            group = root.create_group(name)
            appender: _Appender | None = None
            seen: set[int] = set()
            for tsv in tsvs:
                sha = hashlib.sha256()
                lines = _lines(tsv, sha)
                if progress is not None:
                    lines = progress(lines, desc=f"features {tsv.name}")
                for lineno, line in lines:
                    report.bytes_read += len(line)
                    row = _parse_line(line, tsv, lineno, report.dim or None)
                    report.dim = row.features.shape[1]
                    try:
                        i = index[to_key(row.image_id)]
                    except (KeyError, ValueError):
                        report.skipped_unknown += 1
                        if len(report.skipped_examples) < 10:
                            report.skipped_examples.append(row.image_id)
                        continue
                    if i in seen:
                        report.duplicates += 1
                        continue
                    seen.add(i)
                    if appender is None:
                        appender = _Appender(group, report.dim)
                    appender.add(i, row)
                report.sources.append(
                    {"path": str(tsv), "size": tsv.stat().st_size, "sha256": sha.hexdigest()}
                )
            if appender is None:
                raise DataError(
                    f"no feature row of {', '.join(map(str, tsvs))} matches an "
                    f"image of {unified} in universe {universe!r} "
                    f"(e.g. {report.skipped_examples[:3]})"
                )
            appender.flush()
            counts = np.asarray(appender.counts, dtype=np.int64)
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            image = np.asarray(appender.image, dtype=np.int32)
            group.create_dataset("image", data=image)
            group.create_dataset("offsets", data=offsets)
            group.create_dataset("image_size", data=np.asarray(appender.sizes, dtype=np.int32))
            row_of = np.full(len(keys), -1, dtype=np.int32)
            row_of[image] = np.arange(len(image), dtype=np.int32)
            group.create_dataset("row", data=row_of)
            report.images, report.boxes = len(image), int(offsets[-1])
            if checksums.ROOT_ATTR in f.attrs:  # a file built without checksums stays so
                appender.stamp()
                checksums.seal(f)
            group.attrs.update(
                {
                    "universe": universe,
                    "dim": report.dim,
                    "box_format": "x1y1x2y2",
                    "dtype": "float16",
                    "sources": json.dumps(report.sources),
                    "skipped_unknown_images": report.skipped_unknown,
                    "duplicate_images": report.duplicates,
                }
            )
    return report
