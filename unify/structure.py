"""Is a unified file what docs/schema.md says? What a reader checks on open and on load.

A damaged file (a copy cut short, a flipped bit, a hand edit) must never give a traceback
or, worse, a wrong answer: two swapped image keys break the binary search and make
`unify leaks` report leaks that do not exist; a negative image index silently wraps to
another image. Checks by cost:

- **structure** (``file_problems`` when a ``UnifiedFile`` opens, ``task_problems`` when a
  task is first used): groups, datasets and attributes present, with the right types and
  shapes; JSON attributes parse; every column of a split has ``num_examples`` rows, a
  ragged field's offsets ``num_examples + 1``; every dataset that has a checksum exists.
  Metadata only: no dataset is read.
- **values on load** (``key_problems``, ``image_problems``, ``offsets_problems``,
  ``feature_problems``): when the reader loads ``/images/key``, an image column, ragged
  offsets or a feature set's lookups anyway, it checks them: keys sorted and unique,
  image rows inside ``/images``, offsets from 0, monotone, ending at the values' length.

``unify.verify`` runs all of it on everything, with more value checks and the checksums.
A problem is one line: the file, the HDF5 path, what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from unify import checksums
from unify.errors import SchemaError
from unify.schema import (
    FEATURES,
    IMAGES,
    LEAKAGE,
    LINKS,
    OFFSETS,
    ROLES,
    SCHEMA_MAJOR,
    TASK_GROUPS,
    TASKS,
    VOCAB,
)

#: Exceptions h5py, numpy and the decoders raise on damaged data.
READ_ERRORS = (
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    UnicodeError,
    OverflowError,
    AttributeError,
)

#: Split arrays that hold /images rows, like ``image`` (docs/schema.md).
IMAGE_SPLIT_ARRAYS = frozenset({"candidates"})

#: Root attributes (name, kind, the schema version from which they are required).
ROOT_ATTRS = (
    ("vl12_version", "str", (1, 0)),
    ("created", "str", (1, 0)),
    ("build_options", "json-object", (1, 0)),
    ("sources", "json-list", (1, 0)),
    ("build_report", "json-object", (1, 0)),
    ("fingerprint", "sha256", (1, 1)),
    (checksums.ROOT_ATTR, "json-object", (1, 2)),
)
TASK_ATTRS = ("title", "task_group", "metric", "example_unit", "id_field", "converter_version")
FEATURE_DATASETS = (  # name, dtype, shape ("M": images with features, "B": boxes)
    ("image", "int32", ("M",)),
    ("offsets", "int64", ("M+1",)),
    ("boxes", "float32", ("B", 4)),
    ("features", "float16", ("B", "dim")),
    ("image_size", "int32", ("M", 2)),
    ("row", "int32", ("images",)),
)
FEATURE_ATTRS = (
    ("universe", "str"),
    ("dim", "int"),
    ("box_format", "str"),
    ("dtype", "str"),
    ("sources", "json-list"),
    ("skipped_unknown_images", "int"),
    ("duplicate_images", "int"),
)
LEAKAGE_COLUMNS = (
    ("train_task", "str"),
    ("train_split", "str"),
    ("eval_task", "str"),
    ("images", "int64"),
    ("examples", "int64"),
    ("link_types", "str"),
)


class Problem(NamedTuple):
    """One thing wrong with a file: where (an HDF5 path) and what."""

    path: str
    what: str

    def line(self, file: Path | str) -> str:
        return f"{file}: {self.path}: {self.what}"


def detail(exc: BaseException) -> str:
    """An exception's message on one line (h5py's may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def damaged(file: Path | str, problems: list[Problem]) -> SchemaError:
    """The first problem as one line (and how many more there are)."""
    more = len(problems) - 1
    tail = (
        f" (and {more} more problem{'s' if more > 1 else ''}; see `unify verify`)" if more else ""
    )
    return SchemaError(problems[0].line(file) + tail)


@contextlib.contextmanager
def reading(file: Path | str, path: str) -> Iterator[None]:
    """Turn a failed read of ``path`` (damaged data) into one line naming file and path."""
    try:
        yield
    except SchemaError:
        raise
    except READ_ERRORS as exc:
        raise SchemaError(
            f"{file}: {path}: cannot be read, the file is damaged ({detail(exc)})"
        ) from None


def schema_tuple(version: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ------------------------------------------------------------------------------ structure
@dataclass
class _Checker:
    """Collects problems; every h5py access goes through it so that damage is a problem."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, what: str) -> None:
        self.problems.append(Problem(path, what))

    def get(self, group: h5py.Group, name: str, kind: type | None, what: str = "") -> Any:
        """Member ``name`` of ``group`` if it exists (and is a ``kind``), else None."""
        try:
            obj = group[name]
        except READ_ERRORS as exc:
            path = _join(group.name, name)
            try:
                exists = name in group
            except READ_ERRORS:
                exists = True
            if exists:
                self.add(path, f"cannot be read ({detail(exc)})")
            else:
                self.add(path, f"missing {what or _kind_name(kind)}")
            return None
        if kind is not None and not isinstance(obj, kind):
            path = _join(group.name, name)
            self.add(path, f"is a {_kind_name(type(obj))}, expected a {_kind_name(kind)}")
            return None
        return obj

    def members(self, group: h5py.Group) -> list[str]:
        try:
            return list(group)
        except READ_ERRORS as exc:
            self.add(group.name, f"cannot list members ({detail(exc)})")
            return []

    def attr(self, obj: Any, name: str, kind: str, required: bool = True) -> Any:
        """Attribute ``name`` of ``obj`` as ``kind`` (str, int, bool, sha256, json-*)."""
        path = f"{obj.name}@{name}" if obj.name != "/" else f"/@{name}"
        try:
            if name not in obj.attrs:
                if required:
                    self.add(path, "missing attribute")
                return None
            value = obj.attrs[name]
        except READ_ERRORS as exc:
            self.add(path, f"attribute cannot be read ({detail(exc)})")
            return None
        return self.value(path, value, kind)

    def value(self, path: str, value: Any, kind: str) -> Any:
        if kind in ("int", "bool"):
            ok = (
                isinstance(value, (bool, np.bool_))
                if kind == "bool"
                else isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            )
            if not ok:
                self.add(path, f"attribute is {_short(value)}, expected {kind}")
                return None
            return value.item() if isinstance(value, np.generic) else value
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                self.add(path, "attribute is not UTF-8 text")
                return None
        if not isinstance(value, str):
            self.add(path, f"attribute is {_short(value)}, expected text")
            return None
        if kind == "sha256":
            if not re.fullmatch(r"[0-9a-f]{64}", value):
                self.add(path, f"attribute is {_short(value)}, expected 64 hex digits")
                return None
            return value
        if kind.startswith("json"):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError) as exc:
                self.add(path, f"attribute is not valid JSON ({detail(exc)})")
                return None
            want = dict if kind == "json-object" else list
            if not isinstance(parsed, want):
                self.add(path, f"attribute holds JSON {type(parsed).__name__}, expected {kind[5:]}")
                return None
            return parsed
        return value

    def dataset(
        self,
        group: h5py.Group,
        name: str,
        dtype: str | None = None,
        shape: tuple[int | None, ...] | None = None,
    ) -> h5py.Dataset | None:
        """Dataset ``name`` with ``dtype`` ("str", "int", "number", a numpy name or None)
        and ``shape`` (None entries: any length)."""
        ds = self.get(group, name, h5py.Dataset, "dataset")
        if ds is None:
            return None
        try:
            got_dtype, got_shape = ds.dtype, ds.shape
        except READ_ERRORS as exc:
            self.add(ds.name, f"cannot be read ({detail(exc)})")
            return None
        if dtype is not None and not _dtype_ok(got_dtype, dtype):
            self.add(ds.name, f"dtype {_dtype_name(got_dtype)}, expected {dtype}")
            return None
        if shape is not None and not _shape_ok(got_shape, shape):
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            self.add(ds.name, f"shape {list(got_shape)}, expected {want}")
            return None
        return ds


def _join(group: str, name: str) -> str:
    return f"{group.rstrip('/')}/{name}"


def _kind_name(kind: type | None) -> str:
    if kind is None:
        return "member"
    if issubclass(kind, h5py.Dataset):
        return "dataset"
    if issubclass(kind, h5py.Group):
        return "group"
    return kind.__name__


def _short(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return f"{type(value).__name__} {text[:40]}"


def _dtype_name(dtype: np.dtype) -> str:
    return "str" if h5py.check_string_dtype(dtype) is not None else str(dtype)


def _dtype_ok(dtype: np.dtype, want: str) -> bool:
    if h5py.check_string_dtype(dtype) is not None:
        return want == "str"
    if want == "str":
        return False
    if want == "int":
        return dtype.kind in "iu"
    if want == "number":
        return dtype.kind in "biuf"
    return dtype == np.dtype(want)


def _shape_ok(shape: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    return len(shape) == len(want) and all(
        w is None or s == w for s, w in zip(shape, want, strict=False)
    )


def file_problems(h5: h5py.File) -> list[Problem]:
    """Root attributes, /images, /links, /vocab, /leakage, /features and /tasks: what a
    reader needs before it reads anything (metadata only; tasks: ``task_problems``)."""
    c = _Checker()
    version = c.attr(h5, "schema_version", "str")
    have = schema_tuple(version) if version is not None else None
    if version is not None and (have is None or have[0] != SCHEMA_MAJOR):
        c.add("/@schema_version", f"{version!r} is not a {SCHEMA_MAJOR}.x schema version")
    root = {
        name: c.attr(h5, name, kind, required=have is not None and have >= since)
        for name, kind, since in ROOT_ATTRS
    }
    c.attr(h5, "published_from", "sha256", required=False)  # a public copy (unify publish)

    n_images: int | None = None
    images = c.get(h5, IMAGES, h5py.Group)
    if images is not None:
        key = c.dataset(images, "key", "str", (None,))
        if key is not None:
            n_images = key.shape[0]
            for name in ("width", "height", "group"):
                c.dataset(images, name, "int32", (n_images,))
    links = c.get(h5, LINKS, h5py.Group)
    if links is not None:
        first = c.dataset(links, "key_a", "str", (None,))
        n = first.shape[0] if first is not None else None
        for name in ("key_b", "type", "source"):
            c.dataset(links, name, "str", (n,))
    vocab = c.get(h5, VOCAB, h5py.Group)
    vocab_names: list[str] = []
    if vocab is not None:
        for name in c.members(vocab):
            ds = c.dataset(vocab, name, "str", (None,))
            if ds is not None:
                vocab_names.append(name)
                c.attr(ds, "min_count", "int")
                c.attr(ds, "counted_from", "json-list")
                c.attr(ds, "normalized", "bool")
    leakage = c.get(h5, LEAKAGE, h5py.Group)
    if leakage is not None:
        c.attr(leakage, "report", "json-object")
        n = None
        for name, dtype in LEAKAGE_COLUMNS:
            ds = c.dataset(leakage, name, dtype, (n,))
            n = ds.shape[0] if ds is not None and n is None else n
    if FEATURES in h5:
        features = c.get(h5, FEATURES, h5py.Group)
        for name in c.members(features) if features is not None else []:
            group = c.get(features, name, h5py.Group)
            if group is not None:
                _feature_structure(c, group, n_images)
    c.get(h5, TASKS, h5py.Group)
    _checksum_list(c, h5, root[checksums.ROOT_ATTR])  # last: a missing group comes first
    return c.problems


def _checksum_list(c: _Checker, h5: h5py.File, record: dict[str, Any] | None) -> None:
    """The list of checksummed datasets is well formed, and every dataset on it exists: a
    deleted dataset (or group) is noticed on open, whichever it was (1 ms on the full-scale
    build: link names only)."""
    if record is None:
        return
    where = f"/@{checksums.ROOT_ATTR}"
    if record.get("algorithm") != checksums.ALGORITHM:
        c.add(where, f"algorithm {record.get('algorithm')!r}, expected {checksums.ALGORITHM!r}")
    paths = record.get("datasets")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        c.add(where, "'datasets' is not a list of dataset paths")
        return
    present: set[str] = set()
    try:
        h5.id.links.visit(lambda name: present.add("/" + name.decode("utf-8", "replace")))
    except READ_ERRORS as exc:
        c.add("/", f"cannot walk the file ({detail(exc)})")
        return
    for path in paths:
        if path not in present:
            c.add(path, "missing dataset (deleted? /@checksums lists it)")


def _feature_structure(c: _Checker, group: h5py.Group, n_images: int | None) -> None:
    values = {name: c.attr(group, name, kind) for name, kind in FEATURE_ATTRS}
    image = c.dataset(group, "image", "int32", (None,))
    boxes = c.dataset(group, "boxes", "float32", (None, 4))
    sizes = {
        "M": image.shape[0] if image is not None else None,
        "B": boxes.shape[0] if boxes is not None else None,
        "dim": values["dim"],
        "images": n_images,
    }
    sizes["M+1"] = sizes["M"] + 1 if sizes["M"] is not None else None
    for name, dtype, shape in FEATURE_DATASETS:
        if name not in ("image", "boxes"):
            want = tuple(sizes[s] if isinstance(s, str) else s for s in shape)
            ds = c.dataset(group, name, dtype, want)
            if name == "offsets" and ds is not None and sizes["B"] is not None:
                _feature_offsets(c, ds, sizes["B"])


def _feature_offsets(c: _Checker, ds: h5py.Dataset, n_boxes: int) -> None:
    """A feature set's offsets, read on open: one int64 per image with features (under
    1 ms for COCO's 123k), and a command that never loads features (``info``, ``leaks``,
    ``evalserver score``) would otherwise accept offsets that go backwards or past the boxes."""
    try:
        offsets = ds[()]
    except READ_ERRORS as exc:
        c.add(ds.name, f"cannot be read ({detail(exc)})")
        return
    c.problems.extend(offsets_problems(ds.name, offsets, n_boxes))


def task_problems(h5: h5py.File, task: str) -> list[Problem]:
    """A task's attributes and every split of it: role and ``num_examples``, columns of
    ``num_examples`` rows, ``id`` and ``image``, ragged fields (offsets of ``num_examples +
    1``, value datasets of one length), split arrays; a column stored the same way (dtype,
    row shape, ragged values) in every split. Metadata only."""
    c = _Checker()
    group = c.get(h5[TASKS], task, h5py.Group)
    if group is None:
        return c.problems
    path = group.name
    for name in TASK_ATTRS:
        c.attr(group, name, "str")
    task_group = c.attr(group, "task_group", "str")
    if task_group is not None and task_group not in TASK_GROUPS:
        c.add(f"{path}@task_group", f"{task_group!r} is not one of {TASK_GROUPS}")
    label_set = c.attr(group, "label_set", "str", required=False)
    if label_set is not None and task_group == "vqa":
        try:
            kind = h5.get(f"{VOCAB}/{label_set}", getclass=True)
        except READ_ERRORS:
            kind = None
        if kind is not h5py.Dataset:
            c.add(f"{path}@label_set", f"names vocabulary {label_set!r}, not in /vocab")
    elif label_set is not None and task_group == "verification":
        c.value(f"{path}@label_set", label_set, "json-list")
    seen: dict[str, tuple[str, Any]] = {}
    for split in c.members(group):
        sub = c.get(group, split, h5py.Group)
        if sub is not None:
            _split_columns(c, sub, seen)
    return c.problems


class _Meta(NamedTuple):
    """An object of a split, read through h5py's low-level API (a tenth of the cost of
    ``group[name]``, which matters for a check that runs on open)."""

    path: str
    dtype: np.dtype | None  # None: a group
    shape: tuple[int, ...]
    gid: Any = None  # the low-level group id of a group

    @property
    def string(self) -> bool:
        return self.dtype is not None and h5py.check_string_dtype(self.dtype) is not None

    @property
    def dtype_name(self) -> str:
        return "str" if self.string else str(self.dtype)


def _listing(c: _Checker, gid: Any, path: str) -> dict[str, _Meta]:
    """Every member of a group (by low-level id) with its dtype and shape."""
    out: dict[str, _Meta] = {}
    try:
        names = [n.decode("utf-8", "replace") for n in gid]
    except READ_ERRORS as exc:
        c.add(path, f"cannot list members ({detail(exc)})")
        return out
    for name in names:
        where = _join(path, name)
        try:
            oid = h5py.h5o.open(gid, name.encode())
            if isinstance(oid, h5py.h5d.DatasetID):
                out[name] = _Meta(where, oid.dtype, oid.shape)
            elif isinstance(oid, h5py.h5g.GroupID):
                out[name] = _Meta(where, None, (), oid)
            else:
                c.add(where, "is neither a dataset nor a group")
        except READ_ERRORS as exc:
            c.add(where, f"cannot be read ({detail(exc)})")
    return out


def _split_columns(c: _Checker, group: h5py.Group, seen: dict[str, tuple[str, Any]]) -> None:
    path = group.name
    role = c.attr(group, "role", "str")
    if role is not None and role not in ROLES:
        c.add(f"{path}@role", f"{role!r} is not one of {ROLES}")
    n = c.attr(group, "num_examples", "int")
    if n is not None and n < 0:
        c.add(f"{path}@num_examples", f"{n} is negative")
        n = None
    c.attr(group, "hidden", "bool", required=False)  # hidden splits: schema 1.3
    answers = c.attr(group, "answers", "str", required=False)
    if answers is not None and answers not in ("present", "absent"):
        c.add(f"{path}@answers", f"{answers!r} is not 'present' or 'absent'")
    c.attr(group, "answer_columns", "json-list", required=False)
    arrays = c.attr(group, "split_arrays", "json-list", required=False) or []
    if not all(isinstance(a, str) for a in arrays):
        c.add(f"{path}@split_arrays", "is not a list of dataset names")
        arrays = []
    if n is None:
        return
    members = _listing(c, group.id, path)
    ids = members.get("id")
    if ids is not None and ids.shape and ids.shape[0] != n:
        # One wrong number, not a wrong length of every column: say it once, and hold the
        # other columns to the ids.
        c.add(path, f"num_examples={n} but {ids.shape[0]} ids")
        n = ids.shape[0]
    for name in ("id", "image", *arrays):
        if name not in members:
            named = " (named by split_arrays)" if name in arrays else ""
            c.add(_join(path, name), f"missing dataset{named}")
    for name, m in members.items():
        if m.dtype is None:
            if name in arrays:
                c.add(m.path, "is a group, expected a split array (a dataset)")
            else:
                layout = _ragged(c, m, n)
                if layout is not None:
                    _same_everywhere(c, seen, m.path, name, ("ragged", layout))
            continue
        if name in arrays:
            if len(m.shape) != 1:
                c.add(m.path, f"shape {list(m.shape)}, expected [*] (a split array)")
            elif name in IMAGE_SPLIT_ARRAYS and m.dtype != _INT32:
                c.add(m.path, f"dtype {m.dtype_name}, expected int32")
            continue
        if not m.shape or m.shape[0] != n:
            rows = m.shape[0] if m.shape else "no"
            c.add(m.path, f"{rows} rows, but the split has num_examples={n}")
        elif name == "id" and (len(m.shape) > 1 or not (m.string or m.dtype == _INT64)):
            c.add(m.path, f"dtype {m.dtype_name}{list(m.shape)}, expected int64 or str [{n}]")
        elif name == "image" and (m.dtype != _INT32 or m.shape not in ((n,), (n, 2))):
            c.add(m.path, f"{m.dtype_name}{list(m.shape)}, expected int32 [{n}] or [{n}, 2]")
        else:
            _same_everywhere(c, seen, m.path, name, ("plain", m.dtype_name, m.shape[1:]))


_INT32 = np.dtype("int32")
_INT64 = np.dtype("int64")


def _ragged(c: _Checker, group: _Meta, n: int) -> Any:
    """Offsets of ``n + 1`` int64 and value datasets of one length; the layout or None."""
    members = _listing(c, group.gid, group.path)
    offsets = members.pop(OFFSETS, None)
    ok = True
    if offsets is None:
        c.add(_join(group.path, OFFSETS), "missing dataset")
        ok = False
    elif offsets.dtype != _INT64 or offsets.shape != (n + 1,):
        want = f"int64 [{n + 1}]"
        c.add(offsets.path, f"{offsets.dtype_name}{list(offsets.shape)}, expected {want}")
        ok = False
    if not members:
        c.add(group.path, "ragged field without value datasets")
        return None
    layout = []
    length: int | None = None
    for name, m in members.items():
        if m.dtype is None or not m.shape:
            c.add(m.path, "expected a dataset of one row per value")
            return None
        if length is not None and m.shape[0] != length:
            c.add(m.path, f"{m.shape[0]} rows, but {next(iter(members))} has {length}")
            ok = False
        length = m.shape[0] if length is None else length
        layout.append((name, m.dtype_name, m.shape[1:]))
    return tuple(layout) if ok else None


def _same_everywhere(
    c: _Checker, seen: dict[str, tuple[str, Any]], path: str, name: str, layout: Any
) -> None:
    """A column's storage must agree across the splits of a task (a retyped copy does not)."""
    if name not in seen:
        seen[name] = (path, layout)
    elif seen[name][1] != layout:
        c.add(path, f"stored as {_layout(layout)}, but {seen[name][0]} as {_layout(seen[name][1])}")


def _layout(layout: Any) -> str:
    if layout[0] == "plain":
        return f"{layout[1]} rows of shape {list(layout[2])}"
    return "ragged " + ", ".join(f"{n} {d}{list(s) if s else ''}" for n, d, s in layout[1])


# --------------------------------------------------------------------------------- values
def key_problems(path: str, keys: np.ndarray) -> list[Problem]:
    """``/images/key`` must be sorted (byte order = code point order) and unique."""
    if len(keys) < 2:
        return []
    order = keys[1:] > keys[:-1]
    if order.all():
        return []
    bad = np.flatnonzero(~order)
    i = int(bad[0])
    if keys[i] == keys[i + 1]:
        what = f"key {keys[i]!r} is stored twice (rows {i} and {i + 1})"
    else:
        what = f"not sorted: row {i} {keys[i]!r} comes before row {i + 1} {keys[i + 1]!r}"
    more = f" ({len(bad)} rows out of order or repeated)" if len(bad) > 1 else ""
    return [Problem(path, what + more)]


def image_problems(path: str, rows: np.ndarray, n_images: int) -> list[Problem]:
    """Image rows must index ``/images``: a negative one would silently wrap around."""
    rows = np.asarray(rows)
    if not rows.size:
        return []
    lo, hi = int(rows.min()), int(rows.max())
    if lo >= 0 and hi < n_images:
        return []
    bad = np.flatnonzero(((rows < 0) | (rows >= n_images)).reshape(len(rows), -1).any(axis=1))
    value = rows[bad[0]]
    return [
        Problem(
            path,
            f"{len(bad)} row(s) outside /images (0..{n_images - 1}), e.g. row {int(bad[0])}: "
            f"{value.tolist()}",
        )
    ]


def offsets_problems(
    path: str, offsets: np.ndarray, n_values: int, first: bool = True, last: bool = True
) -> list[Problem]:
    """Ragged offsets: from 0 (``first``), non-decreasing, inside the values, ending at
    their length (``last``). A block of offsets checks what it can see."""
    if not len(offsets):
        return []
    if first and offsets[0] != 0:
        return [Problem(path, f"offsets start at {int(offsets[0])}, not 0")]
    steps = np.diff(offsets)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        return [
            Problem(
                path,
                f"offsets decrease at row {i}: {int(offsets[i])} then {int(offsets[i + 1])}",
            )
        ]
    if offsets[0] < 0 or offsets[-1] > n_values:
        return [Problem(path, f"offsets reach {int(offsets[-1])}, beyond the {n_values} values")]
    if last and offsets[-1] != n_values:
        return [
            Problem(path, f"offsets end at {int(offsets[-1])}, but there are {n_values} values")
        ]
    return []


def feature_problems(
    path: str,
    image: np.ndarray,
    offsets: np.ndarray,
    row: np.ndarray,
    n_boxes: int,
    n_images: int | None,
) -> list[Problem]:
    """A feature set's lookup arrays: offsets over the boxes, image rows in /images, and
    ``row`` the inverse of ``image`` (-1 elsewhere)."""
    problems = offsets_problems(f"{path}/offsets", offsets, n_boxes)
    if n_images is not None:
        problems += image_problems(f"{path}/image", image, n_images)
    m = len(image)
    bad = np.flatnonzero((row < -1) | (row >= m))
    if len(bad):
        problems.append(
            Problem(
                f"{path}/row", f"row {int(bad[0])} holds {int(row[bad[0]])}, outside -1..{m - 1}"
            )
        )
    elif not problems and (
        (row >= 0).sum() != m or not np.array_equal(row[image], np.arange(m, dtype=row.dtype))
    ):
        problems.append(Problem(f"{path}/row", "does not point back at the rows of image"))
    return problems


def check(file: Path | str, problems: list[Problem]) -> None:
    """Raise the problems, if any, as one line."""
    if problems:
        raise damaged(file, problems)
