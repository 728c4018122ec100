"""Writers of GQA question and choices files: one JSON object keyed by question id strings,
streamed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

import orjson

from unify.sample.jsonfile import atomic_binary


class GqaOperation(TypedDict):
    """One step of a question's ``semantic`` program (the release also lists dependencies)."""

    operation: str
    argument: str
    dependencies: list[int]


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
    semantic_program: list[GqaOperation]  # the release's "semantic" list; default []


class GqaChoice(TypedDict):
    """A question's entry of ``{split}_choices.json``."""

    valid: list[str]
    plausible: list[str]


def gqa_record(q: GqaQuestion) -> dict[str, Any]:
    """The release's record layout (annotations kept minimal; the program only when given)."""
    program = q.get("semantic_program", [])
    rec: dict[str, Any] = {
        # The release's key order: operation, dependencies, argument.
        "semantic": [
            {
                "operation": op["operation"],
                "dependencies": op["dependencies"],
                "argument": op["argument"],
            }
            for op in program
        ],
        "entailed": q.get("entailed", []),
        "equivalent": q.get("equivalent", [q["id"]]),
        "question": q["question"],
        "imageId": q["imageId"],
        "isBalanced": q.get("isBalanced", True),
    }
    if "answer" in q:
        rec["groups"] = {"global": q.get("group_global"), "local": q.get("group_local")}
        rec["answer"] = q["answer"]
        rec["semanticStr"] = " ".join(f"{op['operation']}: {op['argument']} ->" for op in program)
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


def write_gqa_choices(
    task_dir: Path, file_name: str, choices: Iterable[tuple[str, GqaChoice]]
) -> Path:
    """Write e.g. ``testdev_choices.json``: ``{questionId: {"valid": [...], "plausible":
    [...]}}`` in the order given (streamed)."""
    path = task_dir / file_name
    with atomic_binary(path) as f:
        f.write(b"{")
        for i, (qid, entry) in enumerate(choices):
            record = {"valid": entry["valid"], "plausible": entry["plausible"]}
            f.write((b", " if i else b"") + orjson.dumps(qid) + b": " + orjson.dumps(record))
        f.write(b"}")
    return path
