"""Damage a unified file many ways at random; count how every command copes.

    .venv/bin/python benchmarks/fuzz_unified.py [--cases 500] [--seed 0] [--file FILE]

Without ``--file`` the tiny sample is generated and built once (cached under
.bench-cache/fuzz). Each case copies the file, damages the copy (``flip``: 1-3 random
bytes anywhere; ``flip-data``: a byte inside a random dataset's first chunk; ``truncate``;
``delete``: a random dataset, group or attribute; ``retype``: a random dataset rewritten
with another dtype; ``attr``: a random attribute set to garbage), then runs `unify verify`,
`unify info --json` and `unify leaks --json` in a forked child (a crash of the
interpreter kills only the child). Per command, the outcome is:

- ``error``: exit 1 (2/3 for leaks' own codes do not count) with one line on stderr (verify:
  problem lines on stdout), no traceback;
- ``traceback``: an exception escaped the command;
- ``crash``: the child died from a signal;
- ``ok``: exit 0 (or leaks' 3).

Judged: a case is a **silent acceptance** when `unify verify` says the file is sound but
`info --json` or `leaks --json` answer differently from the undamaged file (the damage
changed an answer and nothing noticed). Damage that changes nothing (a flipped byte in free
space or chunk padding) is ``harmless`` when verify passes and the answers are unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner

from benchmarks._common import CACHE
from tests.unify.damage import KINDS, damage, objects_of
from unify.cli import main as unify_main


def tiny_file() -> Path:
    out = CACHE / "fuzz" / "tiny.h5"
    if not out.exists():
        from unify.build import BuildOptions, resolve_tasks, run_build
        from unify.sample.world import generate

        raw = CACHE / "fuzz" / "raw"
        generate(raw, scale="tiny", seed=0, force=True)
        run_build(raw, out, BuildOptions(tasks=resolve_tasks((), True), all=True))
    return out


def run(args: list[str]) -> tuple[str, str]:
    result = CliRunner().invoke(unify_main, args)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        return "traceback", "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if result.exit_code == 1:
        lines = result.stderr.strip().splitlines() or result.stdout.strip().splitlines()
        if args[0] != "verify" and len(lines) != 1:
            return "traceback", f"{len(lines)} lines on stderr"
        return "error", lines[0] if lines else ""
    return "ok", result.stdout


def child(path: Path, baseline: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, args in (
        ("verify", ["verify", str(path)]),
        ("info", ["info", str(path), "--json"]),
        ("leaks", ["leaks", str(path), "--json"]),
    ):
        outcome, text = run(args)
        out[name] = outcome
        if outcome == "ok" and name != "verify":
            answer = json.loads(text)
            answer.pop("file", None)
            out[f"{name}_same"] = json.dumps(answer, sort_keys=True) == baseline[name]
        elif outcome != "ok":
            out[f"{name}_text"] = text[:300]
    return out


def in_fork(path: Path, baseline: dict[str, str]) -> dict[str, Any]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        try:
            payload = json.dumps(child(path, baseline)).encode()
        except BaseException as exc:  # reported as "harness", not hidden
            payload = json.dumps({"harness": repr(exc)}).encode()
        try:
            with os.fdopen(write, "wb") as f:
                f.write(payload)
        finally:
            os._exit(0)  # never unwind into the parent's code
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"crash": os.WTERMSIG(status)}
    return json.loads(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--show", type=int, default=10, help="Cases of each bad kind to print.")
    args = parser.parse_args()
    source = args.file or tiny_file()
    objects = objects_of(source)
    baseline: dict[str, str] = {}
    for name in ("info", "leaks"):
        outcome, text = run([name, str(source), "--json"])
        assert outcome == "ok", (name, text)
        answer = json.loads(text)
        answer.pop("file", None)
        baseline[name] = json.dumps(answer, sort_keys=True)
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    bad: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.h5"
        for i in range(args.cases):
            kind = KINDS[i % len(KINDS)]
            shutil.copyfile(source, path)
            what = damage(path, kind, rng, objects)
            result = in_fork(path, baseline)
            if "crash" in result or "harness" in result:
                verdict = "crash" if "crash" in result else "harness"
            elif any(result.get(c) == "traceback" for c in ("verify", "info", "leaks")):
                verdict = "traceback"
            elif result["verify"] == "ok":
                same = all(result.get(f"{c}_same", True) for c in ("info", "leaks"))
                other_errors = any(result[c] == "error" for c in ("info", "leaks"))
                verdict = "harmless" if same and not other_errors else "silent acceptance"
            else:
                verdict = "clean error"
            counts[verdict] += 1
            counts[f"{kind}: {verdict}"] += 1
            if verdict in ("crash", "harness", "traceback", "silent acceptance"):
                bad.setdefault(verdict, []).append(f"{what}: {json.dumps(result)[:400]}")
    print(json.dumps({"cases": args.cases, "seed": args.seed, "counts": dict(counts)}, indent=2))
    for verdict, lines in bad.items():
        print(f"\n{verdict} ({len(lines)}):")
        for line in lines[: args.show]:
            print("  " + line)


if __name__ == "__main__":
    main()
