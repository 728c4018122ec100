"""Valid inputs to corrupt, written by the project's own writers.

- Raw folders, from two sources: ``case`` (each task's converter-test case,
  tests/unify/converters/test_converter_cases.py: a handful of records, builds in
  milliseconds) and ``sample`` (the tiny generated world, ``unify.sample``: every file the
  sample writes, thousands of records). An optional release file that neither writes is
  made from a sibling of the same format (``DERIVED``), so that every file a converter
  declares can be fuzzed.
- Prediction files: the chance-level submission of each task (``chance_submission``,
  written by the scorer registry's writer) against a unified file, and the same
  predictions in the metric's other formats.
- Unified files: the tiny sample built with every converter (and, where given, its region
  features).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from unify.tasks import TaskSpec, all_tasks

CASE = "case"
SAMPLE = "sample"
SOURCES = (CASE, SAMPLE)

#: Optional release files written by no seed source, made from a sibling of the same
#: format: target name -> (source name, byte replacements, whether the target stands in for
#: the source). GQA's all-questions and submission files have the balanced files' format
#: (and overlap them, as in the release); COCO's instances files have the captions files'
#: image records (and are read only when the captions file is absent, so the case folder
#: drops the source); NLVR2's test2 is test1 under test2 identifiers. A derived file is
#: in the case folder only when it is the file being fuzzed.
DERIVED: Mapping[str, tuple[str, tuple[tuple[bytes, bytes], ...], bool]] = {
    "val_all_questions.json": ("val_balanced_questions.json", (), False),
    "testdev_all_questions.json": ("testdev_balanced_questions.json", (), False),
    "submission_all_questions.json": ("testdev_balanced_questions.json", (), False),
    "instances_train2014.json": ("captions_train2014.json", (), True),
    "instances_val2014.json": ("captions_val2014.json", (), True),
    "test2.json": ("test1.json", ((b'"test1-', b'"test2-'), (b"/test1-", b"/test2-")), False),
}


def converter_cases() -> dict[str, type]:
    """The converter-test case of each task, by task name."""
    from tests.unify.converter_case import ConverterCase
    from tests.unify.converters import test_converter_cases  # noqa: F401  (registers them)

    found: dict[str, type] = {}
    stack = list(ConverterCase.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        found[cls.TASK] = cls
    return found


def task_dir(root: Path, spec: TaskSpec) -> Path:
    """The task's folder under a raw root (its name or an alias that exists)."""
    return spec.make_converter().task_dir(root)


def derive_optional(root: Path, spec: TaskSpec) -> list[str]:
    """Write the DERIVED optional files the task declares and the folder lacks."""
    folder = task_dir(root, spec)
    made = []
    for rf in spec.make_converter().raw_files:
        target = folder / rf.name
        recipe = DERIVED.get(rf.name)
        if target.exists() or recipe is None or not (folder / recipe[0]).is_file():
            continue
        data = (folder / recipe[0]).read_bytes()
        for old, new in recipe[1]:
            data = data.replace(old, new)
        target.write_bytes(data)
        (folder / f"{rf.name}{DERIVED_MARK}").touch()
        made.append(rf.name)
    return made


#: Next to a derived file: says it was derived (so a case folder leaves it out).
DERIVED_MARK = ".derived"


def write_case_roots(out: Path) -> dict[str, Path]:
    """One raw root per task (``out/<task>/<task folder>``) from its converter case."""
    roots = {}
    cases = converter_cases()
    for name, spec in all_tasks().items():
        if name not in cases:
            continue
        root = out / name
        cases[name]().write_raw(root)
        derive_optional(root, spec)
        roots[name] = root
    return roots


def write_sample_root(out: Path) -> dict[str, Path]:
    """The tiny sample world (no features): one root for every task it writes."""
    from unify.sample.world import generate

    generate(out, scale="tiny", seed=0, features=False)
    roots = {}
    for name, spec in all_tasks().items():
        if task_dir(out, spec).is_dir():
            derive_optional(out, spec)
            roots[name] = out
    return roots


@dataclass(frozen=True)
class RawSeeds:
    """source -> task -> a raw root holding the task's folder."""

    roots: Mapping[str, Mapping[str, Path]]

    def folder(self, source: str, task: str) -> Path | None:
        root = self.roots.get(source, {}).get(task)
        return None if root is None else task_dir(root, all_tasks()[task])

    def sources_of(self, task: str, file: str) -> list[str]:
        """The sources whose folder of ``task`` holds ``file``, cheapest first."""
        out = []
        for source in SOURCES:
            folder = self.folder(source, task)
            if folder is not None and (folder / file).is_file():
                out.append(source)
        return out


def copy_task(seeds: RawSeeds, source: str, task: str, dest_root: Path, file: str) -> Path:
    """A writable copy of the task's seed folder under ``dest_root`` (the build's --raw),
    for fuzzing ``file``: derived files other than ``file`` are left out, and so is the
    file that ``file`` stands in for."""
    folder = seeds.folder(source, task)
    assert folder is not None
    derived = {p.name.removesuffix(DERIVED_MARK) for p in folder.glob(f"*{DERIVED_MARK}")}
    skip = (derived - {file}) | {p.name for p in folder.glob(f"*{DERIVED_MARK}")}
    if file in derived and DERIVED[file][2]:
        skip.add(DERIVED[file][0])
    dest = dest_root / folder.name
    dest.mkdir(parents=True)
    for path in folder.iterdir():
        if path.name not in skip and path.is_file():
            shutil.copyfile(path, dest / path.name)
    return dest


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class PredictionSeed:
    task: str
    phase: str
    format_name: str
    kind: str  # json, csv or npz
    data: bytes


def prediction_seeds(h5: Path) -> Iterator[PredictionSeed]:
    """Every task's chance submission in every format of its metric."""
    from evalserver.metrics import get_scorer, load_groundtruth
    from evalserver.metrics.chance import chance_submission

    for name, spec in all_tasks().items():
        scorer = get_scorer(name)
        gt = load_groundtruth(h5, name)
        primary = chance_submission(gt, seed=0)
        first = scorer.formats[0]
        for fmt in scorer.formats:
            data = primary if fmt is first else convert(primary, first.kind, fmt)
            yield PredictionSeed(name, spec.default_phase, fmt.name, fmt.kind, data)


def convert(data: bytes, kind: str, fmt: object) -> bytes:
    """The same predictions in another format of the metric (``fmt``: a PredictionFormat)."""
    from evalserver.metrics.predictions import write_ranked_lists

    target_kind, keys = fmt.kind, fmt.keys  # type: ignore[attr-defined]
    if kind == "csv" and target_kind == "json":
        rows = [line.split(",") for line in data.decode().splitlines() if line.strip()]
        return orjson.dumps([{keys[0]: r[0], keys[1]: r[1]} for r in rows])
    if kind == "npz" and target_kind == "json":
        with np.load(io.BytesIO(data)) as archive:
            scores, captions, images = (
                archive["scores"],
                archive["caption_ids"],
                archive["image_ids"],
            )
        order = np.argsort(-scores, axis=1, kind="stable")
        return write_ranked_lists(captions, [images[row].tolist() for row in order])
    raise NotImplementedError(f"no conversion from {kind} to {fmt}")
