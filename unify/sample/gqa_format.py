"""Writer of GQA question files: one JSON object keyed by question id strings, streamed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

import orjson

from unify.sample.jsonfile import atomic_binary


class GqaQuestion(TypedDict, total=False):
    id: str
    imageId: str
    question: str
    answer: str
    fullAnswer: str
    isBalanced: bool
    structural: str
    semantic: str
    detailed: str
    group_global: str | None
    group_local: str | None
    entailed: list[str]
    equivalent: list[str]


def gqa_record(q: GqaQuestion) -> dict[str, Any]:
    """The release's record layout (semantic program and annotations kept minimal)."""
    rec: dict[str, Any] = {
        "semantic": [],
        "entailed": q.get("entailed", []),
        "equivalent": q.get("equivalent", [q["id"]]),
        "question": q["question"],
        "imageId": q["imageId"],
        "isBalanced": q.get("isBalanced", True),
    }
    if "answer" in q:
        rec["groups"] = {"global": q.get("group_global"), "local": q.get("group_local")}
        rec["answer"] = q["answer"]
        rec["semanticStr"] = ""
        rec["annotations"] = {"answer": {}, "question": {}, "fullAnswer": {}}
        rec["types"] = {
            "detailed": q["detailed"],
            "semantic": q["semantic"],
            "structural": q["structural"],
        }
        rec["fullAnswer"] = q.get("fullAnswer", q["answer"])
    return rec


def write_gqa(task_dir: Path, file_name: str, records: Iterable[GqaQuestion]) -> Path:
    """Write e.g. ``train_balanced_questions.json`` in the order given (streamed)."""
    path = task_dir / file_name
    with atomic_binary(path) as f:
        f.write(b"{")
        for i, q in enumerate(records):
            f.write(
                (b", " if i else b"") + orjson.dumps(q["id"]) + b": " + orjson.dumps(gqa_record(q))
            )
        f.write(b"}")
    return path
