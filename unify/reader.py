"""Read a unified file: tasks, splits, columns and examples as plain Python / numpy.

Nothing here imports torch (``unify.dataset`` and ``unify.batching`` wrap this for
DataLoaders), so scorers and the evaluation server can read ground truth without the
training stack.

Two ways to read a split, for two uses:

- **random access** (``SplitView.example(i)``): each column is loaded into memory once per
  process on first use (``unify.columns``), then an example is a few numpy lookups.
  A per-example HDF5 read would cost tens of microseconds per column (more for a
  compressed 64K-row chunk), and an example touches a dozen columns.
- **block iteration** (``iter(view)``, ``SplitView.iter_blocks``): contiguous blocks read
  with one HDF5 call per column, nothing kept after the block; memory stays flat.

Region features (``features=``) are read per image from HDF5 (they are far larger than the
columns) and attached under ``example["features"]``, never under a column's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from unify import checksums as sums
from unify.columns import Column, ColumnCache, DirectRows, Plain, Ragged, load_column
from unify.errors import DataError, SchemaError
from unify.hidden import ANSWERS_ATTR, HIDDEN_ATTR, PRESENT, PUBLISHED_FROM
from unify.schema import FEATURES, IMAGES, LINKS, OFFSETS, SCHEMA_MAJOR, TASKS, VOCAB
from unify.structure import (
    IMAGE_SPLIT_ARRAYS,
    READ_ERRORS,
    Problem,
    check,
    damaged,
    detail,
    feature_problems,
    file_problems,
    image_problems,
    key_problems,
    offsets_problems,
    reading,
    task_problems,
)
from unify.tasks import all_tasks

ITER_BLOCK = 4096

#: Keys the reader adds to an example; no column may be named like them.
ADDED_KEYS = ("task", "image_index", "features", "target")

#: ``features=`` of a split: no features, every set chosen by image universe, or named sets.
FeatureRequest = None | str | Sequence[str]
MissingFeatures = Literal["error", "none"]


def _decode(ds: h5py.Dataset, sel: Any = slice(None)) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[sel]
    return ds[sel]


@dataclass
class RaggedColumn:
    """Flat values with offsets; ``row(i)`` is example i's slice of every value array."""

    offsets: np.ndarray
    values: dict[str, np.ndarray]

    def row(self, i: int) -> dict[str, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return {name: vals[start:end] for name, vals in self.values.items()}

    def rows(self, i: int) -> Any:
        """Example i as a list (single ``values``) or a dict of arrays."""
        row = self.row(i)
        if list(row) == ["values"]:
            return list(row["values"])
        return row


@dataclass
class _Direct:
    """A column read from HDF5 at each example (``cache=False``): no memory, slow."""

    item: h5py.Dataset | h5py.Group
    offsets: np.ndarray | None = None
    where: str = ""  # "file: /hdf5/path", for the message when a read fails

    def value(self, i: int) -> Any:
        try:
            if self.offsets is None:
                return _plain(_decode(self.item, i))
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            row = {k: _decode(self.item[k], slice(start, end)) for k in self.item if k != OFFSETS}
        except READ_ERRORS as exc:
            raise SchemaError(
                f"{self.where}: cannot be read, the file is damaged ({detail(exc)})"
            ) from None
        if list(row) == ["values"]:
            values = row["values"]
            return values.tolist() if values.dtype == object else values
        return row


# ------------------------------------------------------------------------ region features
@dataclass
class FeatureSet:
    """One ``/features/<name>`` group: lookup arrays in memory, boxes and features on disk."""

    name: str
    universe: str
    dim: int
    row: np.ndarray  # int32 [len(/images)]: feature row of each image, -1 if none
    offsets: np.ndarray  # int64 [M + 1]
    boxes: DirectRows
    features: DirectRows
    where: str = ""  # "file: /features/<name>", for the message when a read fails

    def read(self, image_index: int) -> dict[str, np.ndarray] | None:
        """Boxes (x1, y1, x2, y2) and float16 features of one image; None if it has none."""
        return self.read_row(int(self.row[image_index]))

    def read_row(self, row: int) -> dict[str, np.ndarray] | None:
        if row < 0:
            return None
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        try:  # not a context manager: this runs per image, in microseconds
            return {
                "boxes": self.boxes.read(start, end),
                "features": self.features.read(start, end),
            }
        except READ_ERRORS as exc:
            raise SchemaError(
                f"{self.where}: cannot be read, the file is damaged ({detail(exc)})"
            ) from None

    def close(self) -> None:
        self.boxes.close()
        self.features.close()


def _import_hint(path: Path, universe: str) -> str:
    return (
        f"import one with: unify features import {path} <{universe}.tsv> "
        f"--name <name> --universe {universe}"
    )


@dataclass
class FeatureLookup:
    """For each /images row, the feature set (index into ``sets``) and its row there."""

    sets: list[FeatureSet]
    set_of: np.ndarray  # int8 [len(/images)], -1: no set
    row_of: np.ndarray  # int32 [len(/images)], -1: no features

    def read(self, image_index: int) -> dict[str, np.ndarray] | None:
        s = self.set_of[image_index]
        return None if s < 0 else self.sets[s].read_row(int(self.row_of[image_index]))


def resolve_features(
    unified: UnifiedFile,
    request: FeatureRequest,
    images: np.ndarray,
    where: str,
    missing: MissingFeatures = "error",
) -> FeatureLookup:
    """Choose, for every image universe that ``images`` (rows of /images) touch, one set.

    A set serves a universe when its ``universe`` attribute names it; when none does, a set
    that holds rows of that universe's images serves it (a GQA feature file, imported with
    ``--universe gqa``, also holds the Visual Genome photos GQA uses). Two candidate sets
    for one universe are ambiguous; no set at all, or images without a row in their set,
    are errors too (``missing="none"`` gives those images ``None`` instead): a split never
    silently loses features.
    """
    available = unified.feature_names()
    if isinstance(request, str) and request != "auto":
        names = [request]
    elif request == "auto":
        names = available
    else:
        names = list(request or [])
    for name in names:
        if name not in available:
            raise KeyError(
                f"no features {name!r} in {unified.path} "
                f"(features: {', '.join(available) or 'none'})"
            )
    sets = [unified.feature_set(n) for n in names]
    described = ", ".join(f"{s.name} ({s.universe})" for s in sets) or "none"
    ranges = unified.universe_ranges
    used = np.unique(np.asarray(images).reshape(-1))
    set_of = np.full(len(unified.image_keys), -1, dtype=np.int8)
    row_of = np.full(len(unified.image_keys), -1, dtype=np.int32)
    for universe, (lo, hi) in ranges.items():
        touched = used[(used >= lo) & (used < hi)]
        if not len(touched):
            continue
        chosen = [i for i, s in enumerate(sets) if s.universe == universe]
        if not chosen:
            chosen = [i for i, s in enumerate(sets) if (s.row[lo:hi] >= 0).any()]
        if len(chosen) > 1:
            raise DataError(
                f"{unified.path}: {where}: feature sets "
                f"{', '.join(sets[i].name for i in chosen)} all serve universe {universe!r}; "
                f"ambiguous: name the sets to use (features=[...]) instead of "
                f"{request!r}"
            )
        if not chosen:
            raise DataError(
                f"{unified.path}: {where}: {len(touched)} images of universe {universe!r} "
                f"(e.g. {unified.image_keys[touched[0]]}) but no feature set serves it "
                f"(sets: {described}); {_import_hint(unified.path, universe)}"
            )
        s = chosen[0]
        set_of[lo:hi] = s
        row_of[lo:hi] = sets[s].row[lo:hi]
        lacking = touched[row_of[touched] < 0]
        if len(lacking) and missing == "error":
            raise DataError(
                f"{unified.path}: {where}: {len(lacking)} of {len(touched)} images of "
                f"universe {universe!r} have no row in feature set {sets[s].name!r} "
                f"(e.g. {unified.image_keys[lacking[0]]}); import features for them, or "
                f"pass missing_features='none' to give those examples features=None"
            )
    return FeatureLookup(sets, set_of, row_of)


# ------------------------------------------------------------------------------ a split
class SplitView:
    """One split of one task.

    ``features``: ``None``, ``"auto"`` (one set per image universe, chosen by universe),
    a set name or a list of set names; region features go to ``example["features"]``.
    ``targets``: add the task's uniform target (``unify.targets``) as ``example["target"]``.
    ``select``: the columns examples carry (``id`` and ``image`` always); default all.
    ``cache``: keep columns in memory once read (fast random access); ``False`` reads HDF5
    at every example (no memory; about 0.4-4 ms an example on a full-scale build).
    """

    def __init__(
        self,
        unified: UnifiedFile,
        task: str,
        name: str,
        features: FeatureRequest = None,
        *,
        targets: bool = False,
        select: Sequence[str] | None = None,
        cache: bool | ColumnCache = True,
        missing_features: MissingFeatures = "error",
    ) -> None:
        self.file = unified
        self.task = task
        self.name = name
        self.features = features
        self.group: h5py.Group = unified.h5[TASKS][task][name]
        if isinstance(cache, ColumnCache):
            self._cache: ColumnCache | None = cache
        else:
            self._cache = ColumnCache() if cache else None
        self._direct: dict[str, _Direct] = {}
        self._checked: set[str] = set()
        self._resolved: list[tuple[str, Column | _Direct]] | None = None
        clash = set(ADDED_KEYS) & set(self.fields)
        if clash:
            raise SchemaError(
                f"{unified.path}: {self.where} has columns named like keys the reader adds: "
                f"{', '.join(sorted(clash))}"
            )
        self.selected = self._selection(select)
        self._features: FeatureLookup | None = None
        if features is not None:
            self._features = resolve_features(
                unified, features, self.image_rows(), self.where, missing_features
            )
        self._target: Callable[[int], dict[str, Any]] | None = None
        if targets:
            from unify.targets import bind

            self._target = bind(self)

    @property
    def where(self) -> str:
        return f"{self.task}/{self.name}"

    def _selection(self, select: Sequence[str] | None) -> list[str]:
        if select is None:
            return list(self.fields)
        unknown = [s for s in select if s not in self.fields]
        if unknown:
            raise KeyError(
                f"{self.where} has no column {', '.join(map(repr, unknown))} "
                f"(columns: {', '.join(self.fields)})"
            )
        wanted = {"id", "image", *select}
        return [f for f in self.fields if f in wanted]

    @property
    def role(self) -> str:
        return str(self.group.attrs["role"])

    @property
    def hidden(self) -> bool:
        """Are the split's answers withheld from participants (``unify.hidden``)? Files
        before schema 1.3 hide nothing."""
        return bool(self.group.attrs.get(HIDDEN_ATTR, False))

    @property
    def answers_present(self) -> bool:
        """Does this file hold the split's answers? A hidden split has them only in a
        private build (``unify build --organiser``), never in a public copy. Files before
        schema 1.3 say nothing: there, a split lacking a target field of its task (VQA v2
        test) has none."""
        value = self.group.attrs.get(ANSWERS_ATTR)
        if value is not None:
            return str(_plain(value)) == PRESENT
        spec = all_tasks().get(self.task)
        return spec is None or all(field in self.group for field in spec.targets)

    @cached_property
    def num_examples(self) -> int:
        return int(self.group.attrs["num_examples"])

    def __len__(self) -> int:
        return self.num_examples

    @cached_property
    def fields(self) -> list[str]:
        """Per-example columns (split arrays such as retrieval ``candidates`` excluded)."""
        skip = set(self.arrays)
        return [name for name in self.group if name not in skip]

    @cached_property
    def arrays(self) -> list[str]:
        """Split-level arrays of any length (read them with ``column``)."""
        raw = self.group.attrs.get("split_arrays")
        return json.loads(raw) if raw else []

    def is_ragged(self, name: str) -> bool:
        return isinstance(self.group[name], h5py.Group)

    def column(self, name: str, sel: Any = slice(None)) -> np.ndarray:
        """A plain column (strings decoded to ``str``), read from the file; image rows are
        checked against /images (and a whole column against its checksum)."""
        item = self.group[name]
        if isinstance(item, h5py.Group):
            raise TypeError(f"{self.task}/{self.name}/{name} is ragged; use ragged()")
        checks = self.file.image_rows_problems(item.name) if self._holds_images(name) else None
        return self.file.read(item, sel, checks)

    def ragged(self, name: str) -> RaggedColumn:
        """A whole ragged column, read from the file (offsets and checksums checked)."""
        group = self.group[name]
        offsets = self._offsets(group)
        values = {k: self.file.read(group[k]) for k in group if k != OFFSETS}
        return RaggedColumn(offsets, values)

    def _offsets(self, group: h5py.Group) -> np.ndarray:
        """A ragged field's offsets, checked against its values' length."""
        first = next((k for k in group if k != OFFSETS), None)
        length = group[first].shape[0] if first is not None else 0
        path = f"{group.name}/{OFFSETS}"
        return self.file.read(group[OFFSETS], checks=lambda o: offsets_problems(path, o, length))

    def check(self) -> SplitView:
        """Check now what readers of this split rely on: image rows (``image`` and image
        split arrays) inside /images and ragged offsets (with ``checksums``, those
        datasets against their checksums too). Commands that describe or score a file
        call it, so that a damaged split is refused even where they need no values."""
        for name in self.group:
            if self._holds_images(name):
                self.column(name)
            elif name in self.fields and self.is_ragged(name):
                self._offsets(self.group[name])
        return self

    def _holds_images(self, name: str) -> bool:
        return name == "image" or (name in IMAGE_SPLIT_ARRAYS and name in self.arrays)

    def cached(self, name: str) -> Column:
        """Column ``name`` held in memory (loaded on first use, kept for the process)."""
        if self._cache is None:
            column = load_column(self.group[name])
        else:
            column = self._cache.get(self.group, name)
        if name not in self._checked:
            self._check_loaded(name, column)
        return column

    def _check_loaded(self, name: str, column: Column) -> None:
        """What loading a whole column checks beyond ``load_column``'s own checks (read
        errors, offsets): image rows inside /images; checksums when the file asks."""
        item = self.group[name]
        if isinstance(column, Plain):
            if self._holds_images(name) and isinstance(column.values, np.ndarray):
                check(self.file.path, self.file.image_rows_problems(item.name)(column.values))
            self.file.check_digest(item, column.values)
        else:
            self.file.check_digest(item[OFFSETS], column.offsets)
            for key, values in column.values.items():
                self.file.check_digest(item[key], values)
        self._checked.add(name)

    def numbers(self, name: str) -> np.ndarray:
        """A plain numeric column as a numpy array, held in memory."""
        column = self.cached(name)
        if not isinstance(column, Plain) or not isinstance(column.values, np.ndarray):
            raise TypeError(f"{self.where}/{name} is not a plain numeric column")
        return column.values

    def image_rows(self) -> np.ndarray:
        """The ``image`` column: /images rows, shape [N] or [N, 2]."""
        return self.numbers("image")

    def image_keys(self) -> np.ndarray:
        """Image keys of every example (shape [N] or [N, 2])."""
        return self.file.image_keys[self.column("image")]

    @property
    def memory_bytes(self) -> int:
        """Bytes of columns this view holds in memory."""
        return self._cache.nbytes if self._cache is not None else 0

    def preload(self) -> SplitView:
        """Load the selected columns now (before forking workers, so that they share them)."""
        for name in self.selected:
            self._column(name)
        return self

    def _column(self, name: str) -> Column | _Direct:
        if self._cache is not None:
            return self.cached(name)
        direct = self._direct.get(name)
        if direct is None:
            item = self.group[name]
            offsets = self._offsets(item) if isinstance(item, h5py.Group) else None
            direct = self._direct[name] = _Direct(item, offsets, f"{self.file.path}: {item.name}")
        return direct

    def example(self, i: int) -> dict[str, Any]:
        """Example ``i`` with every selected field; ``image`` is given as key(s)."""
        i = int(i)
        if not 0 <= i < self.num_examples:
            raise IndexError(f"example {i} out of range for {self.task}/{self.name}")
        out: dict[str, Any] = {"task": self.task}
        for name, column in self._columns():
            out[name] = column.value(i)
        self._finish(out, i)
        return out

    def _columns(self) -> list[tuple[str, Column | _Direct]]:
        """The selected columns, resolved once (each loaded on first use)."""
        if self._resolved is None:
            self._resolved = [(name, self._column(name)) for name in self.selected]
        return self._resolved

    def _finish(self, ex: dict[str, Any], i: int) -> None:
        """Image rows become keys; region features and the target are added when asked."""
        index = ex.pop("image")
        ex["image_index"] = index
        keys = self.file.image_keys
        lookup = self._features
        for j in index if isinstance(index, list) else (index,):
            if not 0 <= j < len(keys):  # a negative row would silently wrap around
                raise SchemaError(
                    f"{self.file.path}: {self.group.name}/image: row {i}: {index}, outside "
                    f"/images (0..{len(keys) - 1})"
                )
        if isinstance(index, list):
            ex["image"] = [keys[j] for j in index]
            if lookup is not None:
                ex["features"] = [lookup.read(j) for j in index]
        else:
            ex["image"] = keys[index]
            if lookup is not None:
                ex["features"] = lookup.read(index)
        if self._target is not None:
            ex["target"] = self._target(i)

    def iter_blocks(
        self,
        blocks: Iterable[tuple[int, int]],
        order: Callable[[int, int], Sequence[int]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Examples of the row ranges ``blocks``, each read with one HDF5 call per column.

        ``order(start, stop)`` gives the order of a block's rows (default: file order).
        """
        for start, stop in blocks:
            block: dict[str, Plain | Ragged] = {
                name: load_column(self.group[name], start, stop, packed=False)
                for name in self.selected
            }
            rows = range(start, stop) if order is None else order(start, stop)
            for i in rows:
                j = i - start
                ex: dict[str, Any] = {"task": self.task}
                for name, col in block.items():
                    ex[name] = col.value(j)
                self._finish(ex, i)
                yield ex

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """All examples in order, read block by block (not one HDF5 read per field and row)."""
        n = self.num_examples
        return self.iter_blocks((a, min(n, a + ITER_BLOCK)) for a in range(0, n, ITER_BLOCK))


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


# ------------------------------------------------------------------------------ the file
class UnifiedFile:
    """An open unified file; use as a context manager or call ``close()``.

    ``chunk_cache_bytes`` sizes HDF5's chunk cache of each dataset opened (default: h5py's
    1 MiB); a bigger cache helps random reads of region features whose chunks hold several
    images.
    """

    def __init__(
        self, path: Path | str, *, chunk_cache_bytes: int | None = None, checksums: bool = False
    ) -> None:
        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r", rdcc_nbytes=chunk_cache_bytes)
        except READ_ERRORS as exc:
            raise SchemaError(f"{self.path}: cannot open as HDF5: {exc}") from None
        try:
            version = str(self.h5.attrs.get("schema_version", ""))
        except READ_ERRORS:
            version = ""  # file_problems names the damage
        if version and version.split(".")[0] != str(SCHEMA_MAJOR):
            self.h5.close()
            raise SchemaError(
                f"{self.path}: schema version {version} is not "
                f"readable by this vl12 (schema {SCHEMA_MAJOR}.x)"
            )
        problems = file_problems(self.h5)
        if problems:
            self.h5.close()
            raise damaged(self.path, problems)
        self.schema_version = version
        #: Compare every dataset loaded whole with its checksum (files built with them).
        self.checksums = checksums and sums.ROOT_ATTR in self.h5.attrs
        self._checked_tasks: set[str] = set()
        self._feature_sets: dict[str, FeatureSet] = {}

    def read(
        self,
        ds: h5py.Dataset,
        sel: Any = slice(None),
        checks: Callable[[np.ndarray], list[Problem]] | None = None,
    ) -> np.ndarray:
        """Values of ``ds`` (strings as ``str``). A damaged dataset is a ``SchemaError``
        naming it: a failed read, a value problem found by ``checks`` (named before a
        checksum, being more precise), or, with ``checksums``, a whole dataset whose
        values differ from its checksum."""
        with reading(self.path, ds.name):
            values = _decode(ds, sel)
        if checks is not None:
            check(self.path, checks(values))
        if isinstance(sel, slice) and sel == slice(None):
            self.check_digest(ds, values)
        return values

    def check_digest(self, ds: h5py.Dataset, values: Any) -> None:
        """With ``checksums``: the values of the whole ``ds`` must match its checksum."""
        if not self.checksums:
            return
        want = ds.attrs.get(sums.ATTR)
        if want is not None and sums.digest_values(values, ds.dtype, ds.shape) != want:
            raise SchemaError(
                f"{self.path}: {ds.name}: content differs from its checksum: the file is "
                "damaged (flipped bytes?); see `unify verify`"
            )

    def image_rows_problems(self, path: str) -> Callable[[np.ndarray], list[Problem]]:
        """The check of image rows read from ``path``: inside /images (a negative row would
        silently wrap around to another image)."""
        n_images = self.h5[IMAGES]["key"].shape[0]
        return lambda rows: image_problems(path, rows, n_images)

    def _check_task(self, task: str) -> None:
        """The structure of a task's splits, checked when the task is first used."""
        if task in self._checked_tasks or task not in self.h5[TASKS]:
            return
        problems = task_problems(self.h5, task)
        if problems:
            raise damaged(self.path, problems)
        self._checked_tasks.add(task)

    def close(self) -> None:
        for fs in self._feature_sets.values():
            fs.close()
        self._feature_sets.clear()
        self.h5.close()

    def __enter__(self) -> UnifiedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attr_json(self, name: str) -> Any:
        raw = self.h5.attrs.get(name)
        return json.loads(raw) if raw is not None else None

    @property
    def build_options(self) -> dict[str, Any]:
        return self.attr_json("build_options") or {}

    @property
    def sources(self) -> list[dict[str, Any]]:
        return self.attr_json("sources") or []

    @property
    def build_report(self) -> dict[str, Any]:
        return self.attr_json("build_report") or {}

    def _text_attr(self, name: str) -> str | None:
        value = self.h5.attrs.get(name)
        return None if value is None else str(_plain(value))

    @property
    def fingerprint(self) -> str:
        """The file's content fingerprint ("" for a file built before fingerprints)."""
        return self._text_attr("fingerprint") or ""

    @property
    def is_public_copy(self) -> bool:
        """Was this file made by ``unify publish`` (hidden splits without answers)?"""
        return self._text_attr(PUBLISHED_FROM) is not None

    @property
    def benchmark_fingerprint(self) -> str:
        """The fingerprint of the benchmark a prediction for this file is scored on: the
        private build's. A build's own ``fingerprint``; for a public copy, the one of the
        private build it was published from (root attribute ``published_from``)."""
        return self._text_attr(PUBLISHED_FROM) or self.fingerprint

    @property
    def tasks(self) -> list[str]:
        return list(self.h5[TASKS].keys())

    def task_attrs(self, task: str) -> dict[str, Any]:
        self._check_task(task)
        return {k: _plain(v) for k, v in self.h5[TASKS][task].attrs.items()}

    def splits(self, task: str) -> list[str]:
        self._check_task(task)
        return list(self.h5[TASKS][task].keys())

    def split(
        self,
        task: str,
        name: str,
        features: FeatureRequest = None,
        *,
        targets: bool = False,
        select: Sequence[str] | None = None,
        cache: bool | ColumnCache = True,
        missing_features: MissingFeatures = "error",
    ) -> SplitView:
        """A split; see ``SplitView`` for ``features``, ``targets``, ``select``, ``cache``."""
        if task not in self.h5[TASKS]:
            raise KeyError(f"task {task!r} not in {self.path} (tasks: {', '.join(self.tasks)})")
        self._check_task(task)
        if name not in self.h5[TASKS][task]:
            raise KeyError(
                f"split {name!r} not in task {task!r} (splits: {', '.join(self.splits(task))})"
            )
        return SplitView(
            self,
            task,
            name,
            features,
            targets=targets,
            select=select,
            cache=cache,
            missing_features=missing_features,
        )

    @cached_property
    def image_keys(self) -> np.ndarray:
        """Every image key, in row order: checked sorted and unique (the binary searches of
        ``image_index`` and ``universe_ranges`` rely on it)."""
        ds = self.h5[IMAGES]["key"]
        return self.read(ds, checks=lambda keys: key_problems(ds.name, keys))

    @cached_property
    def universe_ranges(self) -> dict[str, tuple[int, int]]:
        """Rows of /images per universe: keys are sorted, so each prefix is one range."""
        keys = self.image_keys
        ranges: dict[str, tuple[int, int]] = {}
        lo = 0
        while lo < len(keys):
            universe = str(keys[lo]).split(":", 1)[0]
            hi = int(np.searchsorted(keys, universe + ";"))  # ';' follows ':' in byte order
            ranges[universe] = (lo, hi)
            lo = hi
        return ranges

    def image_index(self, key: str) -> int:
        """Row of a key in /images (keys are sorted)."""
        keys = self.image_keys
        i = int(np.searchsorted(keys, key))
        if i >= len(keys) or keys[i] != key:
            raise KeyError(key)
        return i

    def feature_names(self) -> list[str]:
        return list(self.h5[FEATURES].keys()) if FEATURES in self.h5 else []

    def feature_set(self, name: str) -> FeatureSet:
        """A feature set with its lookup arrays loaded (once per open file)."""
        fs = self._feature_sets.get(name)
        if fs is None:
            if name not in self.feature_names():
                raise KeyError(
                    f"no features {name!r} in {self.path} "
                    f"(features: {', '.join(self.feature_names()) or 'none'})"
                )
            g = self.h5[FEATURES][name]
            row, offsets, image = (self.read(g[k]) for k in ("row", "offsets", "image"))
            where = f"/{FEATURES}/{name}"
            n_images = self.h5[IMAGES]["key"].shape[0]
            check(
                self.path,
                feature_problems(where, image, offsets, row, g["boxes"].shape[0], n_images),
            )
            with reading(self.path, where):
                boxes = DirectRows(g["boxes"], str(self.path))
                feats = DirectRows(g["features"], str(self.path))
            fs = self._feature_sets[name] = FeatureSet(
                name=name,
                universe=str(g.attrs.get("universe", "")),
                dim=int(g.attrs.get("dim", g["features"].shape[1])),
                row=row,
                offsets=offsets,
                boxes=boxes,
                features=feats,
                where=f"{self.path}: {where}",
            )
        return fs

    def region_features(self, name: str, image_index: int) -> dict[str, np.ndarray] | None:
        """Boxes (x1, y1, x2, y2) and float16 features of one image; None if it has none."""
        return self.feature_set(name).read(image_index)

    def vocab_names(self) -> list[str]:
        return list(self.h5[VOCAB].keys())

    def vocab(self, name: str) -> list[str]:
        return self.read(self.h5[VOCAB][name]).tolist()

    def vocab_attrs(self, name: str) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.h5[VOCAB][name].attrs.items()}

    def links(self) -> dict[str, np.ndarray]:
        g = self.h5[LINKS]
        return {k: self.read(g[k]) for k in ("key_a", "key_b", "type", "source")}


def open_unified(path: Path | str) -> UnifiedFile:
    return UnifiedFile(path)
