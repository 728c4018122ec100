"""Scoring speed and memory at full split size, against straightforward implementations.

Claim measured (docs/metrics.md, "Benchmark"): every scorer scores a full evaluation split
in seconds on a small machine; in particular VQA val (214,354 questions x 10 answers) in
under 2 s and COCO 5k retrieval (25,000 x 5,000 scores) in under 3 s.

All inputs are synthetic and generated in memory at the real sizes: VQA val with tens of
thousands of distinct answer strings, GQA testdev (12,578), COCO 5k, NLVR2 test1 (6,967).
For each task it times (1) the scoring call on already-loaded ground truth and parsed
predictions, cold (first call: includes building the ground truth's answer index where
there is one) and warm; (2) parsing + validating the prediction file from disk, plain and
gzip; (3) a straightforward implementation of the same rule written the obvious way (the
official scripts' loop structure), whose numbers must agree; (4) for vqa2 and COCO, the
server's path: ``validate_file`` (parse + validate once) -> ``Validated.save`` ->
``load_validated`` -> ``score_validated`` (per-example arrays included). Peak memory: the
traced peak of the scoring call (tracemalloc, measured in a separate run) and the
process's max RSS.

    .venv/bin/python benchmarks/bench_scoring.py            # full size (about 2 minutes)
    .venv/bin/python benchmarks/bench_scoring.py --scale 0.05 --skip-reference   # smoke
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalserver.metrics import (
    gqa,
    load_validated,
    nlvr2,
    retrieval,
    score_validated,
    validate_file,
    vqa,
)
from evalserver.metrics import predictions as P
from unify.text import clean_whitespace, process_digit_article, process_punctuation

ROWS: list[tuple[str, str, str]] = []


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated during ``fn`` (numpy buffers included), measured on its own."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def report(task: str, what: str, value: str) -> None:
    ROWS.append((task, what, value))
    print(f"{task:<16} {what:<52} {value}", flush=True)


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def bench_server_path(task: str, gt: Any, upload: Path, tmp: Path) -> Any:
    """The server's path, step by step: the API validates the upload (parsed once) and
    saves the validated form; the worker loads it and scores it."""
    saved = tmp / f"{task}.validated.npz"
    t_validate, validated = timed(lambda: validate_file(task, gt, upload))
    assert validated.ok, validated.listing()[:3]
    t_save, _ = timed(lambda: validated.save(saved))
    t_load, loaded = timed(lambda: load_validated(saved))
    t_score, result = timed(lambda: score_validated(gt, loaded), repeat=3)
    report(
        task,
        "server path: validate_file / save / load / score_validated",
        f"{t_validate:.3f} / {t_save:.3f} / {t_load:.3f} / {t_score:.3f} s "
        f"({saved.stat().st_size / 2**20:.0f} MiB saved)",
    )
    saved.unlink()
    return result


# --------------------------------------------------------------------------- vqa

_WORD_TEXT = """
red blue green white black yellow brown gray orange pink purple man woman dog cat
table chair kitchen street car bus train plane bike frisbee pizza banana tennis
baseball skateboard surfboard umbrella clock phone laptop tv bed couch grass snow
water sky tree building sign shirt t-shirt hat glasses left right top bottom sitting
standing eating playing walking riding flying wood metal plastic glass
"""
WORDS = _WORD_TEXT.split()


def _answer_pool(rng: random.Random, size: int) -> list[str]:
    """Distinct answer stems: 1-3 words, numbers, number words."""
    pool: set[str] = {"yes", "no", *map(str, range(0, 60)), "two", "three", "ten"}
    while len(pool) < size:
        k = rng.choice((1, 1, 2, 2, 3))
        pool.add(
            " ".join(rng.choice(WORDS) for _ in range(k))
            + rng.choice(("", "", str(rng.randrange(100))))
        )
    return sorted(pool)


def _variant(rng: random.Random, answer: str) -> str:
    """The ways humans and models write the same answer."""
    r = rng.random()
    if r < 0.70:
        return answer
    if r < 0.78:
        return answer.capitalize()
    if r < 0.84:
        return answer + "."
    if r < 0.88:
        return "the " + answer
    if r < 0.92:
        return answer.replace(" ", "-")
    if r < 0.95:
        return answer + " " + rng.choice(WORDS)
    return f" {answer}\n"


def synth_vqa(n: int, seed: int = 0) -> tuple[vqa.VqaGroundTruth, list[dict[str, Any]]]:
    rng = random.Random(seed)
    pool = _answer_pool(rng, max(1000, n // 5))
    answer_types = ("yes/no", "number", "other")
    qtypes = [f"qtype {i}" for i in range(65)]
    answers: list[str] = []
    offsets = [0]
    atypes, qt, results = [], [], []
    for q in range(n):
        kind = rng.random()
        if kind < 0.38:
            truth, atype = rng.choice(("yes", "no")), 0
        elif kind < 0.50:
            truth, atype = str(rng.randrange(20)), 1
        else:
            truth, atype = rng.choice(pool), 2
        if rng.random() < 0.4:
            humans = [truth] * 10  # all ten agree: the exact-match branch
        else:
            humans = [
                _variant(rng, truth) if rng.random() < 0.75 else rng.choice(pool) for _ in range(10)
            ]
        answers.extend(humans)
        offsets.append(len(answers))
        atypes.append(answer_types[atype])
        qt.append(rng.choice(qtypes))
        guess = _variant(rng, truth) if rng.random() < 0.65 else rng.choice(pool)
        results.append({"question_id": 1_000_000 + q, "answer": guess})
    gt = vqa.VqaGroundTruth(
        np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
        np.asarray(offsets, dtype=np.int64),
        answers,
        qt,
        atypes,
    )
    rng.shuffle(results)
    return gt, results


def reference_vqa(gt: vqa.VqaGroundTruth, records: list[dict[str, Any]]) -> dict[str, float]:
    """The official loop, question by question, normalising everything every time."""
    res = {r["question_id"]: r["answer"] for r in records}
    acc_qa: list[float] = []
    by_type: dict[str, list[float]] = {}
    for i, qid in enumerate(gt.question_ids.tolist()):
        gts = [
            clean_whitespace(a) for a in gt.answers[gt.answer_offsets[i] : gt.answer_offsets[i + 1]]
        ]
        pred = clean_whitespace(res[qid])
        if len(set(gts)) > 1:
            gts = [process_digit_article(process_punctuation(a)) for a in gts]
            pred = process_digit_article(process_punctuation(pred))
        values = []
        for j in range(len(gts)):
            matching = [a for k, a in enumerate(gts) if k != j and a == pred]
            values.append(min(1, float(len(matching)) / 3))
        value = float(sum(values)) / len(values)
        acc_qa.append(value)
        by_type.setdefault(gt.answer_types[i], []).append(value)
    out = {"overall": round(100 * float(sum(acc_qa)) / len(acc_qa), 2)}
    out |= {t: round(100 * float(sum(v)) / len(v), 2) for t, v in by_type.items()}
    return out


def bench_vqa(n: int, tmp: Path, run_reference: bool) -> None:
    t, (gt, records) = timed(lambda: synth_vqa(n))
    distinct = len(set(gt.answers))
    report(
        "vqa2",
        f"generate {n:,} questions x 10 answers",
        f"{t:.2f} s ({distinct:,} distinct answers)",
    )
    parsed = P.parse_vqa(json.dumps(records).encode())

    t_cold, result = timed(lambda: vqa.score(gt, parsed))
    report("vqa2", "score, cold (builds the gt answer index once)", f"{t_cold:.3f} s")
    t_warm, result = timed(lambda: vqa.score(gt, parsed), repeat=3)
    report("vqa2", "score, warm (index reused)", f"{t_warm:.3f} s")
    fresh = vqa.VqaGroundTruth(
        gt.question_ids, gt.answer_offsets, gt.answers, gt.question_types, gt.answer_types
    )
    report(
        "vqa2",
        "score, traced peak memory (cold)",
        mib(traced_peak(lambda: vqa.score(fresh, parsed))),
    )

    path = tmp / "vqa.json"
    path.write_bytes(json.dumps(records).encode())
    gz = tmp / "vqa.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for label, file in (("json", path), ("json.gz", gz)):
        t, problems = timed(lambda file=file: vqa.validate(gt, P.parse_vqa(file)), repeat=3)
        size = file.stat().st_size
        report(
            "vqa2",
            f"parse + validate {label} ({size / 2**20:.1f} MiB)",
            f"{t:.3f} s, {len(problems)} problems",
        )

    via_server = bench_server_path("vqa2", gt, gz, tmp)
    assert via_server.metrics["overall"] == result.metrics["overall"]
    assert (via_server.per_example["score"] == result.per_example["score"]).all()

    if run_reference:
        t_ref, expected = timed(lambda: reference_vqa(gt, records))
        got = {"overall": result.metrics["overall"]} | {
            k: result.metrics[k] for k in expected if k != "overall"
        }
        same = "equal" if got == expected else f"DIFFERENT {got} vs {expected}"
        report(
            "vqa2",
            "straightforward per-question loop (official style)",
            f"{t_ref:.2f} s, metrics {same}",
        )
        report("vqa2", "speed-up, warm / cold", f"{t_ref / t_warm:.0f}x / {t_ref / t_cold:.0f}x")
    report("vqa2", "overall", f"{result.metrics['overall']}")


# --------------------------------------------------------------------------- gqa


def synth_gqa(n: int, seed: int = 1) -> tuple[gqa.GqaGroundTruth, list[dict[str, str]]]:
    rng = random.Random(seed)
    answers = [*WORDS, "yes", "no"]
    questions: dict[str, dict[str, Any]] = {}
    ids = [f"{20_000_000 + i}" for i in range(n)]
    for qid in ids:
        structural = rng.choice(("query", "verify", "logic", "choose", "compare"))
        questions[qid] = {
            "question": "Is the "
            + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 9)))
            + "?",
            "answer": rng.choice(answers) if structural == "query" else rng.choice(("yes", "no")),
            "types": {
                "structural": structural,
                "semantic": rng.choice(("attr", "rel", "obj", "cat", "global")),
                "detailed": rng.choice(("verifyAttr", "relS", "compareCommon", "existC")),
            },
            "groups": {"global": rng.choice((None, *WORDS[:40])), "local": "x"},
            "entailed": rng.sample(ids, rng.randrange(0, 4)),
        }
    preds = [
        {"questionId": q, "prediction": r["answer"] if rng.random() < 0.6 else rng.choice(answers)}
        for q, r in questions.items()
    ]
    return gqa.GqaGroundTruth.from_questions(questions), preds


def reference_gqa(gt: gqa.GqaGroundTruth, records: list[dict[str, str]]) -> float:
    predictions = {r["questionId"]: r["prediction"] for r in records}
    scores = [float(predictions[q] == a) for q, a in zip(gt.ids.tolist(), gt.answers, strict=True)]
    return float(sum(scores)) / len(scores) * 100


def bench_gqa(n: int, tmp: Path, run_reference: bool) -> None:
    gt, records = synth_gqa(n)
    parsed = P.parse_gqa(json.dumps(records).encode())
    t, result = timed(lambda: gqa.score(gt, parsed), repeat=3)
    report("gqa", f"score testdev-size ({n:,} questions)", f"{t:.3f} s")
    report("gqa", "score, traced peak memory", mib(traced_peak(lambda: gqa.score(gt, parsed))))
    path = tmp / "gqa.json"
    path.write_bytes(json.dumps(records).encode())
    t, _ = timed(lambda: gqa.validate(gt, P.parse_gqa(path)), repeat=3)
    report("gqa", "parse + validate json", f"{t:.3f} s")
    if run_reference:
        t_ref, expected = timed(lambda: reference_gqa(gt, records))
        same = "equal" if expected == result.metrics["accuracy"] else "DIFFERENT"
        report("gqa", "straightforward loop (accuracy only)", f"{t_ref:.3f} s, accuracy {same}")


# --------------------------------------------------------------------------- retrieval


def synth_retrieval(
    n_images: int, seed: int = 2
) -> tuple[retrieval.RetrievalGroundTruth, P.ScoreMatrixPredictions]:
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(600_000, size=n_images, replace=False).astype(np.int64)
    caption_image = np.repeat(np.arange(n_images), 5)
    caption_ids = rng.choice(900_000, size=len(caption_image), replace=False).astype(np.int64)
    folds = np.arange(n_images) * 5 // n_images
    scores = rng.standard_normal((len(caption_ids), n_images), dtype=np.float32)
    scores[np.arange(len(caption_ids)), caption_image] += 2.0
    scores = np.round(scores, 2)  # coarse scores: plenty of ties, the tie rule at work
    gt = retrieval.RetrievalGroundTruth(caption_ids, caption_image, image_ids, folds)
    return gt, P.ScoreMatrixPredictions(scores, caption_ids, image_ids)


def reference_retrieval(
    gt: retrieval.RetrievalGroundTruth, pred: P.ScoreMatrixPredictions
) -> dict[str, float]:
    """vsepp's loops: one descending stable sort per caption and per image (5k only).

    A stable argsort of (-score) with columns in ascending id order is the documented tie
    rule, so the figures must equal the vectorised scorer's.
    """
    col_order = np.argsort(pred.image_ids, kind="stable")  # columns by ascending image id
    row_order = np.argsort(pred.caption_ids, kind="stable")  # rows by ascending caption id
    s = pred.scores[row_order][:, col_order]
    gt_row = {c: i for i, c in enumerate(gt.caption_ids.tolist())}
    rows = [gt_row[c] for c in pred.caption_ids[row_order].tolist()]
    gold_image = gt.image_ids[gt.caption_image[rows]]
    caption_image_sorted = np.searchsorted(pred.image_ids[col_order], gold_image)
    t2i = np.zeros(len(s))
    for c in range(len(s)):
        inds = np.argsort(-s[c], kind="stable")
        t2i[c] = np.where(inds == caption_image_sorted[c])[0][0]
    i2t = np.zeros(s.shape[1])
    for j in range(s.shape[1]):
        inds = np.argsort(-s[:, j], kind="stable")
        mine = np.flatnonzero(caption_image_sorted == j)
        i2t[j] = np.flatnonzero(np.isin(inds, mine))[0]
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * len(np.where(ranks < k)[0]) / len(ranks)
        out[f"{name}_medr"] = float(np.floor(np.median(ranks)) + 1)
        out[f"{name}_meanr"] = float(ranks.mean() + 1)
    return out


def bench_retrieval(n_images: int, tmp: Path, run_reference: bool) -> None:
    gt, pred = synth_retrieval(n_images)
    shape = f"{pred.scores.shape[0]:,} x {pred.scores.shape[1]:,}"
    t, result = timed(lambda: retrieval.score(gt, pred), repeat=2)
    report("coco_retrieval", f"score {shape} (5k + 5 folds of 1k)", f"{t:.3f} s")
    report(
        "coco_retrieval",
        "score, traced peak memory",
        mib(traced_peak(lambda: retrieval.score(gt, pred))),
    )
    path = tmp / "scores.npz"
    np.savez(path, scores=pred.scores, caption_ids=pred.caption_ids, image_ids=pred.image_ids)
    t, problems = timed(lambda: retrieval.validate(gt, P.parse_retrieval(path)))
    report(
        "coco_retrieval",
        f"parse + validate npz ({path.stat().st_size / 2**20:.0f} MiB)",
        f"{t:.3f} s, {len(problems)} problems",
    )
    via_server = bench_server_path("coco_retrieval", gt, path, tmp)
    assert via_server.metrics == result.metrics
    path.unlink()
    if run_reference:
        t_ref, expected = timed(lambda: reference_retrieval(gt, pred))
        got = {k: result.metrics[k] for k in expected}
        same = "equal" if got == expected else f"DIFFERENT {got} vs {expected}"
        report(
            "coco_retrieval",
            "straightforward argsort loops (vsepp style, 5k only)",
            f"{t_ref:.2f} s, metrics {same}",
        )
    report(
        "coco_retrieval",
        "t2i R@1 / i2t R@1",
        f"{result.metrics['t2i_r1']:.2f} / {result.metrics['i2t_r1']:.2f}",
    )


# --------------------------------------------------------------------------- nlvr2


def bench_nlvr2(n: int, tmp: Path, run_reference: bool) -> None:
    rng = random.Random(3)
    ids = [f"test1-{i // 8}-{i % 4}-{(i // 4) % 2}" for i in range(n)]
    labels = [rng.random() < 0.5 for _ in ids]
    gt = nlvr2.Nlvr2GroundTruth.from_records(
        {"identifier": i, "label": str(lab)} for i, lab in zip(ids, labels, strict=True)
    )
    lines = "\n".join(
        f"{i},{(lab if rng.random() < 0.8 else not lab)}"
        for i, lab in zip(ids, labels, strict=True)
    )
    path = tmp / "nlvr2.csv"
    path.write_text(lines)
    parsed = P.parse_nlvr2(path)
    t, result = timed(lambda: nlvr2.score(gt, parsed), repeat=3)
    report("nlvr2", f"score test1-size ({n:,} examples)", f"{t:.4f} s")
    t, _ = timed(lambda: nlvr2.validate(gt, P.parse_nlvr2(path)), repeat=3)
    report("nlvr2", "parse + validate csv", f"{t:.4f} s")
    if run_reference:

        def official() -> tuple[float, float]:
            preds = dict(line.strip().split(",") for line in path.read_text().splitlines())
            consistent: dict[str, bool] = {}
            correct = 0.0
            for ident, lab in zip(ids, labels, strict=True):
                parts = ident.split("-")  # the official anonymisation, as its script does
                parts[2] = ""
                key = "-".join(parts)
                consistent.setdefault(key, True)
                if preds[ident].lower() == str(lab).lower():
                    correct += 1
                else:
                    consistent[key] = False
            return correct / len(ids), sum(consistent.values()) / len(consistent)

        t_ref, (acc, cons) = timed(official, repeat=3)
        same = result.details["official"] == {"accuracy": acc, "consistency": cons}
        report(
            "nlvr2",
            "official-style loop (file read included)",
            f"{t_ref:.4f} s, {'equal' if same else 'DIFFERENT'}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes")
    parser.add_argument(
        "--skip-reference", action="store_true", help="skip the slow reference loops"
    )
    args = parser.parse_args()
    size = lambda n: max(50, int(n * args.scale))  # noqa: E731
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, scale {args.scale}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        bench_vqa(size(214_354), tmp, not args.skip_reference)
        bench_gqa(size(12_578), tmp, not args.skip_reference)
        bench_retrieval(size(5_000), tmp, not args.skip_reference)
        bench_nlvr2(size(6_967), tmp, not args.skip_reference)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"process max RSS: {mib(maxrss)}")


if __name__ == "__main__":
    main()
