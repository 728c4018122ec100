"""SNLI-VE (Xie et al. 2019): does a Flickr30k image entail, contradict or leave open a
hypothesis?

One JSON Lines file per split (``snli_ve_{train,dev,test}.jsonl``), made by the release's
generation script from SNLI: the premise is the image, ``sentence1`` the Flickr30k caption
SNLI started from, ``sentence2`` the hypothesis. The image is named by ``Flikr30kID``
("2248275918.jpg", the release's spelling) or, in re-hosted copies such as allennlp's
fixtures, ``Flickr30K_ID`` ("2248275918", no extension); both become ``flickr:<stem>``,
the key Flickr30k retrieval uses, so leakage between the two tasks is visible.

Labels: contradiction 0, neutral 1, entailment 2. Pairs whose gold label is "-" (no
annotator majority in SNLI) are not part of SNLI-VE: the release's generator
(necla-ml/SNLI-VE ``snli_ve_generator.py``) keeps only SNLI pairs with ``gold_label != '-'``,
so the released files have none. Should a copy contain some, they are dropped, counted per
split in the task report (``dropped_gold_dash``) and their ids kept as the split array
``dropped_gold_dash`` (only when there are any), so that a prediction for one is refused
with a message that says why; any other label is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unify import rules
from unify.converters.base import BuildContext, Converter, RawFile, require
from unify.errors import RecordError
from unify.images import flickr_key
from unify.rules import NonEmpty, Unique
from unify.table import SplitTable, TaskTable

SPLIT_NAMES = ("train", "dev", "test")
FILE = "snli_ve_{}.jsonl"
#: Class names by label code (the row index is the stored int8 label).
LABEL_NAMES = ("contradiction", "neutral", "entailment")
LABELS = {name: code for code, name in enumerate(LABEL_NAMES)}
NO_GOLD = "-"
#: The release's spelling first; the re-hosted copies' second.
IMAGE_FIELDS = ("Flikr30kID", "Flickr30K_ID")


#: Split array of the pair ids dropped for a gold "-" label (absent when there are none).
DROPPED_ARRAY = "dropped_gold_dash"

PAIR_RULES = (
    NonEmpty("pairID"),
    "`pairID`: starts with its `captionID`",
    Unique("pairID", "pair id"),
    "`Flikr30kID` / `Flickr30K_ID`: <Flickr photo id (ASCII digits)>[.jpg]",
    "`captionID`: <the pair's image file name>#<n>",
    "`gold_label`: contradiction, neutral, entailment, or '-' (dropped, counted)",
)


class SnliVe(Converter):
    version = "1.1.0"  # 1.1: ids of dropped "-" pairs kept as a split array
    answer_columns = ("label",)
    homepage = "https://github.com/necla-ml/SNLI-VE"
    raw_files = tuple(RawFile(FILE.format(s), True, f"{s} pairs (JSON Lines)") for s in SPLIT_NAMES)
    field_rules = MappingProxyType({"pairs": PAIR_RULES})

    def convert(self, ctx: BuildContext) -> TaskTable:
        splits: list[SplitTable] = []
        dropped: dict[str, int] = {}
        for split in SPLIT_NAMES:
            table, dropped[split] = self._read(ctx, split, FILE.format(split))
            ctx.images.add_many(table.columns["image"])
            splits.append(table)
        report = {
            "counts": {s.name: s.num_examples for s in splits},
            "dropped_gold_dash": dropped,
            # Accepted knowingly: the release has none; a copy's "-" pairs are dropped.
            "accepted": {"dropped_gold_dash": dropped},
            "label_counts": {
                s.name: dict(
                    zip(
                        LABEL_NAMES,
                        np.bincount(s.columns["label"], minlength=len(LABEL_NAMES)).tolist(),
                        strict=True,
                    )
                )
                for s in splits
            },
        }
        return TaskTable(self.name, self.task_attrs(label_set=list(LABEL_NAMES)), splits, report)

    def _records(self, ctx: BuildContext, file: str) -> Iterator[tuple[int, Any]]:
        """The file's (line, record) pairs, the first N in smoke mode.

        The rest of the file is still read so that its sha256 is recorded and a corrupt
        tail is reported even in smoke mode.
        """
        items = self.iter_jsonl(ctx, file)
        yield from ctx.limit(ctx.progress(items, desc=f"{self.name} {file}"))
        for _ in items:
            pass

    def _read(self, ctx: BuildContext, split: str, file: str) -> tuple[SplitTable, int]:
        path = self.file(ctx.raw_root, file)
        ids: list[str] = []
        images: list[str] = []
        hypotheses: list[str] = []
        premises: list[str] = []
        caption_ids: list[str] = []
        labels: list[int] = []
        dropped: list[str] = []
        #: Raw image name -> (key, caption id prefix): about 18 pairs share an image.
        key_of: dict[str, tuple[str, str]] = {}
        records = 0
        for lineno, rec in self._records(ctx, file):
            records += 1
            try:
                pair_id, gold = rec["pairID"], rec["gold_label"]
                raw_image = rec.get("Flikr30kID")
                if raw_image is None:
                    raw_image = rec["Flickr30K_ID"]
                key, prefix = key_of.get(raw_image) or key_of.setdefault(
                    raw_image, _image_key(raw_image)
                )
                hypothesis, premise, caption_id = (
                    rec["sentence2"],
                    rec["sentence1"],
                    rec["captionID"],
                )
                label = LABELS.get(gold, -1) if type(gold) is str else -1
                ok = (
                    type(pair_id) is str
                    and type(hypothesis) is str
                    and type(premise) is str
                    and type(caption_id) is str
                    and (label >= 0 or gold == NO_GOLD)
                    and caption_id.startswith(prefix)
                    and pair_id.startswith(caption_id)
                )
            except (KeyError, TypeError, AttributeError, ValueError):
                ok = False
            if not ok:
                _explain(rec, path, lineno)
            if label < 0:
                dropped.append(pair_id)
                continue
            ids.append(pair_id)
            images.append(key)
            hypotheses.append(hypothesis)
            premises.append(premise)
            caption_ids.append(caption_id)
            labels.append(label)
        rules.require_records(path, records, "pairs")
        every = ids + dropped if dropped else ids
        rules.check(path, every, {"pairID": every}, PAIR_RULES)
        table = SplitTable(
            split,
            self.split_role(split),
            {
                "id": ids,
                "image": images,
                "hypothesis": hypotheses,
                "premise": premises,
                "caption_id": caption_ids,
                "label": np.asarray(labels, dtype=np.int8),
            },
            arrays={DROPPED_ARRAY: dropped} if dropped else {},
        )
        return table, len(dropped)


def _image_key(raw: str) -> tuple[str, str]:
    """(``flickr:<stem>``, the caption id prefix ``<stem>.jpg#``) from "2248275918.jpg"
    or "2248275918"; ValueError otherwise."""
    stem = raw[: -len(".jpg")] if raw.endswith(".jpg") else raw
    if not (stem.isascii() and stem.isdigit()):
        raise ValueError(raw)
    return flickr_key(stem), f"{stem}.jpg#"


def _explain(rec: Any, path: Path, lineno: int) -> None:
    """Slow path: name the record and the field that is wrong, and raise."""
    rid: object = f"line {lineno}"
    if isinstance(rec, dict) and type(rec.get("pairID")) is str:
        rid = rec["pairID"]
    require(rec, "pairID", str, path, rid)
    present = [f for f in IMAGE_FIELDS if rec.get(f) is not None]
    if not present:
        raise RecordError(path, rid, IMAGE_FIELDS[0], f"missing (nor {IMAGE_FIELDS[1]!r})")
    raw = require(rec, present[0], str, path, rid)
    try:
        _image_key(raw)
    except ValueError:
        raise RecordError(
            path,
            rid,
            present[0],
            f"expected a Flickr30k file name like 2248275918.jpg, got {raw!r}",
        ) from None
    for field in ("sentence1", "sentence2", "captionID"):
        require(rec, field, str, path, rid)
    prefix = _image_key(raw)[1]
    if not rec["captionID"].startswith(prefix):
        raise RecordError(
            path,
            rid,
            "captionID",
            f"{rec['captionID']!r:.60} is not a caption of the pair's image ({prefix}<n>)",
        )
    if not rec["pairID"].startswith(rec["captionID"]):
        raise RecordError(
            path,
            rid,
            "pairID",
            f"{rec['pairID']!r:.60} does not start with its captionID {rec['captionID']!r:.60}",
        )
    gold = require(rec, "gold_label", str, path, rid)
    if gold not in LABELS and gold != NO_GOLD:
        raise RecordError(
            path,
            rid,
            "gold_label",
            f"expected one of {', '.join(LABEL_NAMES)} or '{NO_GOLD}', got {gold!r:.60}",
        )
    raise RecordError(path, rid, "<record>", "malformed")
