"""Ground truth of a (task, phase), read from a unified file: a thin dispatcher over metrics.

    gt = load_groundtruth("vl12.h5", "refcoco")            # the task's default phase ("all")
    gt = load_groundtruth("vl12.h5", "vqa2", "minval")     # a phase, or a split's name
    gt.task, gt.phase, gt.splits, gt.fingerprint, gt.data  # data: the metric's object

The task's ``TaskSpec`` (``unify.tasks``) names its metric and its phases; the metric's
``groundtruth(uf, task, splits)`` (one per metric module, in ``GROUNDTRUTH``) reads the
phase's splits through ``unify.reader``. Nothing here lists tasks: a new task that reuses a
metric needs no line in this module.

A ``GroundTruth`` keeps what it was read from (task, phase and its splits, the file and its
benchmark fingerprint), so that every message and every ``Result`` can say what a
submission was scored against; the metric's own attributes are reachable on it directly
(``gt.question_ids``) as well as on ``gt.data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from evalserver.metrics import gqa, guesswhat, nlvr2, pointing, refexp, retrieval, snli_ve, vqa
from unify import tasks
from unify.errors import DataError, SchemaError
from unify.reader import UnifiedFile
from unify.tasks import TaskSpec

__all__ = [
    "GROUNDTRUTH",
    "GroundTruth",
    "describe_fingerprint",
    "file_fingerprint",
    "load_groundtruth",
]

Builder = Callable[[UnifiedFile, str, tuple[str, ...]], Any]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The ground truth of one (task, phase) and what it was read from."""

    task: str
    phase: str
    splits: tuple[str, ...]
    metric: str
    data: Any  # the metric's ground-truth object (VqaGroundTruth, ...)
    path: str | None = None  # the unified file
    fingerprint: str | None = None  # its benchmark fingerprint; None for older builds

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the wrapper lacks: the metric object's attributes.
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def describe(self) -> str:
        """``vqa2, phase minval (split minval), FILE (fingerprint 1a2b3c4d5e6f)``."""
        plural = "s" if len(self.splits) > 1 else ""
        where = f"{self.task}, phase {self.phase} (split{plural} {', '.join(self.splits)})"
        if self.path is None:
            return where
        return f"{where}, {self.path} ({describe_fingerprint(self.fingerprint)})"


def file_fingerprint(uf: UnifiedFile) -> str | None:
    """The benchmark's fingerprint (a sha256 hex string); None for older files.

    That is the private build's (``UnifiedFile.benchmark_fingerprint``): a public copy
    names the build it was published from, so that predictions checked against it are
    recognised by a server scoring against the private build.
    """
    return uf.benchmark_fingerprint or None


def describe_fingerprint(fingerprint: str | None) -> str:
    if fingerprint is None:
        return "no fingerprint: built before fingerprints"
    return f"fingerprint {fingerprint[:12]}"


# --------------------------------------------------------------------------- dispatch

#: metric name -> its ground-truth builder ``(uf, task, splits) -> ground-truth object``.
GROUNDTRUTH: Mapping[str, Builder] = MappingProxyType(
    {
        "vqa": vqa.groundtruth,
        "gqa": gqa.groundtruth,
        "vgqa": vqa.vgqa_groundtruth,
        "retrieval": retrieval.groundtruth,
        "refexp": refexp.groundtruth,
        "pointing": pointing.groundtruth,
        "guesswhat": guesswhat.groundtruth,
        "nlvr2": nlvr2.groundtruth,
        "snli_ve": snli_ve.groundtruth,
    }
)


def load_groundtruth(
    source: str | os.PathLike[str] | UnifiedFile, task: str, phase: str | None = None
) -> GroundTruth:
    """The ground truth of ``task``'s ``phase`` (a phase name or a split name; default the
    TaskSpec's ``default_phase``), every split of a multi-split phase read as one.

    ``source`` is a path (opened and closed here) or an open ``UnifiedFile``. Errors are
    ``unify.errors.DataError`` (an unknown task or phase) or ``SchemaError`` (the file does
    not hold what the phase needs), each naming the file, task and split.
    """
    spec = tasks.get(task)
    chosen = spec.phase(spec.default_phase if phase is None else phase)
    builder = GROUNDTRUTH.get(spec.metric)
    if builder is None:
        raise SchemaError(
            f"task {task!r} declares metric {spec.metric!r}, which has no ground-truth "
            f"reader (metrics: {', '.join(GROUNDTRUTH)})"
        )
    if isinstance(source, UnifiedFile):
        return _load(source, spec, chosen.name, chosen.splits, builder)
    with UnifiedFile(Path(source), checksums=True) as uf:
        return _load(uf, spec, chosen.name, chosen.splits, builder)


def _require_answers(uf: UnifiedFile, task: str, splits: tuple[str, ...]) -> None:
    """A hidden split can be scored only where its answers are: in a private build made
    with the organisers' files (``unify.hidden``)."""
    for split in splits:
        if split not in uf.splits(task):
            continue  # the metric names what is missing
        view = uf.split(task, split)
        if view.answers_present:
            continue
        if uf.is_public_copy:
            why = (
                "it is a public copy (unify publish) of the build with fingerprint "
                f"{uf.benchmark_fingerprint[:12]}: score against that private build"
            )
        else:
            why = (
                "it was built without organiser files: build with "
                "`unify build --organiser DIR`"
            )
        raise DataError(f"{uf.path}: the answers of {task}/{split} are not in this file ({why})")


def _load(
    uf: UnifiedFile, spec: TaskSpec, phase: str, splits: tuple[str, ...], builder: Builder
) -> GroundTruth:
    if spec.name not in uf.tasks:
        raise SchemaError(
            f"{uf.path}: task {spec.name!r} is not in the file (it holds {', '.join(uf.tasks)})"
        )
    built = uf.task_attrs(spec.name).get("metric")
    if built is not None and built != spec.metric:
        raise SchemaError(
            f"{uf.path}: task {spec.name!r} was built for metric {built!r}, but this vl12 "
            f"scores it with {spec.metric!r}; rebuild the file"
        )
    _require_answers(uf, spec.name, splits)
    try:
        data = builder(uf, spec.name, splits)
    except (ValueError, IndexError) as exc:  # the metric refuses what the file holds
        why = " ".join(str(exc).split()).removeprefix(f"{uf.path}: ")
        raise SchemaError(f"{uf.path}: the ground truth is unusable: {why}") from None
    return GroundTruth(
        spec.name, phase, splits, spec.metric, data, str(uf.path), file_fingerprint(uf)
    )
