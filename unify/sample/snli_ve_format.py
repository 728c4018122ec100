"""Writer of the SNLI-VE files: ``snli_ve_{train,dev,test}.jsonl``, one pair per line.

Lines carry the release's keys in sorted order (as the known copies of the files have them),
with ``json.dumps`` default separators. The image is written under the release's
``Flikr30kID`` ("<id>.jpg") by default, or under the re-hosted copies' ``Flickr30K_ID``
("<id>") with ``image_field="Flickr30K_ID"``: the converter accepts both.

SNLI-VE's sample generator (``write_sample``, named by its TaskSpec) is here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from unify.sample import language as lang
from unify.sample.jsonfile import write_jsonl_atomic
from unify.sample.world import World, count
from unify.tasks import TaskSpec


class SnliVePair(TypedDict, total=False):
    """A plain record; parses and annotator labels get simple defaults when absent."""

    flickr_id: str
    pair_id: str
    caption_id: str
    gold_label: str
    annotator_labels: list[str]
    premise: str
    hypothesis: str
    sentence1_parse: str
    sentence1_binary_parse: str
    sentence2_parse: str
    sentence2_binary_parse: str


def flat_parses(sentence: str) -> tuple[str, str]:
    """(binary parse, parse) of a sentence bracketed flat, one leaf per whitespace token.

    The release's parses come from the Stanford parser; no consumer of this project reads
    them, so a well-formed flat bracketing stands in when a record brings none.
    """
    tokens = sentence.split()
    binary = "( " + " ".join(tokens) + " )"
    parse = "(ROOT (S " + " ".join(f"(X {t})" for t in tokens) + "))"
    return binary, parse


def snli_ve_record(
    pair: SnliVePair, image_field: Literal["Flikr30kID", "Flickr30K_ID"] = "Flikr30kID"
) -> dict[str, Any]:
    """The release's line layout (sorted keys)."""
    image = pair["flickr_id"] + (".jpg" if image_field == "Flikr30kID" else "")
    rec: dict[str, Any] = {
        image_field: image,
        "annotator_labels": pair.get("annotator_labels", [pair["gold_label"]]),
        "captionID": pair["caption_id"],
        "gold_label": pair["gold_label"],
        "pairID": pair["pair_id"],
        "sentence1": pair["premise"],
        "sentence2": pair["hypothesis"],
    }
    for n, text in ((1, pair["premise"]), (2, pair["hypothesis"])):
        binary, parse = flat_parses(text)
        rec[f"sentence{n}_binary_parse"] = pair.get(f"sentence{n}_binary_parse", binary)
        rec[f"sentence{n}_parse"] = pair.get(f"sentence{n}_parse", parse)
    return dict(sorted(rec.items()))


def write_snli_ve(
    task_dir: Path,
    split: str,
    pairs: Iterable[SnliVePair],
    image_field: Literal["Flikr30kID", "Flickr30K_ID"] = "Flikr30kID",
) -> Path:
    """Write ``<task_dir>/snli_ve_<split>.jsonl`` (split: train, dev, test), streamed."""
    path = task_dir / f"snli_ve_{split}.jsonl"
    write_jsonl_atomic(path, (snli_ve_record(p, image_field) for p in pairs))
    return path


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class SnliVeSample:
    """SNLI-VE's numbers in the sample world. Its photos, their Entities-style split and
    their captions (the premises) are the world's, shared with Flickr30k retrieval."""

    per_image: float  # hypotheses per photo


SAMPLE_SCALES = {
    "tiny": SnliVeSample(per_image=3),
    "small": SnliVeSample(per_image=6),
    "full": SnliVeSample(per_image=17.8),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """Hypotheses entailed, contradicted or left neutral by the photo, on one of its
    captions as the premise."""
    s = w.sized(SAMPLE_SCALES, spec.name)
    files = []
    for split in ("train", "dev", "test"):
        photos = [p for p in w.flickr if w.entities_split[p] == split]

        def pairs(photos: list[int] = photos) -> Iterator[SnliVePair]:
            for p in photos:
                rng = w.rng("snli", p)
                scene = w.scene(f"flickr{p}")
                captions = w.captions(f"flickr{p}")
                for k in range(count(rng, s.per_image)):
                    cap = rng.randrange(len(captions))
                    hyp, label = lang.hypothesis(scene, rng)
                    # Never "-": the release's generator drops SNLI pairs without a gold
                    # label, so the real files have none (the converter still handles them).
                    yield {
                        "flickr_id": str(p),
                        "pair_id": f"{p}.jpg#{cap}r{k}{label[0]}",
                        "caption_id": f"{p}.jpg#{cap}",
                        "gold_label": label,
                        "annotator_labels": [label],
                        "premise": captions[cap],
                        "hypothesis": hyp,
                    }

        files.append(write_snli_ve(task_dir, split, pairs()))
    return files
