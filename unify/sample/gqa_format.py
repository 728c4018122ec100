"""Writers of GQA question and choices files: one JSON object keyed by question id strings,
streamed; and GQA's sample generator (``write_sample``, named by its TaskSpec)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import orjson

from unify.converters.gqa import SUBMISSION
from unify.sample import language as lang
from unify.sample.jsonfile import atomic_binary
from unify.sample.scenes import CATEGORY_NAMES, COLOURS
from unify.sample.world import World, count, organiser_dir
from unify.tasks import TaskSpec


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


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class GqaSample:
    """GQA's numbers in the sample world. Its val and testdev images are the world's
    (``World.gqa_val``, ``World.gqa_testdev``: they decide its overlap with VG-QA and
    Visual7W); its non-VG images are its own."""

    per_image: float  # questions per image
    nonvg_images: int  # GQA images that are not VG photos (train only)


SAMPLE_SCALES = {
    "tiny": GqaSample(per_image=10, nonvg_images=20),
    "small": GqaSample(per_image=8, nonvg_images=200),
    "full": GqaSample(per_image=11.7, nonvg_images=5000),
}


def _nonvg_images(w: World, s: GqaSample) -> list[str]:
    """GQA's images that are not Visual Genome photos (non-digit ids, universe ``gqa``)."""
    rng0 = w.rng("gqa-pools")
    return [f"n{v}" for v in rng0.sample(range(1, 9_999_999), s.nonvg_images)]


def feature_images(w: World) -> dict[str, list[tuple[str, str]]]:
    """The images of the ``gqa`` universe for its feature TSV: (image_id, scene uid)."""
    s = w.sized(SAMPLE_SCALES, "gqa")
    return {"gqa": [(image, f"gqa{image}") for image in _nonvg_images(w, s)]}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """Balanced train, val and testdev questions with their programs, the val and testdev
    choices files, and the submission questions on the testdev images: without answers
    in ``submission_all_questions.json``, with them in the organisers' file of the same
    name under ``<out>/organiser/gqa/``."""
    s = w.sized(SAMPLE_SCALES, spec.name)
    nonvg = _nonvg_images(w, s)
    val = [str(v) for v in w.gqa_val]
    dev = [str(v) for v in w.gqa_testdev]
    train = [str(v) for v in w.vg_train + list(w.vg_coco) + list(w.vg_flickr)] + nonvg

    def records(images: list[str], prefix: int, stream: str = "gqa") -> Iterator[GqaQuestion]:
        for j, image in enumerate(images):
            rng = w.rng(stream, image)
            uid = w.vg_uid(int(image)) if image.isdigit() else f"gqa{image}"
            scene = w.scene(uid)
            for k in range(count(rng, s.per_image)):
                q = lang.gqa_question(scene, rng)
                # Digit strings of different lengths, unique across the three files.
                qid = f"{j * 100 + k}{prefix}"
                yield {
                    "id": qid,
                    "imageId": image,
                    "question": q["question"],
                    "answer": q["answer"],
                    "fullAnswer": q["fullAnswer"],
                    "structural": q["structural"],
                    "semantic": q["semantic"],
                    "detailed": q["detailed"],
                    "group_global": q["group_global"],
                    "group_local": f"{k:02d}-{image}",
                    "entailed": [],
                    "semantic_program": _sample_program(q),
                }

    def choices(images: list[str], prefix: int) -> Iterator[tuple[str, GqaChoice]]:
        # The same (seeded) questions again: the choices file covers every question.
        for q in records(images, prefix):
            yield q["id"], _sample_choice(q["detailed"], q["answer"])

    return [
        write_gqa(task_dir, "train_balanced_questions.json", records(train, 1)),
        write_gqa(task_dir, "val_balanced_questions.json", records(val, 2)),
        write_gqa(task_dir, "testdev_balanced_questions.json", records(dev, 3)),
        write_gqa_choices(task_dir, "val_choices.json", choices(val, 2)),
        write_gqa_choices(task_dir, "testdev_choices.json", choices(dev, 3)),
        write_gqa(task_dir, SUBMISSION, map(_unanswered, records(dev, 4, "gqa-submission"))),
        write_gqa(organiser_dir(task_dir), SUBMISSION, records(dev, 4, "gqa-submission")),
    ]


def _unanswered(q: GqaQuestion) -> GqaQuestion:
    """A question as the release gives one whose answer it withholds (no program either:
    it names what the answer is about)."""
    return {"id": q["id"], "imageId": q["imageId"], "question": q["question"]}


def _op(operation: str, argument: str, *dependencies: int) -> GqaOperation:
    return {"operation": operation, "argument": argument, "dependencies": list(dependencies)}


def _sample_program(q: dict[str, Any]) -> list[GqaOperation]:
    """The semantic program of a generated question, by its detailed type (1-3 steps as
    the official script counts them: the exist / query-name step does not count)."""
    text = q["question"]
    if q["detailed"] == "queryAttr":  # What color is the <thing>?
        thing = text.removeprefix("What color is the ").removesuffix("?")
        return [_op("select", thing), _op("query", "color", 0)]
    if q["detailed"] == "existC":  # Is there a <thing> in the image?
        thing = text.removeprefix("Is there a ").removesuffix(" in the image?")
        return [_op("select", thing), _op("exist", "?", 0)]
    # What is the <colour> object on the <side>?
    colour, _, side = text.removeprefix("What is the ").removesuffix("?").partition(" object on ")
    side = side.removeprefix("the ")
    return [
        _op("select", "object"),
        _op("filter color", colour, 0),
        _op("filter hposition", side, 1),
        _op("query", "name", 2),
    ]


def _sample_choice(detailed: str, answer: str) -> GqaChoice:
    """Valid answers: every answer of the question's kind; plausible: the gold answer and
    its neighbours in that list (a fixed rule, so the file needs no random draws)."""
    kinds = {"queryAttr": COLOURS, "existC": ("no", "yes")}
    valid = sorted(kinds.get(detailed, CATEGORY_NAMES))
    at = valid.index(answer) if answer in valid else 0
    return {"valid": valid, "plausible": valid[max(0, at - 1) : at + 2]}
