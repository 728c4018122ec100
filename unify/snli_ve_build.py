"""Build SNLI-VE from SNLI 1.0 and the Flickr30k split lists, as its authors' generator does.

SNLI-VE has no download of its own that a script can fetch (its files sit behind Google
Drive links); its authors publish the generator instead (necla-ml/SNLI-VE,
``snli_ve_generator.py``). This is the same procedure, re-written to stream and to read
SNLI through vl12's bounded JSON Lines reader:

- every SNLI 1.0 pair (train, then dev, then test file, in file order) whose
  ``gold_label`` is not ``-`` and whose ``pairID`` is not a Visual Genome one (``vg_``)
  is kept, with ``Flikr30kID`` (sic) added: the pairID up to its last ``.jpg``, plus
  ``.jpg``; its keys are written sorted;
- pairs are grouped by image (the pairID up to its first ``.jpg``);
- ``test`` holds the images of ``flickr30k_test.lst``, ``dev`` the last 1,000 images of
  ``flickr30k_train_val.lst`` and ``train`` the others, each split in its list's order,
  an image's pairs in SNLI order; an image in no list is left out.

Records are held as their output lines (about 570k pairs: some hundred MB), never as
Python objects.
"""

from __future__ import annotations

import json
from pathlib import Path

from unify.errors import DataError, RecordError
from unify.rawio import DEFAULT_LIMITS, iter_jsonl

__all__ = ["DEV_IMAGES", "build"]

#: The generator's dev split: the last 1,000 images of the train/val list.
DEV_IMAGES = 1000
SNLI = ".vl12/snli_ve/snli_1.0_{}.jsonl"
TRAIN_VAL = ".vl12/snli_ve/flickr30k_train_val.lst"
TEST = ".vl12/snli_ve/flickr30k_test.lst"
OUT = "snli_ve/snli_ve_{}.jsonl"


def _image_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text list of Flickr30k image ids ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pairs_by_image(files: list[Path]) -> dict[str, list[bytes]]:
    by_image: dict[str, list[bytes]] = {}
    for path in files:
        for lineno, rec in iter_jsonl(path, "snli_ve", None, DEFAULT_LIMITS):
            if not isinstance(rec, dict):
                raise RecordError(path, f"line {lineno}", "pairID", "record is not an object")
            pair_id, gold = rec.get("pairID"), rec.get("gold_label")
            if not isinstance(pair_id, str) or ".jpg" not in pair_id:
                raise RecordError(
                    path, f"line {lineno}", "pairID", f"not an image pair id: {pair_id!r:.60}"
                )
            if gold == "-" or "vg_" in pair_id:
                continue
            rec["Flikr30kID"] = pair_id[: pair_id.rfind(".jpg")] + ".jpg"
            line = json.dumps(rec, sort_keys=True, ensure_ascii=False).encode() + b"\n"
            by_image.setdefault(pair_id[: pair_id.find(".jpg")], []).append(line)
    return by_image


def build(inputs: dict[str, Path], outputs: dict[str, Path]) -> dict[str, int]:
    """Write the three SNLI-VE files (``outputs`` by raw-layout path, each written to its
    given path) from the parts (``inputs`` by their ``.vl12/`` path); return pairs per file.
    """
    by_image = _pairs_by_image([inputs[SNLI.format(s)] for s in ("train", "dev", "test")])
    train_val = _image_list(inputs[TRAIN_VAL])
    if len(train_val) <= DEV_IMAGES:
        raise DataError(
            f"{inputs[TRAIN_VAL]}: {len(train_val)} images; the train/val list holds more "
            f"than {DEV_IMAGES} (its last {DEV_IMAGES} are the dev split)"
        )
    splits = {
        "train": train_val[:-DEV_IMAGES],
        "dev": train_val[-DEV_IMAGES:],
        "test": _image_list(inputs[TEST]),
    }
    counts = {}
    for split, images in splits.items():
        dest = OUT.format(split)
        n = 0
        with open(outputs[dest], "wb") as out:
            for image in images:
                for line in by_image.get(image, ()):
                    out.write(line)
                    n += 1
        counts[dest] = n
    return counts
