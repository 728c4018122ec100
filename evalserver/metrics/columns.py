"""Ground-truth columns read through ``unify.reader``, with schema errors that say what exists.

The metric modules' ``groundtruth(uf, task, splits)`` builders read the unified file only
through ``unify.reader`` (never raw h5py), so the scorers and the training reader agree on
one contract; what is missing is a ``unify.errors.SchemaError`` naming the file, task,
split and column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unify.errors import SchemaError
from unify.reader import RaggedColumn, SplitView, UnifiedFile

__all__ = ["column", "eval_splits", "ragged", "require_schema", "split_view"]


def split_view(uf: UnifiedFile, task: str, split: str) -> SplitView:
    """``/tasks/<task>/<split>``; a ``SchemaError`` listing what the file holds otherwise.

    The split's image rows and ragged offsets are checked first (``SplitView.check``): a
    damaged split is refused even where the metric reads neither.
    """
    try:
        view = uf.split(task, split)
    except KeyError as exc:
        raise SchemaError(f"{uf.path}: {exc.args[0]}") from None
    return view.check()


def eval_splits(uf: UnifiedFile, task: str) -> tuple[str, ...]:
    """Every split of ``task`` whose role is ``eval``, in file order."""
    if task not in uf.tasks:
        raise SchemaError(f"{uf.path}: task {task!r} is not in the file (it holds {uf.tasks})")
    return tuple(s for s in uf.splits(task) if uf.split(task, s).role == "eval")


def column(view: SplitView, name: str) -> np.ndarray:
    """A plain column of a split (strings as ``str`` objects)."""
    if name not in view.group or view.is_ragged(name):
        raise SchemaError(
            f"{view.file.path}: {view.task}/{view.name} has no column {name!r} "
            f"(it has {sorted(view.group)})"
        )
    return view.column(name)


def ragged(view: SplitView, name: str) -> RaggedColumn:
    """A ragged column of a split, its offsets checked against its values."""
    if name not in view.group or not view.is_ragged(name):
        raise SchemaError(f"{view.file.path}: {view.task}/{view.name} has no ragged field {name!r}")
    col = view.ragged(name)
    offsets = np.asarray(col.offsets, dtype=np.int64)
    sizes = {len(v) for v in col.values.values()}
    if len(offsets) != view.num_examples + 1 or offsets[0] != 0 or sizes != {int(offsets[-1])}:
        raise SchemaError(f"{view.file.path}: {view.task}/{view.name}/{name}: bad offsets")
    return RaggedColumn(offsets, col.values)


def require_schema(uf: UnifiedFile, minimum: tuple[int, int], why: str) -> None:
    """Refuse a file older than ``minimum`` (MAJOR, MINOR), saying why and what to do."""
    try:
        have: Any = tuple(int(p) for p in uf.schema_version.split(".")[:2])
    except ValueError:
        have = None
    if have is None or have < minimum:
        need = ".".join(map(str, minimum))
        raise SchemaError(
            f"{uf.path}: schema {uf.schema_version} is older than {need}, which {why}; "
            "rebuild the file with this vl12 (unify build) to score it"
        )
