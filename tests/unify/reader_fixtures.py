"""A tiny unified file with a region-feature set for every image universe it uses.

The sample writes one bottom-up TSV per universe (GQA's own images, ``gqa:`` keys that are
not Visual Genome photos, included). Import with
``from tests.unify.reader_fixtures import featured_h5``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from unify.features import import_features
from unify.sample.features_format import RegionRow
from unify.tasks import UNIVERSES

SAMPLE_UNIVERSES = tuple(UNIVERSES)  # the sample writes one feature TSV per universe


def assert_same(a: object, b: object, where: str = "") -> None:
    """Deep equality for examples: dicts, lists, numpy arrays (dtype included), scalars."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{j}]")
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def region_rows(keys: list[str], dim: int, seed: int = 0) -> list[RegionRow]:
    """Rows with 1-5 boxes (x1, y1, x2, y2) and random features for image keys."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, key in enumerate(keys):
        n = 1 + i % 5
        xy = rng.uniform(0, 300, size=(n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(1, 100, size=(n, 2))], axis=1)
        feats = rng.normal(size=(n, dim)).astype(np.float32)
        rows.append(RegionRow(key.split(":", 1)[1], 640, 480, boxes.astype(np.float32), feats))
    return rows


@pytest.fixture(scope="session")
def featured_h5(tiny_h5: Path, tiny_raw: Path) -> Path:
    """The tiny build with bottomup_<u> for u in coco, vg, flickr, nlvr2 and gqa.

    Several test modules register this fixture; the file is built once per session, next
    to the session's tiny build, and renamed into place only when complete.
    """
    dest = tiny_h5.parent / "featured.h5"
    if dest.exists():
        return dest
    work = tiny_h5.parent / "featured-work"
    work.mkdir(exist_ok=True)
    partial = work / "featured.h5"
    shutil.copyfile(tiny_h5, partial)
    for u in SAMPLE_UNIVERSES:
        import_features(partial, [tiny_raw / "features" / f"{u}.tsv"], f"bottomup_{u}", u)
    partial.rename(dest)
    return dest
