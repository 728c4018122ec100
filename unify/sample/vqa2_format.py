"""Writer of the VQA v2 release files (questions + annotations per subset), streamed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

import orjson

from unify.sample.jsonfile import atomic_binary

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


def _header(fields: dict[str, Any], array: str) -> bytes:
    body = b", ".join(orjson.dumps(k) + b": " + orjson.dumps(v) for k, v in fields.items())
    return b"{" + body + b", " + orjson.dumps(array) + b": ["


def write_vqa2(
    task_dir: Path, subset: str, records: Iterable[VqaQuestion], answered: bool | None = None
) -> list[Path]:
    """Write ``v2_OpenEnded_mscoco_<subset>_questions.json`` and, for answered subsets,
    ``v2_mscoco_<subset>_annotations.json`` in one pass over ``records`` (a generator is
    fine: nothing is held in memory). ``answered`` defaults to "the first record has
    answers"."""
    q_path = task_dir / f"v2_OpenEnded_mscoco_{subset}_questions.json"
    a_path = task_dir / f"v2_mscoco_{subset}_annotations.json"
    it = iter(records)
    first = next(it, None)
    if answered is None:
        answered = first is not None and "answers" in first
    with contextlib.ExitStack() as stack:
        qf = stack.enter_context(atomic_binary(q_path))
        af = stack.enter_context(atomic_binary(a_path)) if answered else None
        qf.write(
            _header(
                {
                    "info": INFO,
                    "task_type": "Open-Ended",
                    "data_type": "mscoco",
                    "license": LICENSE,
                    "data_subtype": subset,
                },
                "questions",
            )
        )
        if af is not None:
            af.write(
                _header({"info": INFO, "license": LICENSE, "data_subtype": subset}, "annotations")
            )
        sep = b""
        for r in _chain(first, it):
            qf.write(
                sep
                + orjson.dumps(
                    {
                        "image_id": r["image_id"],
                        "question": r["question"],
                        "question_id": r["question_id"],
                    }
                )
            )
            if af is not None:
                af.write(
                    sep
                    + orjson.dumps(
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
                    )
                )
            sep = b", "
        qf.write(b"]}")
        if af is not None:
            af.write(b"]}")
    return [q_path, a_path] if answered else [q_path]


def _chain(first: VqaQuestion | None, rest: Any) -> Any:
    if first is not None:
        yield first
    yield from rest
