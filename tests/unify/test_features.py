"""Region-feature import: values, unknown images, truncation, atomicity, the reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from unify.cli import main
from unify.errors import DataError, MalformedFileError
from unify.features import import_features
from unify.reader import UnifiedFile
from unify.sample.features_format import RegionRow, tsv_line, write_tsv

DIM = 8


@pytest.fixture
def unified(tiny_h5: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "u.h5"
    shutil.copyfile(tiny_h5, dest)
    return dest


def _rows(keys: list[str], universe: str, seed: int = 0) -> list[RegionRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, key in enumerate(keys):
        n = 1 + i % 5  # varying box counts
        xy = rng.uniform(0, 300, size=(n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(1, 100, size=(n, 2))], axis=1)
        rows.append(
            RegionRow(
                key.split(":", 1)[1],
                640,
                480,
                boxes.astype(np.float32),
                rng.normal(size=(n, DIM)).astype(np.float32),
            )
        )
    return rows


def test_import_stores_every_value_and_skips_unknown_images(unified: Path, tmp_path: Path) -> None:
    with UnifiedFile(unified) as uf:
        coco = [k for k in uf.image_keys if k.startswith("coco:")][:12]
    rows = _rows(coco, "coco") + _rows(["coco:999999999"], "coco", seed=1)
    tsv = write_tsv(tmp_path / "f.tsv", rows)
    report = import_features(unified, [tsv], "bu", "coco")
    assert (report.images, report.skipped_unknown) == (12, 1)
    assert report.skipped_examples == ["999999999"]
    assert report.boxes == sum(len(r.boxes) for r in rows[:12])
    assert report.bytes_read == tsv.stat().st_size
    with UnifiedFile(unified) as uf:
        assert uf.feature_names() == ["bu"]
        attrs = dict(uf.h5["features"]["bu"].attrs)
        assert attrs["dim"] == DIM and attrs["universe"] == "coco"
        assert attrs["skipped_unknown_images"] == 1
        for key, row in zip(coco, rows, strict=False):
            got = uf.region_features("bu", uf.image_index(key))
            assert got is not None
            np.testing.assert_array_equal(got["boxes"], row.boxes)
            assert got["features"].dtype == np.float16
            np.testing.assert_allclose(got["features"], row.features, rtol=1e-3, atol=1e-3)
        others = [k for k in uf.image_keys if k.startswith("vg:")]
        assert uf.region_features("bu", uf.image_index(others[0])) is None
        # The reader attaches region features to examples of a split, under "features";
        # images without a row are an error unless asked to give None (never silent).
        with pytest.raises(DataError, match="have no row in feature set 'bu'"):
            uf.split("vqa2", "trainval", features="bu")
        view = uf.split("vqa2", "trainval", features="bu", missing_features="none")
        ex = next(e for e in view if e["image"] in set(coco))
        row = rows[coco.index(ex["image"])]
        np.testing.assert_array_equal(ex["features"]["boxes"], row.boxes)
        assert view.example(0).keys() >= {"features", "image"}
        assert next(e for e in view if e["image"] not in set(coco))["features"] is None


def test_truncated_last_line_is_named_and_the_file_is_untouched(
    unified: Path, tmp_path: Path
) -> None:
    with UnifiedFile(unified) as uf:
        keys = [k for k in uf.image_keys if k.startswith("vg:")][:3]
    tsv = tmp_path / "f.tsv"
    data = b"".join(tsv_line(r) for r in _rows(keys, "vg"))
    tsv.write_bytes(data[:-40])
    before = unified.read_bytes()
    with pytest.raises(MalformedFileError, match=r"f\.tsv: malformed file: line 3: truncated"):
        import_features(unified, [tsv], "bu", "vg")
    assert unified.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tsv", "u.h5"]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda f: [*f[:4], b"x"], "5 tab-separated fields"),
        (lambda f: [*f[:3], b"3", *f[4:]], "num_boxes 3 but"),
        (lambda f: [*f[:5], b"@@@@"], r"line 1 \(image"),
    ],
)
def test_malformed_rows(unified: Path, tmp_path: Path, mangle: object, message: str) -> None:
    with UnifiedFile(unified) as uf:
        key = next(k for k in uf.image_keys if k.startswith("vg:"))
    fields = tsv_line(_rows([key], "vg")[0]).rstrip(b"\n").split(b"\t")
    tsv = tmp_path / "f.tsv"
    tsv.write_bytes(b"\t".join(mangle(fields)) + b"\n")  # type: ignore[operator]
    with pytest.raises(MalformedFileError, match=message):
        import_features(unified, [tsv], "bu", "vg")


def test_replacing_needs_force_and_cli(unified: Path, tmp_path: Path) -> None:
    with UnifiedFile(unified) as uf:
        keys = [k for k in uf.image_keys if k.startswith("vg:")][:4]
    tsv = write_tsv(tmp_path / "f.tsv", _rows(keys, "vg"))
    runner = CliRunner()
    result = runner.invoke(
        main, ["features", "import", str(unified), str(tsv), "--name", "bu", "--universe", "vg"]
    )
    assert result.exit_code == 0, result.stderr
    assert "imported 4 images" in result.stderr
    with pytest.raises(DataError, match="use --force"):
        import_features(unified, [tsv], "bu", "vg")
    result = runner.invoke(
        main,
        [
            "features",
            "import",
            str(unified),
            str(tsv),
            "--name",
            "bu",
            "--universe",
            "vg",
            "--force",
        ],
    )
    assert result.exit_code == 0
    result = runner.invoke(
        main, ["features", "import", str(unified), str(tsv), "--name", "x", "--universe", "coco"]
    )
    assert result.exit_code == 1 and "no feature row" in result.stderr
