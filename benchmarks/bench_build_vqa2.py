"""Full-size VQA v2 build vs a plain json.load of the same files (issue: build <= 3x parse).

Generates (once, cached under .bench-cache/) a raw VQA v2 set of the real size with the
format writer: 443,757 train + 214,354 val questions, 10 answers each, tens of thousands of
distinct answer strings with a long-tailed distribution. Then, each in a fresh process:
``json.load`` of the four files, and ``unify build vqa2``. Prints wall time, the ratio and
peak memory.

    .venv/bin/python benchmarks/bench_build_vqa2.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import CACHE, fresh_process, report
from unify.sample.vqa2_format import write_vqa2

SIZES = {"train2014": 443_757, "val2014": 214_354}
DISTINCT = 60_000


def _answer_pool(rng: random.Random) -> list[str]:
    syllables = ["ba", "ko", "ri", "tu", "me", "sa", "lo", "ne", "vi", "da", "po", "gu"]
    pool = ["yes", "no", *map(str, range(0, 60)), "red", "blue", "white", "black"]
    while len(pool) < DISTINCT:
        words = [
            "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
            for _ in range(rng.randint(1, 3))
        ]
        pool.append(" ".join(words))
    return pool


def generate(raw: Path) -> None:
    rng = random.Random(12)
    pool = _answer_pool(rng)
    cum: list[float] = []
    total = 0.0
    for rank in range(len(pool)):
        total += 1.0 / (rank + 1) ** 1.1
        cum.append(total)
    variants = (str.capitalize, lambda a: a + ".", lambda a: "the " + a, str.upper)
    qtypes = ["what is", "how many", "is the", "what color is the", "none of the above"]
    next_image = 1
    for subset, n in SIZES.items():
        mcs = rng.choices(pool, cum_weights=cum, k=n)
        noise = iter(rng.choices(pool, cum_weights=cum, k=3 * n))
        records = []
        for i, mc in enumerate(mcs):
            if i % 5 == 0:
                next_image += 1
            answers = []
            for _ in range(10):
                r = rng.random()
                if r < 0.7:
                    answers.append(mc)
                elif r < 0.8:
                    answers.append(rng.choice(variants)(mc))
                else:
                    answers.append(next(noise))
            atype = "yes/no" if mc in ("yes", "no") else "number" if mc.isdigit() else "other"
            records.append(
                {
                    "question_id": next_image * 1000 + i % 5,
                    "image_id": next_image,
                    "question": f"What is shown in picture {next_image} number {i}?",
                    "question_type": qtypes[i % len(qtypes)],
                    "answer_type": atype,
                    "multiple_choice_answer": mc,
                    "answers": answers,
                }
            )
        write_vqa2(raw / "vqa2", subset, records)
        del records


def main() -> None:
    raw = CACHE / "vqa2-full"
    marker = raw / ".complete"
    if not marker.exists():
        print("generating the full-size VQA v2 raw set (once)...", file=sys.stderr)
        generate(raw)
        marker.write_text("ok")
    files = sorted(str(p) for p in (raw / "vqa2").glob("*.json"))
    size = sum(Path(f).stat().st_size for f in files)
    parse = fresh_process(f"import json\nfor f in {files!r}:\n    json.load(open(f))")
    out = CACHE / "vqa2-full.h5"
    build = fresh_process(
        "from unify.cli import main\n"
        f"main(['build', 'vqa2', '--raw', {str(raw)!r}, '--out', {str(out)!r}, '--force', '-q'],"
        " standalone_mode=False)"
    )
    report(
        "build_vqa2_full",
        {
            "raw_bytes": size,
            "json_load_seconds": round(parse["seconds"], 2),
            "json_load_peak_rss_gb": round(parse["peak_rss_bytes"] / 2**30, 2),
            "unify_build_seconds": round(build["seconds"], 2),
            "unify_build_peak_rss_gb": round(build["peak_rss_bytes"] / 2**30, 2),
            "ratio_build_to_parse": round(build["seconds"] / parse["seconds"], 2),
            "output_bytes": out.stat().st_size,
        },
    )


if __name__ == "__main__":
    main()
