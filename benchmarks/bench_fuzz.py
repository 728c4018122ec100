"""The long fuzz run: thousands of corrupted inputs through the real commands.

Claim checked (issue 10, docs/cli.md): bad input gets a clean error naming the file, never
a traceback or a crash, corruptions that must be rejected are rejected, and nothing is
written on failure. The targets and judgement rules are the test suite's (tests/fuzz,
docs/testing.md): every raw file a converter declares (built from the converter-test cases
and from the tiny sample), every task's prediction formats (plain and gzipped) scored
against the tiny build, and the tiny build with features damaged under `unify info`,
`unify leaks`, `unify verify` and `evalserver score`.

Prints, per target and in total, how many cases were tried and how each ended (ok, clean
error, traceback, crash, silent acceptance, unclear error, written on failure), then every
distinct bad outcome with one reproducible example (command line; with --keep DIR the case
folder, corrupted input included, is kept there).

    .venv/bin/python benchmarks/bench_fuzz.py --cases 3000 --seed 0
    .venv/bin/python benchmarks/bench_fuzz.py --cases 200 --kinds pred --no-bombs   # smoke
    .venv/bin/python benchmarks/bench_fuzz.py --cases 300 --mode subprocess  # as users run it
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalserver.metrics import get_scorer
from tests.fuzz.oracle import BAD, OUTCOMES
from tests.fuzz.runner import Result, explore
from tests.fuzz.seeds import (
    CASE,
    SAMPLE,
    RawSeeds,
    derive_optional,
    prediction_seeds,
    task_dir,
    write_case_roots,
)
from tests.fuzz.targets import (
    UNIFIED_COMMANDS,
    PredictionFuzz,
    RawFuzz,
    RawTarget,
    UnifiedFuzz,
    declared_raw_files,
    unify_commands,
)
from unify.tasks import UNIVERSES, all_tasks

KINDS = ("raw", "pred", "unified")
#: Share of the cases per kind of target.
SHARES = {"raw": 0.5, "pred": 0.3, "unified": 0.2}


def build_seeds(root: Path, kinds: tuple[str, ...]) -> tuple[RawSeeds, Path, Path]:
    """Raw seeds (converter cases and the tiny sample), the tiny build and the tiny build
    with the region features of every universe the sample writes (the builds only when
    predictions or unified files are fuzzed)."""
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.features import import_features
    from unify.sample.world import generate

    cases = write_case_roots(root / CASE)
    sample_raw = root / "sample"
    generate(sample_raw, scale="tiny", seed=0)
    h5 = root / "tiny.h5"
    featured = root / "featured.h5"
    if "pred" in kinds or "unified" in kinds:
        run_build(sample_raw, h5, BuildOptions(tasks=resolve_tasks((), True), all=True))
        shutil.copyfile(h5, featured)
        for universe in UNIVERSES:
            tsv = sample_raw / "features" / f"{universe}.tsv"
            if tsv.is_file():
                import_features(featured, [tsv], f"bottomup_{universe}", universe)
    sample = {}
    for name, spec in all_tasks().items():
        if task_dir(sample_raw, spec).is_dir():
            derive_optional(sample_raw, spec)
            sample[name] = sample_raw
    return RawSeeds({CASE: cases, SAMPLE: sample}), h5, featured


def targets(
    seeds: RawSeeds, h5: Path, featured: Path, kinds: tuple[str, ...], sources: tuple[str, ...]
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {kind: [] for kind in kinds}
    if "raw" in kinds:
        for task, file in declared_raw_files():
            for source in seeds.sources_of(task, file):
                if source in sources:
                    out["raw"].append(RawFuzz(seeds, RawTarget(task, file, source)))
    preds = list(prediction_seeds(h5)) if "pred" in kinds or "unified" in kinds else []
    if "pred" in kinds:
        out["pred"] = [PredictionFuzz(seed, h5, gz) for seed in preds for gz in (False, True)]
    if "unified" in kinds:
        primary = {s.task: s for s in preds if s.format_name == get_scorer(s.task).formats[0].name}
        available = set(unify_commands())
        out["unified"] = [
            UnifiedFuzz(featured, command, primary)
            for command in UNIFIED_COMMANDS
            if command == "score" or command in available
        ]
    return out


def label(fuzz: Any) -> str:
    if isinstance(fuzz, RawFuzz):
        return f"{fuzz.target.label} [{fuzz.target.source}]"
    return fuzz.label


def signature(result: Result) -> tuple[str, str, str, str]:
    """What makes two bad cases the same finding: target, outcome, corruption kind and the
    message with paths and numbers blanked."""
    if result.target.startswith("unified:"):
        op = result.corruption.split(" ")[0]  # the damage's kind, not where it went
    else:
        op = re.sub(r"\d+", "N", result.corruption.split(": ")[0])
    detail = re.sub(r"/\S*/", "…/", result.outcome.detail)
    detail = re.sub(r"\d+", "N", detail)[:160]
    return (result.target, result.outcome.kind, op, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000, help="cases in all (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="raw,pred,unified")
    parser.add_argument("--sources", default=f"{CASE},{SAMPLE}", help="raw seeds: case,sample")
    parser.add_argument("--mode", choices=("fork", "subprocess"), default="fork")
    parser.add_argument("--no-bombs", action="store_true", help="leave out the gzip/zip bombs")
    parser.add_argument("--keep", type=Path, help="keep one case folder per finding here")
    parser.add_argument("--json", type=Path, help="also write the counts and findings here")
    args = parser.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    sources = tuple(s for s in args.sources.split(",") if s)
    bombs = "no" if args.no_bombs else "also"

    work = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    started = time.perf_counter()
    seeds, h5, featured = build_seeds(work / "seeds", kinds)
    all_targets = targets(seeds, h5, featured, kinds, sources)
    cases_dir = work / "cases"
    cases_dir.mkdir()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"bench_fuzz: commit {commit}, seed {args.seed}, mode {args.mode}, bombs {bombs}")
    print(f"seeds built in {time.perf_counter() - started:.0f}s under {work}")

    counts: dict[str, collections.Counter[str]] = {}
    findings: dict[tuple[str, str, str, str], list[Result]] = {}
    kept: dict[tuple[str, str, str, str], Path] = {}
    field_named: dict[str, list[Result]] = {"named": [], "unnamed": []}
    weight = sum(SHARES[k] for k in kinds)
    for kind in kinds:
        fuzzes = all_targets[kind]
        if not fuzzes:
            continue
        per_target = max(1, round(args.cases * SHARES[kind] / weight / len(fuzzes)))
        for fuzz in fuzzes:
            name = label(fuzz)
            tally = counts.setdefault(name, collections.Counter())
            if isinstance(fuzz, UnifiedFuzz):
                strategy = fuzz.strategy()
            else:
                strategy = fuzz.strategy(bombs=bombs)

            def one(case: Any, fuzz: Any = fuzz) -> Result:
                result = fuzz.run(case, cases_dir, args.mode, keep=bool(args.keep))
                folder = result.command.folder
                sig = signature(result)
                if result.outcome.bad and args.keep and sig not in kept:
                    dest = args.keep / f"{len(kept):03d}-{result.outcome.kind}"
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.move(str(folder), dest)
                    _reproducible(result, dest)
                    kept[sig] = dest
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                return result

            t0 = time.perf_counter()
            results = explore(strategy, one, per_target, seed=args.seed)
            for result in results:
                tally["tried"] += 1
                tally[result.outcome.kind] += 1
                _count_field_naming(result, field_named)
                if result.outcome.bad:
                    findings.setdefault(signature(result), []).append(result)
            bad = sum(tally[k] for k in BAD)
            print(
                f"  {name:<72} {tally['tried']:>5} cases, {bad:>4} bad, "
                f"{time.perf_counter() - t0:6.1f}s",
                flush=True,
            )

    _print_table(counts, kinds)
    _print_field_naming(field_named)
    _print_findings(findings, kept)
    print(f"total time {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "seed": args.seed,
                    "counts": {k: dict(v) for k, v in counts.items()},
                    "findings": [
                        {
                            "target": sig[0],
                            "outcome": sig[1],
                            "corruption": sig[2],
                            "count": len(results),
                            "example": results[0].describe(),
                        }
                        for sig, results in findings.items()
                    ],
                },
                indent=2,
            )
        )
    shutil.rmtree(work, ignore_errors=True)


def _reproducible(result: Result, dest: Path) -> None:
    """Copy the inputs the command names outside its folder (the unified file scored
    against) into ``dest`` and write REPRODUCE.txt: run the command there."""
    args = list(result.command.args)
    for i, arg in enumerate(args):
        path = Path(arg)
        if path.is_absolute() and path.is_file():
            shutil.copyfile(path, dest / path.name)
            args[i] = path.name
    line = " ".join([result.command.program, *args])
    (dest / "REPRODUCE.txt").write_text(f"cd {dest} && {line}\n\n{result.describe()}\n")


COLUMNS = ("tried", "ok", "clean_error", *BAD)
HEAD = ("tried", "ok", "clean", "traceback", "crash", "written", "silent", "unclear")


def _kind_of(name: str) -> str:
    return name.split(":")[0]


def _print_table(counts: dict[str, collections.Counter[str]], kinds: tuple[str, ...]) -> None:
    assert set(COLUMNS) - {"tried"} == set(OUTCOMES)
    order = ("tried", "ok", "clean_error", "traceback", "crash", "written")
    order += ("silent_acceptance", "unclear_error")
    print("\n| target | " + " | ".join(HEAD) + " |")
    print("|---|" + "---:|" * len(HEAD))
    totals: dict[str, collections.Counter[str]] = {}
    for name, tally in counts.items():
        print(f"| {name} | " + " | ".join(str(tally[c]) for c in order) + " |")
        totals.setdefault(_kind_of(name), collections.Counter()).update(tally)
    everything: collections.Counter[str] = collections.Counter()
    print("\n| kind | " + " | ".join(HEAD) + " |")
    print("|---|" + "---:|" * len(HEAD))
    for kind, tally in totals.items():
        everything.update(tally)
        print(f"| {kind} | " + " | ".join(str(tally[c]) for c in order) + " |")
    print("| **all** | " + " | ".join(f"**{everything[c]}**" for c in order) + " |")


def _field(result: Result) -> str | None:
    """The field a raw value corruption that must be rejected changed (its last key)."""
    case = result.case
    if not result.target.startswith("raw:") or not result.must_reject:
        return None
    if not getattr(case, "op", "").startswith("value:") or case.where.endswith("]"):
        return None
    return case.where.rsplit(".", 1)[-1] if "." in case.where else None


def _count_field_naming(result: Result, tally: dict[str, list[Result]]) -> None:
    field = _field(result)
    if field is not None and result.outcome.kind == "clean_error":
        tally["named" if field in result.outcome.stderr else "unnamed"].append(result)


def _print_field_naming(tally: dict[str, list[Result]]) -> None:
    named, unnamed = len(tally["named"]), len(tally["unnamed"])
    print(
        f"\nclean errors on a corrupted raw field that name the field: {named} of {named + unnamed}"
    )
    for result in tally["unnamed"][:10]:
        print(f"  not named: {result.target}: {result.corruption} -> {result.outcome.detail}")


def _print_findings(
    findings: dict[tuple[str, str, str, str], list[Result]], kept: dict[Any, Path]
) -> None:
    print(f"\n{len(findings)} distinct bad outcomes (target, outcome, corruption, message):")
    for sig in sorted(findings, key=lambda s: (BAD.index(s[1]), s[0], s[2])):
        results = findings[sig]
        where = f" (kept in {kept[sig]})" if sig in kept else ""
        print(f"\n[{sig[1]}] x{len(results)}{where}")
        print("  " + results[0].describe().replace("\n", "\n  "))


if __name__ == "__main__":
    main()
