"""`unify verify`: everything ``unify.structure`` checks, on every dataset, and more.

Beyond what a reader checks on open and on load: value ranges that are cheap per column
(finite floats in task columns, labels inside their vocabulary or label set, unique ids per
split, identity groups, feature-set lookups) and every dataset's checksum
(``unify.checksums``), which is what notices a flipped byte in data that still parses.
Nothing raises on a damaged file: every problem is listed, one line each.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unify import checksums
from unify.schema import FEATURES, IMAGES, OFFSETS, TASKS, VOCAB
from unify.structure import (
    IMAGE_SPLIT_ARRAYS,
    READ_ERRORS,
    Problem,
    detail,
    feature_problems,
    file_problems,
    image_problems,
    key_problems,
    offsets_problems,
    schema_tuple,
    task_problems,
)


# --------------------------------------------------------------------------------- verify
@dataclass
class Report:
    """What `unify verify` found."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    datasets: int = 0
    checksums: str = "absent"  # "match", "absent" (built before checksums), "damaged"
    schema_version: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_record(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "ok": self.ok,
            "schema_version": self.schema_version,
            "datasets": self.datasets,
            "checksums": self.checksums,
            "problems": [{"path": p.path, "problem": p.what} for p in self.problems],
        }


def verify_file(path: Path | str) -> Report:
    """Every check of this module on every dataset, and every checksum; never raises on a
    damaged file (each problem is listed instead)."""
    report = Report(str(path))
    try:
        h5 = h5py.File(path, "r")
    except READ_ERRORS as exc:
        report.problems.append(Problem("/", f"cannot open as HDF5 ({detail(exc)})"))
        return report
    with h5:
        _verify(h5, report)
    report.problems = list(dict.fromkeys(report.problems))  # a read that failed twice
    return report


def _verify(h5: h5py.File, report: Report) -> None:
    problems = report.problems
    problems += file_problems(h5)
    with contextlib.suppress(*READ_ERRORS):
        report.schema_version = str(h5.attrs.get("schema_version", ""))
    tasks = _group_members(h5, TASKS)
    for task in tasks:
        problems += task_problems(h5, task)
    keys = _attempt(f"/{IMAGES}/key", _read_keys, h5)
    n_images = len(keys) if isinstance(keys, np.ndarray) else None
    if isinstance(keys, list):  # unreadable
        problems += keys
    if n_images is not None:
        problems += key_problems(f"/{IMAGES}/key", keys)
        problems += _attempt(f"/{IMAGES}/group", _group_problems, h5, n_images)
    vocab_sizes = {}
    for name in _group_members(h5, VOCAB):
        with contextlib.suppress(*READ_ERRORS):
            vocab_sizes[name] = h5[VOCAB][name].shape[0]
    for task in tasks:
        for split in _group_members(h5, f"{TASKS}/{task}"):
            path = f"/{TASKS}/{task}/{split}"
            problems += _attempt(path, _split_values, h5, task, split, n_images, vocab_sizes)
    for name in _group_members(h5, FEATURES):
        path = f"/{FEATURES}/{name}"
        problems += _attempt(path, _feature_values, h5[path], n_images)
    _verify_checksums(h5, report)


def _attempt(path: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; a read that fails is a problem at ``path`` (returned as a list)."""
    try:
        return fn(*args)
    except READ_ERRORS as exc:
        return [Problem(path, f"cannot be read ({detail(exc)})")]


def _group_members(h5: h5py.File, path: str) -> list[str]:
    """Members of a group that structure checks already found (or nothing if unreadable)."""
    try:
        return list(h5[path]) if path in h5 and isinstance(h5[path], h5py.Group) else []
    except READ_ERRORS:
        return []


def _read_keys(h5: h5py.File) -> Any:
    ds = h5[IMAGES]["key"]
    if h5py.check_string_dtype(ds.dtype) is None or ds.ndim != 1:
        return None  # reported by file_problems
    return ds.asstr()[()]


def _split_values(
    h5: h5py.File, task: str, split: str, n_images: int | None, vocab_sizes: dict[str, int]
) -> list[Problem]:
    """Image rows, offsets, finite floats, unique ids and labels of one split."""
    tg = h5[TASKS][task]
    group = tg[split]
    if not isinstance(group, h5py.Group):
        return []
    task_group = str(tg.attrs.get("task_group", ""))
    classes = _classes(tg, task_group, vocab_sizes)
    arrays = set(json.loads(group.attrs.get("split_arrays", "[]")))
    problems: list[Problem] = []
    for name in group:
        problems += _attempt(
            f"{group.name}/{name}",
            _column_values,
            group,
            name,
            arrays,
            n_images,
            task_group,
            classes,
        )
    return problems


def _column_values(
    group: h5py.Group,
    name: str,
    arrays: set[str],
    n_images: int | None,
    task_group: str,
    classes: int | None,
) -> list[Problem]:
    obj = group[name]
    if isinstance(obj, h5py.Group):
        return _ragged_values(obj, name, task_group, classes)
    if name == "image" or (name in arrays and name in IMAGE_SPLIT_ARRAYS):
        if n_images is not None and obj.dtype.kind in "iu":
            return image_problems(obj.name, obj[()], n_images)
        return []
    problems = _unique(obj) if name == "id" and obj.ndim == 1 else []
    problems += _finite(obj)
    if name == "label":
        problems += _labels(obj, -1 if task_group == "vqa" else 0, classes)
    return problems


def _classes(tg: h5py.Group, task_group: str, vocab_sizes: dict[str, int]) -> int | None:
    """How many labels a task has: its vocabulary's size, or its label set's length."""
    label_set = tg.attrs.get("label_set")
    if label_set is None:
        return None
    if task_group == "vqa":
        return vocab_sizes.get(str(label_set))
    if task_group == "verification":
        with contextlib.suppress(ValueError, TypeError):
            return len(json.loads(label_set))
    return None


def _ragged_values(
    group: h5py.Group, name: str, task_group: str, classes: int | None
) -> list[Problem]:
    offsets = group[OFFSETS]
    values = [group[k] for k in group if k != OFFSETS]
    if offsets.dtype.kind not in "iu" or offsets.ndim != 1 or not values or not values[0].ndim:
        return []  # reported by task_problems
    problems = offsets_problems(offsets.name, offsets[()], values[0].shape[0])
    for ds in values:
        problems += _finite(ds)
        if name == "targets" and ds.name.endswith("/labels") and task_group == "vqa":
            problems += _labels(ds, 0, classes)
    return problems


def _finite(ds: h5py.Dataset) -> list[Problem]:
    """Task columns of floats hold finite numbers (boxes, scores): NaN or inf is damage."""
    if ds.dtype.kind != "f" or not ds.size:
        return []
    for a in range(0, ds.shape[0], checksums.BLOCK):
        block = ds[a : a + checksums.BLOCK]
        bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if bad.any():
            i = a + int(np.flatnonzero(bad)[0])
            return [Problem(ds.name, f"row {i} holds a number that is not finite")]
    return []


def _labels(ds: h5py.Dataset, low: int, classes: int | None) -> list[Problem]:
    if classes is None or ds.dtype.kind not in "iu" or not ds.size:
        return []
    values = ds[()]
    bad = np.flatnonzero((values < low) | (values >= classes))
    if not len(bad):
        return []
    return [
        Problem(
            ds.name,
            f"{len(bad)} label(s) outside {low}..{classes - 1}, e.g. row {int(bad[0])}: "
            f"{int(values[bad[0]])}",
        )
    ]


def _unique(ds: h5py.Dataset) -> list[Problem]:
    values = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) is not None else ds[()]
    uniq, counts = np.unique(values, return_counts=True)
    dup = uniq[counts > 1]
    if not len(dup):
        return []
    first = dup[0].item() if isinstance(dup[0], np.generic) else dup[0]
    return [Problem(ds.name, f"{len(dup)} id(s) stored more than once, e.g. {first!r}")]


def _group_problems(h5: h5py.File, n_images: int) -> list[Problem]:
    """Identity groups: each id is the smallest row of its group, so group[g] == g <= row."""
    ds = h5[IMAGES]["group"]
    if ds.shape != (n_images,) or ds.dtype.kind not in "iu":
        return []  # reported by file_problems
    group = ds[()].astype(np.int64)
    rows = np.arange(len(group))
    ok = (group >= 0) & (group <= rows)
    ok[ok] &= group[group[ok]] == group[ok]
    if ok.all():
        return []
    i = int(np.flatnonzero(~ok)[0])
    return [Problem(ds.name, f"row {i} names group {int(group[i])}, which is not a group id")]


def _feature_values(group: h5py.Group, n_images: int | None) -> list[Problem]:
    return feature_problems(
        group.name,
        group["image"][()],
        group["offsets"][()],
        group["row"][()],
        group["boxes"].shape[0],
        n_images,
    )


def _verify_checksums(h5: h5py.File, report: Report) -> None:
    """Every dataset's content against its recorded digest; deleted ones from the list."""
    problems = report.problems
    names: list[str] = []
    try:
        h5.id.links.visit(lambda name: names.append(name.decode("utf-8", "replace")))
    except READ_ERRORS as exc:
        problems.append(Problem("/", f"cannot walk the whole file ({detail(exc)})"))
    present: list[tuple[str, h5py.Dataset]] = []
    for name in names:
        try:
            obj = h5[name]
        except READ_ERRORS as exc:
            problems.append(Problem("/" + name, f"cannot be read ({detail(exc)})"))
            continue
        if isinstance(obj, h5py.Dataset):
            present.append(("/" + name, obj))
    report.datasets = len(present)
    try:
        record = json.loads(h5.attrs[checksums.ROOT_ATTR])
        listed = set(record["datasets"])
    except (*READ_ERRORS, json.JSONDecodeError):
        record = listed = None
    if listed is None:
        version = schema_tuple(report.schema_version)
        # file_problems names a missing list when the schema version requires one.
        report.checksums = "absent" if version is not None and version < (1, 2) else "damaged"
        return
    before = len(problems)
    for path, ds in present:
        try:
            want = ds.attrs.get(checksums.ATTR)
        except READ_ERRORS as exc:
            problems.append(Problem(path, f"checksum attribute cannot be read ({detail(exc)})"))
            continue
        if want is None:
            problems.append(Problem(path, "no checksum recorded (added after the build?)"))
            continue
        try:
            got = checksums.digest_dataset(ds)
        except READ_ERRORS as exc:
            problems.append(Problem(path, f"cannot be read ({detail(exc)})"))
            continue
        if got != want:
            problems.append(
                Problem(
                    path,
                    "content differs from its checksum: changed since it was written "
                    "(flipped bytes, or an edit)",
                )
            )
    # A listed dataset that is missing was named by file_problems.
    gone = listed - {p for p, _ in present}
    report.checksums = "match" if len(problems) == before and not gone else "damaged"
