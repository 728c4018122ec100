"""Writer of the NLVR2 release files: ``<split>.json``, JSON Lines, one example per line.

Lines are laid out as the release's (``json.dumps`` default separators, the release's key
order, a newline after every line). Records are streamed to a temporary file that replaces
the target only when complete, so real-size files (train: 86k lines) cost no memory.

NLVR2's sample generator (``write_sample``, named by its TaskSpec) is here too, with
``feature_images``: NLVR2's image pairs are its own universe, not the world's photos.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from unify.sample import language as lang
from unify.sample.jsonfile import write_jsonl_atomic
from unify.sample.world import World
from unify.tasks import TaskSpec


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


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class Nlvr2Sample:
    """NLVR2's numbers in the sample world: its image pairs (and so its examples, one
    statement per pair) are its own."""

    train: int
    eval: int  # dev and test1 each


SAMPLE_SCALES = {
    "tiny": Nlvr2Sample(train=300, eval=60),
    "small": Nlvr2Sample(train=10000, eval=1000),
    "full": Nlvr2Sample(train=86373, eval=6982),
}


def sample_stems(w: World) -> dict[str, list[str]]:
    """The pair stems (``<split>-<set>-<pair>``) of each split."""
    s = w.sized(SAMPLE_SCALES, "nlvr2")
    return {
        split: [f"{split}-{i // 4}-{i % 4}" for i in range(n)]
        for split, n in (("train", s.train), ("dev", s.eval), ("test1", s.eval))
    }


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """One true-or-false statement about each image pair."""
    files = []
    for split, stems in sample_stems(w).items():

        def examples(stems: list[str] = stems) -> Iterator[Nlvr2Example]:
            for stem in stems:
                rng = w.rng("nlvr2", stem)
                left, right = (w.scene(f"nlvr2{stem}-img{k}") for k in (0, 1))
                sentence, label = lang.nlvr2_statement(left, right, rng)
                yield {"identifier": f"{stem}-0", "sentence": sentence, "label": label}

        files.append(write_nlvr2(task_dir, split, examples()))
    return files


def feature_images(w: World) -> dict[str, list[tuple[str, str]]]:
    """The images of the ``nlvr2`` universe for its feature TSV: (image_id, scene uid)."""
    return {
        "nlvr2": [
            (f"{stem}-img{k}", f"nlvr2{stem}-img{k}")
            for stems in sample_stems(w).values()
            for stem in stems
            for k in (0, 1)
        ]
    }
