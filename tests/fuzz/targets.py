"""The fuzz targets and how one case of each runs.

Targets are derived, never listed by hand:

- raw: every (task, release file) a converter declares (``TaskSpec.make_converter()
  .raw_files`` over ``unify.tasks.all_tasks()``), fuzzed through ``unify build TASK``;
- prediction: every task (its default phase) in every format of its metric's scorer
  (``evalserver.metrics.SCORERS``), plain or gzipped, through ``evalserver score``;
- unified: the tiny build damaged in HDF5-aware ways, through ``unify info``, ``unify
  leaks``, ``unify verify`` and ``evalserver score``.

A case runs in a fresh folder: the corrupted input is written there, the command runs
with that folder as its working directory (``oracle``), and the folder is removed after
(kept with ``keep=True`` to reproduce a case by hand).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hypothesis import strategies as st

from tests.fuzz import oracle
from tests.fuzz.codecs import CODECS, GzipCodec, codec_for_raw
from tests.fuzz.corrupt import MARKER, Corruption, FileModel, bomb_ops, file_corruptions
from tests.fuzz.rules import (
    Verdict,
    either,
    prediction_rules,
    reject,
    rules_for_file,
    unified_verdict,
)
from tests.fuzz.runner import Result
from tests.fuzz.seeds import DERIVED_MARK, PredictionSeed, RawSeeds, copy_task
from unify.tasks import all_tasks

GiB = 1 << 30


# --------------------------------------------------------------------------- raw


def declared_raw_files() -> list[tuple[str, str]]:
    """(task, file name) of every release file a converter declares."""
    return [
        (name, rf.name)
        for name, spec in all_tasks().items()
        for rf in spec.make_converter().raw_files
    ]


@dataclass(frozen=True)
class RawTarget:
    task: str
    file: str
    source: str

    @property
    def label(self) -> str:
        return f"raw:{self.task}/{self.file}"


class RawFuzz:
    """Corrupt one release file of a task's seed folder and build the task."""

    def __init__(self, seeds: RawSeeds, target: RawTarget) -> None:
        self.seeds = seeds
        self.target = target
        folder = seeds.folder(target.source, target.task)
        assert folder is not None and (folder / target.file).is_file(), target
        self.folder = folder
        spec = all_tasks()[target.task]
        description = next(
            rf.description for rf in spec.make_converter().raw_files if rf.name == target.file
        )
        self.model = FileModel(
            name=target.file,
            data=(folder / target.file).read_bytes(),
            codec=codec_for_raw(target.file, description),
            rules=rules_for_file(target.file),
            docs=self._sibling_doc,
            split_names=spec.split_names,
        )

    @cache  # noqa: B019 - one instance per target, documents decoded once
    def _sibling_doc(self, glob: str) -> Any:
        import fnmatch

        for path in sorted(self.folder.iterdir()):
            if fnmatch.fnmatchcase(path.name, glob) and not path.name.endswith(DERIVED_MARK):
                spec = all_tasks()[self.target.task]
                description = next(
                    (
                        rf.description
                        for rf in spec.make_converter().raw_files
                        if rf.name == path.name
                    ),
                    "",
                )
                if path.name == self.target.file:
                    return self.model.doc
                return codec_for_raw(path.name, description).decode(path.read_bytes())
        return None

    def strategy(
        self, bomb_size: int = 3 * GiB, bombs: str = "also"
    ) -> st.SearchStrategy[Corruption]:
        return file_corruptions(self.model, bomb_size, bombs)

    @property
    def has_bombs(self) -> bool:
        return bool(bomb_ops(self.model))

    @property
    def label(self) -> str:
        return self.target.label

    def run(
        self, corruption: Corruption | None, work: Path, mode: str = "fork", keep: bool = False
    ) -> Result:
        case = Path(tempfile.mkdtemp(prefix="raw-", dir=work))
        raw = case / "raw"
        dest = copy_task(self.seeds, self.target.source, self.target.task, raw, self.target.file)
        if corruption is not None:
            (dest / self.target.file).write_bytes(corruption.data)
        (case / "out").mkdir()
        out = case / "out" / "unified.h5"
        command = oracle.Command(  # paths relative to the case folder (its cwd)
            "unify",
            ("build", self.target.task, "--raw", "raw", "--out", "out/unified.h5", "-q"),
            case,
            nameable=tuple(p.name for p in dest.iterdir()),
            output=out,
        )
        outcome = oracle.run(command, _must(corruption), mode, timeout=_timeout(corruption))
        if not keep:
            shutil.rmtree(case, ignore_errors=True)
        return _result(self.label, corruption, command, outcome)


def _must(corruption: Corruption | None) -> bool:
    return corruption.verdict.must_reject if corruption is not None else False


def _result(
    label: str, corruption: Corruption | None, command: oracle.Command, outcome: oracle.Outcome
) -> Result:
    if corruption is None:
        return Result(label, "the seed itself", "a valid file", False, command, outcome)
    return Result(
        label,
        corruption.describe(),
        corruption.verdict.why,
        corruption.verdict.must_reject,
        command,
        outcome,
        corruption,
    )


def _timeout(corruption: Corruption | None) -> float:
    return 120.0 if corruption is not None and corruption.heavy else 60.0


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class PredictionTarget:
    task: str
    format_name: str
    kind: str
    gz: bool = False

    @property
    def label(self) -> str:
        return f"pred:{self.task}:{self.kind}{'.gz' if self.gz else ''}" + (
            "" if self.format_name.endswith(self.kind.upper()) else f" ({self.format_name})"
        )


def prediction_model(seed: PredictionSeed, gz: bool) -> FileModel:
    from evalserver.metrics import get_scorer

    spec = all_tasks()[seed.task]
    scorer = get_scorer(seed.task)
    fmt = next(f for f in scorer.formats if f.name == seed.format_name)
    keys = fmt.keys if fmt.kind == "json" else (spec.id_field, "label")
    id_kind = "int" if spec.id_kind is int else "str"
    name = f"pred:{scorer.metric}:{fmt.kind}:{id_kind}:{keys[0]}:{keys[1]}"
    codec: Any = CODECS[fmt.kind]
    data = seed.data
    if gz:
        codec = GzipCodec(codec)
        data = gzip.compress(data, mtime=0)
    rules = prediction_rules(name) if fmt.kind != "npz" else None
    return FileModel(name=name, data=data, codec=codec, rules=rules)


class PredictionFuzz:
    """Corrupt a valid prediction file and score it against the tiny build."""

    def __init__(self, seed: PredictionSeed, h5: Path, gz: bool = False) -> None:
        self.seed = seed
        self.h5 = h5
        self.target = PredictionTarget(seed.task, seed.format_name, seed.kind, gz)
        self.model = prediction_model(seed, gz)
        self.file_name = "predictions." + seed.kind + (".gz" if gz else "")

    def strategy(
        self, bomb_size: int = 3 * GiB, bombs: str = "also"
    ) -> st.SearchStrategy[Corruption]:
        if self.seed.kind == "npz":
            inner = npz_corruptions(self.seed.data, bomb_size, bombs)
            return inner.map(_gzipped) if self.target.gz else inner
        return file_corruptions(self.model, bomb_size, bombs)

    @property
    def has_bombs(self) -> bool:
        return self.seed.kind == "npz" or bool(bomb_ops(self.model))

    @property
    def label(self) -> str:
        return self.target.label

    def run(
        self, corruption: Corruption | None, work: Path, mode: str = "fork", keep: bool = False
    ) -> Result:
        case = Path(tempfile.mkdtemp(prefix="pred-", dir=work))
        pred = case / self.file_name
        pred.write_bytes(self.model.data if corruption is None else corruption.data)
        command = oracle.Command(
            "evalserver",
            ("score", "--data", str(self.h5), "--task", self.seed.task, pred.name),
            case,
            nameable=(pred.name,),
            readonly=(pred,),
        )
        outcome = oracle.run(command, _must(corruption), mode, timeout=_timeout(corruption))
        if not keep:
            shutil.rmtree(case, ignore_errors=True)
        return _result(self.label, corruption, command, outcome)


def _gzipped(c: Corruption) -> Corruption:
    if c.heavy or c.data[:2] == b"\x1f\x8b":
        return c
    return Corruption(c.op, c.where, c.detail, c.verdict, gzip.compress(c.data, mtime=0), c.heavy)


def prediction_targets(seeds: list[PredictionSeed]) -> list[tuple[PredictionSeed, bool]]:
    return [(seed, gz) for seed in seeds for gz in (False, True)]


# --------------------------------------------------------------------------- NPZ


def _npz(arrays: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _npz_huge_header(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An NPZ whose ``scores.npy`` header declares 2**40 x 2**20 floats over a few bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**20)}
    text = repr(header).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + b"\x00" * 64
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("scores.npy", npy)
        for key in ("caption_ids", "image_ids"):
            inner = io.BytesIO()
            np.save(inner, arrays[key])
            zf.writestr(f"{key}.npy", inner.getvalue())
    return buffer.getvalue()


@cache
def _npz_bomb(rows: int, cols: int, size: int) -> bytes:
    """A deflated ``scores.npy`` of ``size`` bytes of zeros (a few MiB compressed), with
    honest caption_ids/image_ids for its shape."""
    n = size // 8
    shape = (n // cols, cols)
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    text = repr(header).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("scores.npy", "w", force_zip64=True) as out:
            out.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text)
            block = bytes(16 << 20)
            left = shape[0] * shape[1] * 8
            while left > 0:
                out.write(block[: min(left, len(block))])
                left -= len(block)
        for key, length in (("caption_ids", shape[0]), ("image_ids", shape[1])):
            inner = io.BytesIO()
            np.save(inner, np.arange(length, dtype=np.int64))
            zf.writestr(f"{key}.npy", inner.getvalue())
    return buffer.getvalue()


class _Evil:
    """Pickled into an object array: ``open(MARKER, "w")`` if ever unpickled."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (MARKER, "w"))


def _npz_with_pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil()
    buffer = io.BytesIO()
    np.savez(buffer, scores=evil, caption_ids=arrays["caption_ids"], image_ids=arrays["image_ids"])
    return buffer.getvalue()


@st.composite
def npz_corruptions(
    draw: st.DrawFn, seed: bytes, bomb_size: int, bombs: str = "also"
) -> Corruption:
    """Damage to a retrieval score matrix (docs/metrics.md: scores [captions x images] of any
    real dtype and finite, caption_ids and image_ids 1-D integers, every id exactly once)."""
    with np.load(io.BytesIO(seed)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    scores, captions, images = arrays["scores"], arrays["caption_ids"], arrays["image_ids"]
    r = draw(st.integers(0, len(captions) - 1))
    c = draw(st.integers(0, len(images) - 1))
    ops: list[tuple[str, Callable[[], dict[str, Any]], Verdict]] = [
        (
            "delete scores",
            lambda: {k: v for k, v in arrays.items() if k != "scores"},
            reject("no scores"),
        ),
        (
            "delete caption_ids",
            lambda: {k: v for k, v in arrays.items() if k != "caption_ids"},
            reject("no caption_ids"),
        ),
        (
            "delete image_ids",
            lambda: {k: v for k, v in arrays.items() if k != "image_ids"},
            reject("no image_ids"),
        ),
        (
            "extra array",
            lambda: {**arrays, "extra": np.zeros(3)},
            either("an extra array is ignored"),
        ),
        (
            "scores as int32",
            lambda: {**arrays, "scores": (scores * 1000).astype(np.int32)},
            either("any real dtype"),
        ),
        (
            "scores as strings",
            lambda: {**arrays, "scores": scores.astype(str)},
            reject("scores are not real numbers"),
        ),
        (
            "scores as bool",
            lambda: {**arrays, "scores": scores > 0.5},
            reject("scores are not real numbers"),
        ),
        (
            "scores as complex",
            lambda: {**arrays, "scores": scores.astype(complex)},
            reject("scores are not real numbers"),
        ),
        (
            "NaN score",
            lambda: _with(arrays, "scores", (r, c), np.nan),
            reject("a non-finite score"),
        ),
        (
            "inf score",
            lambda: _with(arrays, "scores", (r, c), -np.inf),
            reject("a non-finite score"),
        ),
        ("transposed scores", lambda: {**arrays, "scores": scores.T}, _transposed(scores)),
        ("1-D scores", lambda: {**arrays, "scores": scores.ravel()}, reject("scores are not 2-D")),
        ("3-D scores", lambda: {**arrays, "scores": scores[None]}, reject("scores are not 2-D")),
        (
            "a caption row dropped",
            lambda: {**arrays, "scores": scores[:-1], "caption_ids": captions[:-1]},
            reject("a caption has no row"),
        ),
        (
            "an image column dropped",
            lambda: {**arrays, "scores": scores[:, :-1], "image_ids": images[:-1]},
            reject("an image has no column"),
        ),
        (
            "shape mismatch",
            lambda: {**arrays, "scores": scores[:-1]},
            reject("scores do not match the ids"),
        ),
        (
            "caption_ids as float",
            lambda: {**arrays, "caption_ids": captions.astype(float)},
            reject("ids are not integers"),
        ),
        (
            "image_ids as strings",
            lambda: {**arrays, "image_ids": images.astype(str)},
            reject("ids are not integers"),
        ),
        (
            "caption id repeated",
            lambda: _with(arrays, "caption_ids", (r,), captions[(r + 1) % len(captions)]),
            _repeated(captions),
        ),
        (
            "image id repeated",
            lambda: _with(arrays, "image_ids", (c,), images[(c + 1) % len(images)]),
            _repeated(images),
        ),
        (
            "unknown caption id",
            lambda: _with(arrays, "caption_ids", (r,), -1),
            reject("an unknown caption id"),
        ),
        (
            "unknown image id",
            lambda: _with(arrays, "image_ids", (c,), 2**62),
            reject("an unknown image id"),
        ),
        (
            "2-D caption_ids",
            lambda: {**arrays, "caption_ids": captions[:, None]},
            reject("ids are not 1-D"),
        ),
        (
            "empty arrays",
            lambda: {
                "scores": np.zeros((0, 0)),
                "caption_ids": captions[:0],
                "image_ids": images[:0],
            },
            reject("no predictions"),
        ),
    ]
    special = [
        "huge declared shape",
        "truncated archive",
        "flipped bytes",
        "pickled object array",
        "not a zip",
        "empty file",
    ]
    names = [name for name, _, _ in ops] + special
    if bombs == "only":
        names = ["zip bomb"]
    elif bombs == "also":
        names.append("zip bomb")
    name = names[draw(st.integers(0, len(names) - 1))]
    for op, make, verdict in ops:
        if op == name:
            return Corruption(f"npz:{op}", f"row {r} col {c}", "", verdict, _npz(make()))
    if name == "huge declared shape":
        return Corruption(
            "npz:huge declared shape",
            "scores.npy",
            "2**40 x 2**20",
            reject("a declared shape far beyond the file's size"),
            _npz_huge_header(arrays),
        )
    if name == "truncated archive":
        cut = draw(st.integers(0, len(seed) - 1))
        return Corruption(
            "npz:truncated", f"byte {cut}", "", reject("a truncated archive"), seed[:cut]
        )
    if name == "flipped bytes":
        out = bytearray(seed)
        spot = draw(st.integers(0, len(seed) - 1))
        out[spot] ^= draw(st.integers(1, 255))
        return Corruption(
            "npz:flip", f"byte {spot}", "", _npz_flip_verdict(seed, bytes(out)), bytes(out)
        )
    if name == "pickled object array":
        return Corruption(
            "npz:pickled object array",
            "scores.npy",
            "open(marker)",
            reject("an object array (a pickle)"),
            _npz_with_pickle(arrays),
        )
    if name == "not a zip":
        return Corruption(
            "npz:not a zip",
            "whole file",
            "",
            reject("not an archive"),
            b"PK\x03\x04" + b"junk" * 10,
        )
    if name == "empty file":
        return Corruption("npz:empty", "whole file", "", reject("an empty file"), b"")
    data = _npz_bomb(len(captions), len(images), bomb_size)
    return Corruption(
        "npz:zip bomb",
        "scores.npy",
        f"{bomb_size / GiB:.1f} GiB of zeros",
        reject("decompresses beyond any bound for its size"),
        data,
        heavy=True,
    )


def _with(
    arrays: Mapping[str, np.ndarray], key: str, index: tuple[int, ...], value: Any
) -> dict[str, Any]:
    out = dict(arrays)
    array = np.array(out[key], dtype=np.float64 if isinstance(value, float) else out[key].dtype)
    array[index] = value
    out[key] = array
    return out


def _transposed(scores: np.ndarray) -> Verdict:
    if scores.shape[0] == scores.shape[1]:
        return either("a square matrix transposed still has the right shape")
    return reject("scores do not match the ids")


def _repeated(ids: np.ndarray) -> Verdict:
    return reject("an id repeated") if len(ids) > 1 else either("a single id")


def _npz_flip_verdict(seed: bytes, damaged: bytes) -> Verdict:
    try:
        with np.load(io.BytesIO(damaged), allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception:
        return reject("the reference reader refuses the archive")
    with np.load(io.BytesIO(seed)) as archive:
        original = {k: archive[k] for k in archive.files}
    if set(arrays) != set(original):
        return reject("the archive's arrays changed")
    for key in ("caption_ids", "image_ids"):
        a, b = original[key], arrays[key]
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            return reject(f"{key} changed")
    s = arrays["scores"]
    if s.dtype.kind not in "fiu" or s.shape != original["scores"].shape:
        return reject("scores changed type or shape")
    if s.dtype.kind == "f" and not np.isfinite(s).all():
        return reject("a non-finite score")
    return either("scores changed but are still finite")


# --------------------------------------------------------------------------- unified


@dataclass(frozen=True)
class H5Dataset:
    path: str
    dtype: str  # numpy kind: i, u, f, b, O (strings)
    shape: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]  # (file offset, size) of its stored bytes


@dataclass(frozen=True)
class H5Layout:
    """What the corruptions of a unified file pick from (computed once per seed)."""

    groups: tuple[str, ...]
    datasets: tuple[H5Dataset, ...]
    attrs: tuple[tuple[str, str], ...]  # (owner path, attribute name)
    json_attrs: tuple[tuple[str, str], ...]
    splits: tuple[str, ...]  # tasks/<task>/<split>
    image_columns: tuple[str, ...]
    offsets: tuple[str, ...]
    num_images: int
    tasks: tuple[str, ...]
    size: int

    def dataset(self, path: str) -> H5Dataset:
        return next(d for d in self.datasets if d.path == path)


def h5_layout(path: Path) -> H5Layout:
    groups: list[str] = []
    datasets: list[H5Dataset] = []
    attrs: list[tuple[str, str]] = []
    json_attrs: list[tuple[str, str]] = []
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                groups.append(name)
            else:
                datasets.append(_dataset_info(name, obj))
            for key, value in obj.attrs.items():
                attrs.append((name, key))
                if _is_json(value):
                    json_attrs.append((name, key))

        for key, value in f.attrs.items():
            attrs.append(("", key))
            if _is_json(value):
                json_attrs.append(("", key))
        f.visititems(visit)
        tasks = tuple(f["tasks"].keys())
        splits = tuple(f"tasks/{t}/{s}" for t in tasks for s in f["tasks"][t])
        num_images = len(f["images"]["key"])
    return H5Layout(
        tuple(groups),
        tuple(datasets),
        tuple(attrs),
        tuple(json_attrs),
        splits,
        tuple(
            d.path for d in datasets if d.path.startswith("tasks/") and d.path.endswith("/image")
        ),
        tuple(d.path for d in datasets if d.path.endswith("/offsets")),
        num_images,
        tasks,
        path.stat().st_size,
    )


def _is_json(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or value[:1] not in ("{", "["):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _dataset_info(name: str, ds: h5py.Dataset) -> H5Dataset:
    ranges: list[tuple[int, int]] = []
    try:
        if ds.chunks is None:
            offset = ds.id.get_offset()
            if offset is not None and ds.id.get_storage_size():
                ranges.append((offset, ds.id.get_storage_size()))
        else:
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                ranges.append((info.byte_offset, info.size))
    except (ValueError, RuntimeError, OSError):
        pass
    kind = "O" if h5py.check_string_dtype(ds.dtype) is not None else ds.dtype.kind
    return H5Dataset(name, kind, tuple(ds.shape), tuple(ranges))


@dataclass(frozen=True)
class H5Corruption:
    """Damage to a unified file: ``kind`` (a key of ``unified_verdict``) and its details;
    ``apply`` turns the seed's copy at a path into the damaged file."""

    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} {dict(self.detail)}"


def _h5_edit(path: Path, edit: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


def apply_h5(c: H5Corruption, seed: Path, dest: Path) -> None:
    """Write the damaged copy of ``seed`` to ``dest``."""
    d = c.detail
    if c.kind in (
        "truncate",
        "empty",
        "not_hdf5",
        "flip_anywhere",
        "flip_dataset_byte",
        "append_junk",
    ):
        data = bytearray(seed.read_bytes())
        if c.kind == "truncate":
            data = data[: d["size"]]
        elif c.kind == "empty":
            data = bytearray()
        elif c.kind == "not_hdf5":
            data = bytearray(b'{"schema_version": "1.1"}\n')
        elif c.kind == "append_junk":
            data += b"junk" * 64
        else:
            for spot, mask in d["flips"]:
                data[spot] ^= mask
        dest.write_bytes(bytes(data))
        return
    shutil.copyfile(seed, dest)
    _h5_edit(dest, lambda f: _EDITS[c.kind](f, d))


def _set_attr(f: h5py.File, d: Mapping[str, Any]) -> None:
    owner = f[d["owner"]] if d["owner"] else f
    owner.attrs[d["attr"]] = d["value"]


def _del_attr(f: h5py.File, d: Mapping[str, Any]) -> None:
    owner = f[d["owner"]] if d["owner"] else f
    del owner.attrs[d["attr"]]


def _set_item(f: h5py.File, d: Mapping[str, Any]) -> None:
    f[d["path"]][d["index"]] = d["value"]


def _swap_keys(f: h5py.File, d: Mapping[str, Any]) -> None:
    keys = f["images"]["key"]
    i, j = d["i"], d["j"]
    a, b = keys[i], keys[j]
    keys[i], keys[j] = b, a


def _repeat_key(f: h5py.File, d: Mapping[str, Any]) -> None:
    keys = f["images"]["key"]
    keys[d["j"]] = keys[d["i"]]


def _offsets(f: h5py.File, d: Mapping[str, Any]) -> None:
    ds = f[d["path"]]
    values = ds[()]
    if d["how"] == "backwards":
        k = d["index"]
        values[k] = values[k + 1] + 1 if k + 1 < len(values) else values[k] - 1
        if k + 1 >= len(values):
            values[k - 1] = values[k] + 2
    else:
        values[-1] += 3
    ds[...] = values


def _recreate(f: h5py.File, d: Mapping[str, Any]) -> None:
    ds = f[d["path"]]
    values = ds[()]
    attrs = dict(ds.attrs)
    del f[d["path"]]
    if d["how"] == "shorter":
        new = values[:-1]
    elif h5py.check_string_dtype(ds.dtype) is not None:
        new = np.arange(len(values), dtype=np.int64)
    elif values.dtype.kind == "f":
        new = np.array([str(v) for v in values.ravel()], dtype=object).reshape(values.shape)
    else:
        new = values.astype(np.float64)
    if new.dtype == object:
        out = f.create_dataset(d["path"], data=new, dtype=h5py.string_dtype())
    else:
        out = f.create_dataset(d["path"], data=new)
    for k, v in attrs.items():
        out.attrs[k] = v


def _delete(f: h5py.File, d: Mapping[str, Any]) -> None:
    del f[d["path"]]


def _extra(f: h5py.File, d: Mapping[str, Any]) -> None:
    f.create_dataset("junk_dataset", data=np.arange(3))
    f.attrs["junk_attribute"] = "junk"


def _bad_utf8(f: h5py.File, d: Mapping[str, Any]) -> None:
    f[d["path"]][d["index"]] = b"\xff\xfe"


_EDITS: Mapping[str, Callable[[h5py.File, Mapping[str, Any]], None]] = {
    "delete_object": _delete,
    "delete_attr": _del_attr,
    "schema_version": _set_attr,
    "bad_json_attr": _set_attr,
    "bad_role": _set_attr,
    "num_examples": _set_attr,
    "index_out_of_range": _set_item,
    "rewrite_value": _set_item,
    "nan_value": _set_item,
    "offsets_not_monotone": _offsets,
    "offsets_end": _offsets,
    "shorter_column": _recreate,
    "column_dtype": _recreate,
    "swap_image_keys": _swap_keys,
    "repeat_image_key": _repeat_key,
    "extra_object": _extra,
    "bad_utf8_string": _bad_utf8,
}

UNIFIED_COMMANDS = ("info", "leaks", "verify", "score")


@st.composite
def h5_corruptions(draw: st.DrawFn, layout: H5Layout) -> H5Corruption:
    kinds = [
        "truncate", "empty", "not_hdf5", "flip_anywhere", "flip_dataset_byte", "append_junk",
        "delete_object", "delete_attr", "schema_version", "bad_json_attr", "bad_role",
        "num_examples", "index_out_of_range", "rewrite_value", "nan_value",
        "offsets_not_monotone", "offsets_end", "shorter_column", "column_dtype",
        "swap_image_keys", "repeat_image_key", "extra_object", "bad_utf8_string",
    ]  # fmt: skip
    kind = draw(st.sampled_from(kinds))

    def pick(items: tuple[Any, ...] | list[Any]) -> Any:
        return items[draw(st.integers(0, len(items) - 1))]

    n = layout.num_images
    if kind == "truncate":
        return H5Corruption(kind, {"size": draw(st.integers(0, layout.size - 1))})
    if kind == "flip_anywhere":
        flips = draw(
            st.lists(
                st.tuples(st.integers(0, layout.size - 1), st.integers(1, 255)),
                min_size=1,
                max_size=4,
            )
        )
        return H5Corruption(kind, {"flips": tuple(flips)})
    if kind == "flip_dataset_byte":
        stored = [d for d in layout.datasets if d.ranges]
        ds = pick(stored)
        offset, size = pick(ds.ranges)
        spot = offset + draw(st.integers(0, size - 1))
        return H5Corruption(
            kind, {"dataset": ds.path, "flips": ((spot, draw(st.integers(1, 255))),)}
        )
    if kind == "delete_object":
        objects = [g for g in layout.groups] + [d.path for d in layout.datasets]
        return H5Corruption(kind, {"path": pick(objects)})
    if kind == "delete_attr":
        owner, attr = pick(layout.attrs)
        return H5Corruption(kind, {"owner": owner, "attr": attr})
    if kind == "schema_version":
        return H5Corruption(
            kind,
            {"owner": "", "attr": "schema_version", "value": pick(["2.0", "0.9", "", "x", "11.1"])},
        )
    if kind == "bad_json_attr":
        owner, attr = pick(layout.json_attrs)
        return H5Corruption(
            kind,
            {
                "owner": owner,
                "attr": attr,
                "value": pick(["{", "[1,", '{"a": 1e999}', '{"a": NaN}']),
            },
        )
    if kind == "bad_role":
        return H5Corruption(
            kind,
            {"owner": pick(layout.splits), "attr": "role", "value": pick(["bogus", "", "TRAIN"])},
        )
    if kind == "num_examples":
        split = pick(layout.splits)
        return H5Corruption(
            kind, {"owner": split, "attr": "num_examples", "value": pick([-1, 2**40, 10**6])}
        )
    if kind == "index_out_of_range":
        column = pick(layout.image_columns)
        ds = layout.dataset(column)
        if not ds.shape or ds.shape[0] == 0:
            return H5Corruption("extra_object", {})
        index = (draw(st.integers(0, ds.shape[0] - 1)),) + ((0,) if len(ds.shape) > 1 else ())
        return H5Corruption(
            kind, {"path": column, "index": index, "value": pick([-1, n, n + 1000, 2**31 - 1])}
        )
    if kind in ("rewrite_value", "nan_value"):
        numeric = [
            d for d in layout.datasets if d.dtype in ("i", "u", "f") and d.shape and d.shape[0]
        ]
        if kind == "nan_value":
            numeric = [d for d in numeric if d.dtype == "f"]
        ds = pick(numeric)
        index = tuple(draw(st.integers(0, s - 1)) for s in ds.shape)
        value = float("nan") if kind == "nan_value" else pick([-1, 7, 123456])
        return H5Corruption(kind, {"path": ds.path, "index": index, "value": value})
    if kind in ("offsets_not_monotone", "offsets_end"):
        path = pick(layout.offsets)
        length = layout.dataset(path).shape[0]
        return H5Corruption(
            kind,
            {
                "path": path,
                "how": "backwards" if kind == "offsets_not_monotone" else "end",
                "index": draw(st.integers(1, max(1, length - 1))),
            },
        )
    if kind in ("shorter_column", "column_dtype"):
        columns = [
            d
            for d in layout.datasets
            if d.path.startswith("tasks/") and d.shape and d.shape[0] > 1 and d.path.count("/") == 3
        ]
        ds = pick(columns)
        return H5Corruption(
            kind, {"path": ds.path, "how": "shorter" if kind == "shorter_column" else "dtype"}
        )
    if kind in ("swap_image_keys", "repeat_image_key"):
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n - 1))
        return H5Corruption(kind, {"i": i, "j": j})
    if kind == "bad_utf8_string":
        strings = [d for d in layout.datasets if d.dtype == "O" and d.shape and d.shape[0]]
        ds = pick(strings)
        index = tuple(draw(st.integers(0, s - 1)) for s in ds.shape)
        return H5Corruption(kind, {"path": ds.path, "index": index})
    return H5Corruption(kind, {})


#: Damage confined to one split: ``evalserver score`` reads only the scored task's splits
#: (their structure is checked when they are loaded), so damage in another task's split
#: need not stop it; ``info``, ``leaks`` and ``verify`` still must refuse it. The same holds
#: for the attributes of another task and its splits (ATTRIBUTE_DAMAGE): scoring snli_ve
#: never reads the role of vgqa/val.
ATTRIBUTE_DAMAGE = frozenset({"delete_attr", "bad_json_attr", "bad_role", "num_examples"})
SPLIT_DAMAGE = frozenset(
    {
        "num_examples",
        "shorter_column",
        "column_dtype",
        "index_out_of_range",
        "offsets_not_monotone",
        "offsets_end",
    }
)


def h5_verdict(c: H5Corruption, command: str, task: str | None = None) -> Verdict:
    detail = dict(c.detail)
    where = str(detail.get("path") or detail.get("owner") or "").strip("/").split("/")
    if (
        command == "score"
        and task is not None
        and c.kind in SPLIT_DAMAGE | ATTRIBUTE_DAMAGE
        and len(where) > 1
        and where[0] == "tasks"
        and where[1] != task
    ):
        return either(f"damage in {'/'.join(where[:3])}; scoring {task} does not read it")
    if c.kind == "delete_attr":
        detail = {"owner": c.detail["owner"], "attr": c.detail["attr"]}
    if c.kind == "flip_dataset_byte":
        return unified_verdict("flip_dataset_byte", command, detail)
    if c.kind in ("flip_anywhere", "append_junk", "extra_object"):
        return either("damage that may go unnoticed")
    return unified_verdict(c.kind, command, detail)


class UnifiedFuzz:
    """Damage the tiny build and run one command on it."""

    def __init__(self, h5: Path, command: str, predictions: Mapping[str, PredictionSeed]) -> None:
        self.h5 = h5
        self.command = command
        self.predictions = predictions
        self.layout = h5_layout(h5)

    @property
    def label(self) -> str:
        return f"unified:{self.command}"

    def strategy(self) -> st.SearchStrategy[tuple[H5Corruption, str]]:
        return st.tuples(h5_corruptions(self.layout), st.sampled_from(self.layout.tasks))

    def run(
        self,
        case_in: tuple[H5Corruption, str] | None,
        work: Path,
        mode: str = "fork",
        keep: bool = False,
    ) -> Result:
        case = Path(tempfile.mkdtemp(prefix="h5-", dir=work))
        damaged = case / "unified.h5"
        task = case_in[1] if case_in else self.layout.tasks[0]
        if case_in is None:
            shutil.copyfile(self.h5, damaged)
            verdict = either("the seed")
        else:
            apply_h5(case_in[0], self.h5, damaged)
            verdict = h5_verdict(case_in[0], self.command, task)
        nameable: tuple[str, ...] = (damaged.name,)
        ok_codes: tuple[int, ...] = (0,)
        if self.command == "score":
            seed = self.predictions[task]
            pred = case / f"predictions.{seed.kind}"
            pred.write_bytes(seed.data)
            args: tuple[str, ...] = ("score", "--data", damaged.name, "--task", task, pred.name)
            program = "evalserver"
        else:
            args = (self.command, damaged.name)
            program = "unify"
            if self.command == "leaks":
                ok_codes = (0, 3)
        command = oracle.Command(
            program, args, case, nameable=nameable, readonly=(damaged,), ok_codes=ok_codes
        )
        outcome = oracle.run(command, verdict.must_reject, mode)
        if not keep:
            shutil.rmtree(case, ignore_errors=True)
        what = "the seed itself" if case_in is None else f"{case_in[0].describe()} (task {task})"
        return Result(self.label, what, verdict.why, verdict.must_reject, command, outcome, case_in)


def unify_commands() -> tuple[str, ...]:
    """The ``unify`` subcommands that exist (``verify`` lands with issue 10)."""
    from unify.cli import main

    return tuple(main.commands)
