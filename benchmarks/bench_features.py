"""Region-feature import throughput and memory (target: >= 100 MB/s of TSV, flat memory).

Writes (once, cached) a bottom-up TSV of 10,000 images x 36 boxes x 2048 dims and a
2,000-image prefix of it, builds a unified file whose vqa2 task uses those COCO images,
then imports each TSV in a fresh process: MB/s of TSV and peak RSS. Flat memory means the
peak does not grow with the file (2k vs 10k images).

    .venv/bin/python benchmarks/bench_features.py
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import CACHE, fresh_process, report
from unify.build import BuildOptions, run_build
from unify.sample.features_format import RegionRow, write_tsv
from unify.sample.vqa2_format import write_vqa2

IMAGES, BOXES, DIM = 10_000, 36, 2048


def rows(n: int) -> Iterator[RegionRow]:
    rng = np.random.default_rng(0)
    for i in range(n):
        xy = rng.uniform(0, 400, size=(BOXES, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + 50], axis=1)
        yield RegionRow(i + 1, 640, 480, boxes, rng.random((BOXES, DIM), dtype=np.float32))


def main() -> None:
    base = CACHE / "features"
    base.mkdir(parents=True, exist_ok=True)
    big, small = base / "f10k.tsv", base / "f2k.tsv"
    if not big.exists():
        write_tsv(big, rows(IMAGES))
        write_tsv(small, rows(2000))
    h5 = base / "u.h5"
    if not h5.exists():
        recs = [
            {
                "question_id": i,
                "image_id": i,
                "question": "q?",
                "question_type": "what",
                "answer_type": "other",
                "multiple_choice_answer": "a",
                "answers": ["a"] * 10,
            }
            for i in range(1, IMAGES + 1)
        ]
        write_vqa2(base / "raw" / "vqa2", "train2014", recs[:-10])
        write_vqa2(base / "raw" / "vqa2", "val2014", recs[-10:])
        run_build(base / "raw", h5, BuildOptions(tasks=("vqa2",)))
    figures = {}
    for label, tsv in (("2k", small), ("10k", big)):
        work = base / f"work-{label}.h5"
        work.write_bytes(h5.read_bytes())
        res = fresh_process(
            "from pathlib import Path\nfrom unify.features import import_features\n"
            f"import_features(Path({str(work)!r}), [Path({str(tsv)!r})], 'bu', 'coco')"
        )
        mb = tsv.stat().st_size / 1e6
        figures[label] = {
            "tsv_mb": round(mb, 1),
            "seconds": round(res["seconds"], 2),
            "mb_per_s": round(mb / res["seconds"], 1),
            "peak_rss_mb": round(res["peak_rss_bytes"] / 1e6, 1),
            "output_mb": round(work.stat().st_size / 1e6, 1),
        }
        work.unlink()
    report("features_import", figures)


if __name__ == "__main__":
    main()
