"""Retrieval prediction: the full score matrix against the first pass + re-ranking.

    .venv/bin/python benchmarks/bench_rerank.py [--captions 5000] [--images 1200] [--top 100]

The default model (dim 128, 2 layers, 36 regions of 2,048-d bottom-up features, 24 text
tokens), untrained, on synthetic captions and images: speed and memory do not depend on
the weights. Each mode runs in a fresh process (peak RSS is per process):

- ``full``: every caption against every image through the alignment head (what
  ``baseline predict`` writes up to ``--full-matrix-up-to`` images), float32 [N, M];
- ``rerank``: caption and image embeddings once each, dot products in chunks, each
  caption's ``--top`` images through the alignment head (beyond the threshold).

Also checked: on the same inputs, every caption whose full-matrix best image is among its
first-pass candidates has that image first in its re-ranked list.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks._common import fresh_process, report

_SETUP = """
import numpy as np, torch
from baselines.model import Baseline, ModelConfig
from baselines.retrieval import first_pass_top, full_matrix, rerank
torch.set_num_threads({threads})
torch.manual_seed(0)
n, m, top, batch = {captions}, {images}, {top}, 128
model = Baseline(ModelConfig(vocab_size=5000, feature_dim=2048, tasks=["t"],
                 heads={{"align": 0}}, dropout=0.0, first_pass_dim=64)).eval()
g = torch.Generator().manual_seed(1)
text = torch.randint(1, 5000, (n, 24), generator=g)
gallery = {{
    "region_feats": torch.rand(m, 1, 36, 2048, generator=g),
    "region_geo": torch.rand(m, 1, 36, 5, generator=g),
    "region_mask": torch.ones(m, 1, 36, dtype=torch.bool),
}}
ids = np.arange(m, dtype=np.int64) * 7 + 3
def score_pairs(t, images):
    return model("t", "align", {{"text": t, **images}}).float()
"""

_FULL = """
import time
t0 = time.perf_counter()
with torch.no_grad():
    scores = full_matrix(score_pairs, text, gallery, batch)
open("{out}.seconds", "w").write(str(time.perf_counter() - t0))
np.save("{out}", scores)
"""

_RERANK = """
import time
t0 = time.perf_counter()
with torch.no_grad():
    te = torch.cat([model.embed_text("t", text[s:s + batch]) for s in range(0, n, batch)])
    ie = torch.cat([model.embed_images("t", *(gallery[k][s:s + batch] for k in
         ("region_feats", "region_geo", "region_mask"))) for s in range(0, m, batch)])
    cand = first_pass_top(te, ie, top)
    ranked = rerank(score_pairs, text, gallery, cand, ids, batch)
open("{out}.seconds", "w").write(str(time.perf_counter() - t0))
np.save("{out}", ranked)
np.save("{out}.cand.npy", cand.numpy())
"""


def measured(body: str, out: str) -> dict[str, float]:
    """Peak RSS of the whole process, and the seconds of the prediction alone (the model,
    inputs and imports excluded)."""
    figures = fresh_process(body)
    figures["predict_seconds"] = float(Path(f"{out}.seconds").read_text())
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--captions", type=int, default=5000)
    ap.add_argument("--images", type=int, default=1200)
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-full", action="store_true", help="Only the re-ranking pass.")
    args = ap.parse_args()
    setup = _SETUP.format(
        threads=args.threads, captions=args.captions, images=args.images, top=args.top
    )
    figures: dict[str, object] = {
        "captions": args.captions,
        "images": args.images,
        "top": args.top,
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        full_out, rerank_out = f"{tmp}/full.npy", f"{tmp}/rerank.npy"
        figures["rerank"] = measured(setup + _RERANK.format(out=rerank_out), rerank_out)
        if not args.skip_full:
            figures["full"] = measured(setup + _FULL.format(out=full_out), full_out)
            scores = np.load(full_out)
            ranked, cand = np.load(rerank_out), np.load(f"{rerank_out}.cand.npy")
            ids = np.arange(args.images, dtype=np.int64) * 7 + 3
            top = scores.max(axis=1, keepdims=True)
            best = np.where(scores == top, ids[None], np.iinfo(np.int64).max).min(axis=1)
            best_col = (best - 3) // 7
            kept = (cand == best_col[:, None]).any(axis=1)
            figures["best_within_first_pass"] = float(kept.mean())  # untrained: no meaning
            figures["top1_agrees_where_kept"] = float((ranked[kept, 0] == best[kept]).mean())
            figures["speedup"] = (
                figures["full"]["predict_seconds"] / figures["rerank"]["predict_seconds"]
            )
    report("rerank", figures)


if __name__ == "__main__":
    main()
