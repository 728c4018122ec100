"""Writer of the VQA v2 release files (questions + annotations per subset), streamed, and
VQA v2's sample generator (``write_sample``, named by its TaskSpec)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import orjson

from unify.sample import language as lang
from unify.sample.jsonfile import atomic_binary
from unify.sample.world import World, count, organiser_dir
from unify.tasks import TaskSpec

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
    task_dir: Path,
    subset: str,
    records: Iterable[VqaQuestion],
    answered: bool | None = None,
    annotations_dir: Path | None = None,
) -> list[Path]:
    """Write ``v2_OpenEnded_mscoco_<subset>_questions.json`` and, for answered subsets,
    ``v2_mscoco_<subset>_annotations.json`` in one pass over ``records`` (a generator is
    fine: nothing is held in memory). ``answered`` defaults to "the first record has
    answers". ``annotations_dir`` puts the annotations elsewhere (the organisers' folder of
    a subset whose answers the release withholds)."""
    q_path = task_dir / f"v2_OpenEnded_mscoco_{subset}_questions.json"
    a_path = (annotations_dir or task_dir) / f"v2_mscoco_{subset}_annotations.json"
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


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class Vqa2Sample:
    """VQA v2's numbers in the sample world (its images are the world's COCO pools)."""

    per_image: float  # questions per train2014 / val2014 image
    test_per_image: float  # questions per test2015 image


SAMPLE_SCALES = {
    "tiny": Vqa2Sample(per_image=10, test_per_image=5),
    "small": Vqa2Sample(per_image=8, test_per_image=5),
    "full": Vqa2Sample(per_image=5.36, test_per_image=5.5),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """The four subsets: answered train2014 and val2014, test2015 and its test-dev2015
    quarter without answers, and the organisers' test2015 annotations (the answers of
    both, as in the release test-dev's questions are test2015 questions) in
    ``<out>/organiser/vqa2/``."""
    s = w.sized(SAMPLE_SCALES, spec.name)

    def records(
        images: list[int], per_image: float, answered: bool, organisers: bool = False
    ) -> Iterator[VqaQuestion]:
        for cid in images:
            rng = w.rng("vqa2", cid)
            # The organisers' annotator answers come from a stream of their own, so that
            # the public questions are the same whether the answers are written or not.
            answer_rng = w.rng("vqa2-organiser", cid) if organisers else rng
            scene = w.scene(w.coco_uid(cid))
            for k in range(count(rng, per_image)):
                q, a, atype, qtype = lang.vqa_question(scene, rng)
                rec: VqaQuestion = {"question_id": cid * 1000 + k, "image_id": cid, "question": q}
                if answered:
                    rec.update(
                        question_type=qtype,
                        answer_type=atype,
                        multiple_choice_answer=a,
                        answers=lang.annotator_answers(a, answer_rng, atype),
                    )
                yield rec

    d = task_dir
    files = write_vqa2(d, "train2014", records(w.coco_train, s.per_image, True), True)
    files += write_vqa2(d, "val2014", records(w.coco_val, s.per_image, True), True)
    test = records(w.coco_test, s.test_per_image, True, organisers=True)
    files += write_vqa2(d, "test2015", test, True, annotations_dir=organiser_dir(d))
    dev = [c for c in w.coco_test if c % 4 == 0] or w.coco_test[:1]
    files += write_vqa2(d, "test-dev2015", records(dev, s.test_per_image, False), False)
    return files
