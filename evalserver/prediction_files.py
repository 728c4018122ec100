"""How a prediction file of a bundle is named: ``TASK.PHASE.EXT`` (what ``baseline predict``
writes, ``.gz`` allowed after it) or ``TASK.EXT`` (the task's default phase).

One definition for the writer (``baseline predict``) and the readers (``evalserver submit
--dir``, the upload page's zip bundle), so a folder written by one is read by the others.
Light on purpose: no server imports, ``evalserver submit`` stays quick.
"""

from __future__ import annotations

from pathlib import PurePath

from unify import tasks

__all__ = ["bundle_name", "task_phase_of"]

GZIP_SUFFIX = ".gz"


def bundle_name(task: str, phase: str, ext: str) -> str:
    """The file name of ``task``'s predictions for ``phase`` in format ``ext``."""
    return f"{task}.{phase}.{ext}"


def task_phase_of(name: str) -> tuple[str, str | None]:
    """``(task, phase)`` of a bundle file's name (phase None: the name gives none, the
    task's default phase applies). ValueError naming the file when the name is not
    ``TASK[.PHASE].EXT[.gz]`` with a known task, or names a phase the task lacks."""
    base = PurePath(name).name
    stem = base.removesuffix(GZIP_SUFFIX)
    expected = (
        f"{name}: not named TASK.PHASE.EXT or TASK.EXT (as `baseline predict` names its "
        f"files) with a known task ({', '.join(tasks.task_names())})"
    )
    if "." not in stem:
        raise ValueError(expected)
    stem = stem.rsplit(".", 1)[0]
    task, _, phase = stem.partition(".")
    if task not in tasks.task_names():
        raise ValueError(expected)
    if not phase:
        return task, None
    spec = tasks.get(task)
    known = {*spec.phase_names, *spec.split_names}
    if phase not in known:
        raise ValueError(
            f"{name}: {task} has no phase or split {phase!r} (phases: "
            f"{', '.join(spec.phase_names)})"
        )
    return task, phase
