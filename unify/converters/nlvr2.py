"""NLVR2 (Suhr et al. 2019): is a sentence true of a pair of web photos?

The release is JSON Lines, one file per split (``train.json``, ``dev.json``,
``test1.json``; ``test2.json`` was published later and is optional). An identifier is
``split-set-pair-sentence`` (e.g. ``dev-850-0-0``): its first field must name the file's
split, which is how a record of the wrong split is caught. The two photos are
``<identifier without its last field>-img0`` / ``-img1`` (the release's image file stems),
stored as the ``nlvr2:`` keys of an ``[N, 2]`` image column.

``sentence_key`` is the grouping of the official consistency metric (lil-lab/nlvr,
``nlvr2/eval/metrics.py``): the identifier split on ``-`` with field 2 (the pair) replaced
by the empty string and re-joined, so ``dev-850-0-0`` -> ``dev-850--0``. Every pair that
shares a sentence shares this key, and the string is exactly the official one, so scorers
can compare with the official script's groups.
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
from unify.rules import Unique
from unify.table import SplitTable, TaskTable

#: (split, file, required); the split is also the first field of every identifier.
FILES: tuple[tuple[str, str, bool], ...] = (
    ("train", "train.json", True),
    ("dev", "dev.json", True),
    ("test1", "test1.json", True),
    ("test2", "test2.json", False),
)
SPLIT_NAMES = tuple(split for split, _, _ in FILES)
#: The release's label strings, exactly (the official scorer lower-cases predictions only).
LABELS = {"False": 0, "True": 1}

RECORD_RULES = (
    "`identifier`: split-set-pair-sentence, its split the file's",
    Unique("identifier", "identifier"),
    "`label`: the string 'True' or 'False' (a JSON boolean is refused)",
)


def image_keys(identifier_stem: str) -> tuple[str, str]:
    """The pair's image keys from ``split-set-pair`` (the release names them -img0/-img1)."""
    return f"nlvr2:{identifier_stem}-img0", f"nlvr2:{identifier_stem}-img1"


def sentence_key(parts: list[str]) -> str:
    """The official consistency group: the pair field (index 2) blanked."""
    return "-".join((parts[0], parts[1], "", parts[3]))


class Nlvr2(Converter):
    version = "1.0.0"
    answer_columns = ("label",)
    homepage = "https://github.com/lil-lab/nlvr/tree/master/nlvr2"
    raw_files = tuple(
        RawFile(file, required, f"{split} examples (JSON Lines)") for split, file, required in FILES
    )
    field_rules = MappingProxyType({"examples": RECORD_RULES})

    def convert(self, ctx: BuildContext) -> TaskTable:
        splits: list[SplitTable] = []
        report: dict[str, Any] = {}
        for split, file, required in FILES:
            if not required and not self.has_file(ctx, file):
                report[f"{split}_file"] = "absent"
                continue
            table = self._read(ctx, split, file)
            ctx.images.add_many([key for pair in table.columns["image"] for key in pair])
            splits.append(table)
        report["counts"] = {s.name: s.num_examples for s in splits}
        report["true_labels"] = {s.name: int(s.columns["label"].sum()) for s in splits}
        attrs = self.task_attrs(label_set=sorted(LABELS, key=LABELS.__getitem__))
        return TaskTable(self.name, attrs, splits, report)

    def _records(self, ctx: BuildContext, file: str) -> Iterator[tuple[int, Any]]:
        """The file's (line, record) pairs, the first N in smoke mode.

        The rest of the file is still read so that its sha256 is recorded and a corrupt
        tail is reported even in smoke mode.
        """
        items = self.iter_jsonl(ctx, file)
        yield from ctx.limit(ctx.progress(items, desc=f"{self.name} {file}"))
        for _ in items:
            pass

    def _read(self, ctx: BuildContext, split: str, file: str) -> SplitTable:
        path = self.file(ctx.raw_root, file)
        ids: list[str] = []
        images: list[tuple[str, str]] = []
        sentences: list[str] = []
        labels: list[int] = []
        keys: list[str] = []
        for lineno, rec in self._records(ctx, file):
            try:
                identifier, sentence = rec["identifier"], rec["sentence"]
                label = LABELS[rec["label"]]
                parts = identifier.split("-")
                ok = (
                    type(sentence) is str
                    and len(parts) == 4
                    and parts[0] == split
                    and parts[1].isdigit()
                    and parts[2].isdigit()
                    and parts[3].isdigit()
                )
            except (KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                _explain(rec, path, lineno, split, file)
            ids.append(identifier)
            images.append(image_keys("-".join(parts[:3])))
            sentences.append(sentence)
            labels.append(label)
            keys.append(sentence_key(parts))
        # A present file must hold records, optional or not (optional = may be absent).
        rules.require_records(path, len(ids), "examples")
        rules.check(path, ids, {"identifier": ids}, RECORD_RULES)
        return SplitTable(
            split,
            self.split_role(split),
            {
                "id": ids,
                "image": images,
                "sentence": sentences,
                "label": np.asarray(labels, dtype=np.int8),
                "sentence_key": keys,
            },
        )


def _explain(rec: Any, path: Path, lineno: int, split: str, file: str) -> None:
    """Slow path: name the record and the field that is wrong, and raise."""
    rid: object = f"line {lineno}"
    if isinstance(rec, dict) and type(rec.get("identifier")) is str:
        rid = rec["identifier"]
    identifier = require(rec, "identifier", str, path, rid)
    parts = identifier.split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        raise RecordError(
            path,
            rid,
            "identifier",
            f"expected split-set-pair-sentence (e.g. {split}-850-0-1), got {identifier!r}",
        )
    if parts[0] not in SPLIT_NAMES:
        raise RecordError(
            path,
            rid,
            "identifier",
            f"unknown split {parts[0]!r} (known: {', '.join(SPLIT_NAMES)})",
        )
    if parts[0] != split:
        raise RecordError(
            path, rid, "identifier", f"split {parts[0]!r} in a record of {file} (split {split!r})"
        )
    require(rec, "sentence", str, path, rid)
    label = rec.get("label")
    if type(label) is not str or label not in LABELS:
        detail = (
            "missing" if "label" not in rec else f"expected 'True' or 'False', got {label!r:.60}"
        )
        raise RecordError(path, rid, "label", detail)
    raise RecordError(path, rid, "<record>", "malformed")
