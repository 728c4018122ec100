"""What the model is fed: box geometry is relative to the image, for every task.

Flickr30k, NLVR2 and GQA's own images have no size in ``/images`` (no raw file states
one). Their geometry once stayed in pixels (x up to hundreds, areas of 1e5), swamped the
region features, and flickr30k_retrieval trained to chance on its val split although it
memorised 32 training captions. The feature TSV's ``image_w``/``image_h`` fill the gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from baselines.inputs import Encoder, geometry, image_sizes, task_info
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 - a fixture
from unify import tasks
from unify.reader import UnifiedFile

#: Boxes of the sample lie inside their image; a little slack for rounding.
SLACK = 1e-3


def test_every_featured_image_has_a_size(featured_h5: Path) -> None:  # noqa: F811
    with UnifiedFile(featured_h5) as uf:
        sizes = image_sizes(uf)
        for name in uf.feature_names():
            rows = uf.h5["features"][name]["image"][:]
            assert (sizes[rows] > 0).all(), name
        # where /images states a size, it is kept
        width = uf.h5["images"]["width"][:]
        known = width > 0
        assert known.any()
        np.testing.assert_array_equal(sizes[known, 0], width[known])


@pytest.mark.parametrize("task", tasks.task_names())
def test_geometry_is_relative_to_the_image(task: str, featured_h5: Path) -> None:  # noqa: F811
    with UnifiedFile(featured_h5) as uf:
        info = task_info(uf, task)
        view = uf.split(task, tasks.get(task).train_splits[0], features="auto", targets=True)
        examples = [view.example(i) for i in range(min(len(view), 16))]
        dim = next(
            (f if isinstance(f, dict) else f[0])["features"].shape[1]
            for f in (ex["features"] for ex in examples)
        )
        encoder = Encoder(None, image_sizes(uf), feature_dim=dim)
        regions = encoder.images(examples)
        geo = regions["region_geo"][regions["region_mask"]].numpy()
        assert len(geo), task
        assert geo.min() >= -SLACK and geo.max() <= 1 + SLACK, (task, geo.min(), geo.max())
        if info.uses_candidates:
            cand = encoder.candidates(examples, info)
            geo = cand["cand_geo"][cand["cand_mask"]].numpy()
            assert geo.min() >= -SLACK and geo.max() <= 1 + SLACK, (task, geo.max())


def test_an_image_of_unknown_size_is_measured_by_its_boxes() -> None:
    boxes = np.array([[0, 0, 200, 100], [50, 25, 400, 300]], np.float32)
    geo = geometry(boxes, np.zeros(2, np.float32))
    np.testing.assert_allclose(geo[1, :4], [50 / 400, 25 / 300, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(geo[0, 4], (200 / 400) * (100 / 300), rtol=1e-6)
    known = geometry(boxes, np.array([800, 600], np.float32))
    np.testing.assert_allclose(known[0, :4], [0, 0, 0.25, 100 / 600], rtol=1e-6)
