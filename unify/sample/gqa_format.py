"""Writer of GQA question files: one JSON object keyed by question id strings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from unify.sample.jsonfile import dump_json


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


def write_gqa(task_dir: Path, file_name: str, records: Sequence[GqaQuestion]) -> Path:
    """Write e.g. ``train_balanced_questions.json`` in release order."""
    return dump_json(task_dir / file_name, {q["id"]: gqa_record(q) for q in records})
