"""Writer of the VQA v2 release files (questions + annotations per subset)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from unify.sample.jsonfile import dump_json

INFO = {
    "description": "This is v2.0 of the VQA dataset.",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "VQA Team",
    "date_created": "2017-04-26 17:00:44",
}
LICENSE = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}


class VqaQuestion(TypedDict, total=False):
    """A plain record; ``answers`` etc. only for subsets with annotations."""

    question_id: int
    image_id: int
    question: str
    question_type: str
    answer_type: str
    multiple_choice_answer: str
    answers: list[str]


def write_vqa2(task_dir: Path, subset: str, records: Sequence[VqaQuestion]) -> list[Path]:
    """Write ``v2_OpenEnded_mscoco_<subset>_questions.json`` and, if records carry answers,
    ``v2_mscoco_<subset>_annotations.json``."""
    questions: dict[str, Any] = {
        "info": INFO,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": LICENSE,
        "data_subtype": subset,
        "questions": [
            {"image_id": r["image_id"], "question": r["question"], "question_id": r["question_id"]}
            for r in records
        ],
    }
    paths = [dump_json(task_dir / f"v2_OpenEnded_mscoco_{subset}_questions.json", questions)]
    if records and "answers" in records[0]:
        annotations = {
            "info": INFO,
            "license": LICENSE,
            "data_subtype": subset,
            "annotations": [
                {
                    "question_type": r["question_type"],
                    "multiple_choice_answer": r["multiple_choice_answer"],
                    "answers": [
                        {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                        for j, a in enumerate(r["answers"])
                    ],
                    "image_id": r["image_id"],
                    "answer_type": r["answer_type"],
                    "question_id": r["question_id"],
                }
                for r in records
            ],
        }
        paths.append(dump_json(task_dir / f"v2_mscoco_{subset}_annotations.json", annotations))
    return paths
