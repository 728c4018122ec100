"""Small helpers shared by the unify tests."""

from __future__ import annotations

from pathlib import Path

from unify.build import BuildOptions, BuildResult, run_build
from unify.reader import UnifiedFile


def build(
    raw: Path, out: Path, *tasks: str, max_examples: int | None = None, clean: bool = False
) -> BuildResult:
    """Build ``tasks``; converter tests see the raw splits (cleaning is tested on its own)."""
    return run_build(raw, out, BuildOptions(tasks=tasks, max_examples=max_examples, clean=clean))


def examples(path: Path, task: str, split: str) -> list[dict]:
    with UnifiedFile(path) as uf:
        return list(uf.split(task, split))
