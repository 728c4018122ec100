"""Writer of the NLVR2 release files: ``<split>.json``, JSON Lines, one example per line.

Lines are laid out as the release's (``json.dumps`` default separators, the release's key
order, a newline after every line). Records are streamed to a temporary file that replaces
the target only when complete, so real-size files (train: 86k lines) cost no memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

from unify.sample.jsonfile import write_jsonl_atomic


class Nlvr2Example(TypedDict, total=False):
    """A plain record. ``label`` is a bool (written "True"/"False") or a string written as
    is; the other release fields get neutral defaults when absent."""

    identifier: str
    sentence: str
    label: bool | str
    left_url: str
    right_url: str
    synset: str
    query: str
    writer: str
    validation: dict[str, str]
    extra_validations: dict[str, str]


def nlvr2_record(ex: Nlvr2Example) -> dict[str, Any]:
    """The release's line layout, in its key order."""
    label = ex["label"]
    text = label if isinstance(label, str) else ("True" if label else "False")
    stem = ex["identifier"].rsplit("-", 1)[0]
    return {
        "validation": ex.get("validation", {"0": text}),
        "sentence": ex["sentence"],
        "left_url": ex.get("left_url", f"https://example.org/nlvr2/{stem}-img0.jpg"),
        "writer": ex.get("writer", "0"),
        "label": text,
        "right_url": ex.get("right_url", f"https://example.org/nlvr2/{stem}-img1.jpg"),
        "synset": ex.get("synset", ""),
        "query": ex.get("query", ""),
        "identifier": ex["identifier"],
        "extra_validations": ex.get("extra_validations", {}),
    }


def write_nlvr2(task_dir: Path, split: str, examples: Iterable[Nlvr2Example]) -> Path:
    """Write ``<task_dir>/<split>.json`` (split: train, dev, test1, test2) atomically."""
    path = task_dir / f"{split}.json"
    write_jsonl_atomic(path, (nlvr2_record(ex) for ex in examples))
    return path
