"""`unify build`: run the converters of a build and write one unified file atomically.

The flow is one-way: check that every required raw file is present (before any slow
parsing), convert each task in registry order, add the links of shared raw files, then
write everything to a temporary file that replaces FILE only when complete.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unify.converters import registry
from unify.converters.base import BuildContext, ProgressFactory
from unify.converters.vgqa import add_vg_links, fill_vg_sizes
from unify.errors import DataError, MissingRawFilesError
from unify.hidden import ORGANISER, hidden_splits, mark_split, parse_hide
from unify.leakage import LeakagePolicy, clean_tables, write_leakage
from unify.rawio import DEFAULT_LIMITS, RawLimits
from unify.reader import UnifiedFile
from unify.schema import SCHEMA_VERSION
from unify.table import SplitTable, TaskTable
from unify.writer import atomic_output, write_unified

#: Key prefixes of the universes that VG image_data.json links (vg -> coco, vg -> flickr).
VG_LINKED = ("vg:", "coco:", "flickr:")


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked for; recorded in the file's ``build_options``."""

    tasks: tuple[str, ...]
    all: bool = False
    clean: bool = True
    max_examples: int | None = None
    policy: LeakagePolicy = field(default_factory=LeakagePolicy)
    #: Resource bounds of the raw parsers. Not recorded (nor in the fingerprint): they
    #: decide whether a build succeeds, never what a successful build contains.
    limits: RawLimits = DEFAULT_LIMITS
    #: Splits hidden beyond the TaskSpecs' (``--hide``), as sorted ``task:split`` strings
    #: (``unify.hidden.parse_hide``).
    hide: tuple[str, ...] = ()
    #: The organisers' answers of hidden splits (``--organiser``). Not recorded as a path:
    #: the files it gave enter ``sources`` (and so the fingerprint).
    organiser: Path | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "all": self.all,
            "clean": self.clean,
            "max_examples": self.max_examples,
            "cleaning_scope": "tasks in this build" if self.clean else "none",
            "policy": self.policy.as_record(),
            "hide": list(self.hide),
        }


#: Build options that do not change the content (left out of the fingerprint).
SPELLING_ONLY = frozenset({"all"})


def fingerprint(
    sources: list[dict[str, Any]],
    build_options: dict[str, Any],
    converter_versions: dict[str, str],
    schema_version: str,
) -> str:
    """The benchmark's content fingerprint: sha256 (hex) of the canonical JSON of what
    determines the file's content.

    That is the raw files' sha256 (with their paths relative to the raw root, sorted by
    path), the build options, each task's converter version and the schema version; never
    the creation time, timings, absolute paths or the vl12 version. Two builds of the same
    inputs, from any folder, get the same fingerprint, so a server can tell that two files
    are the same benchmark without hashing gigabytes; any changed raw byte, option or
    converter version changes it. The option ``all`` is left out: it only spells the task
    list, which is in (``--all`` and naming every task build the same benchmark).
    """
    record = {
        "schema_version": schema_version,
        "build_options": {k: v for k, v in build_options.items() if k not in SPELLING_ONLY},
        "converters": dict(sorted(converter_versions.items())),
        "sources": [
            {"path": s["path"], "sha256": s["sha256"]}
            for s in sorted(sources, key=lambda s: s["path"])
        ],
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def published_fingerprint(private: str) -> str:
    """The fingerprint of the public copy of a private build (``unify publish``): a
    function of the private build's alone, since what a copy withholds is decided by the
    private file (its hidden splits), and different from it, since the content differs."""
    canonical = json.dumps({"published_from": private}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def recompute_fingerprint(uf: UnifiedFile) -> str:
    """The fingerprint from what the file records about its build (root attributes and
    each task's ``converter_version``): equal to its ``fingerprint`` attribute unless the
    file was altered after the build. A public copy records its private build's options,
    so its own is ``published_fingerprint`` of that."""
    versions = {t: str(uf.task_attrs(t)["converter_version"]) for t in uf.tasks}
    private = fingerprint(uf.sources, uf.build_options, versions, uf.schema_version)
    return published_fingerprint(private) if uf.is_public_copy else private


@dataclass
class BuildResult:
    out: Path
    tasks: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_tasks(names: tuple[str, ...], all_tasks: bool) -> tuple[str, ...]:
    """Task names in build order; unknown names are a data error listing the known ones."""
    known = list(registry())
    if all_tasks:
        return tuple(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"unknown task(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(n for n in known if n in set(names))


def _check_unique_ids(task: str, split: SplitTable) -> None:
    """Two examples of one split with the same id would make scoring ambiguous."""
    ids = split.columns["id"]
    if isinstance(ids, np.ndarray):
        uniq, counts = np.unique(ids, return_counts=True)
        dup = uniq[counts > 1]
        dups = [v.item() for v in dup[:5]]
    else:
        seen: set[str] = set()
        dups = []
        for value in ids:
            if value in seen and len(dups) < 5:
                dups.append(value)
            seen.add(value)
    if dups:
        raise DataError(f"{task}/{split.name}: duplicate example ids in the raw files: {dups}")


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the build.

    A full-size build holds tens of millions of objects; the collector's periodic full
    passes traverse all of them again and again (measured: a full-scale ``--all`` build
    takes 136 s with it, 77 s without). The build creates no reference cycles that need
    collecting (reference counting frees everything), so nothing accumulates.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_hide(values: tuple[str, ...], tasks: tuple[str, ...]) -> tuple[str, ...]:
    """``--hide`` values checked against the build's tasks (``unify.hidden.parse_hide``)
    and their converters: a task whose converter declares no answer columns cannot hide a
    split."""
    converters = registry()
    hide = parse_hide(values, {t: converters[t].spec for t in tasks})
    for value in hide:
        if not converters[value.partition(":")[0]].answer_columns:
            raise DataError(
                f"--hide {value!r}: the answers of this task cannot be withheld from its "
                "inputs (its converter declares no answer columns)"
            )
    return hide


def check_organiser_folder(folder: Path, converters: list[Any]) -> None:
    """An organiser folder must exist and hold an organiser file of a task of the build:
    a folder laid out wrongly would otherwise give a build without answers, silently."""
    if not folder.is_dir():
        raise DataError(f"organiser folder {folder} does not exist")
    expected = [conv.file(folder, rf.name) for conv in converters for rf in conv.organiser_files]
    if expected and not any(path.is_file() for path in expected):
        listing = ", ".join(str(p) for p in expected)
        raise DataError(
            f"organiser folder {folder} holds no organiser file of the tasks built "
            f"(expected one of: {listing})"
        )


def run_build(
    raw_root: Path, out: Path, options: BuildOptions, progress: ProgressFactory | None = None
) -> BuildResult:
    """Convert ``options.tasks`` from ``raw_root`` into ``out`` (atomically)."""
    with _no_cyclic_gc():
        return _run_build(raw_root, out, options, progress)


def _run_build(
    raw_root: Path, out: Path, options: BuildOptions, progress: ProgressFactory | None
) -> BuildResult:
    started = time.perf_counter()
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise DataError(f"raw folder {raw_root} does not exist")
    converters = registry()
    selected = [converters[name] for name in options.tasks]
    missing = [m for conv in selected for m in conv.missing_files(raw_root)]
    if missing:
        raise MissingRawFilesError(missing)
    if options.organiser is not None:
        check_organiser_folder(Path(options.organiser), selected)
    hide = resolve_hide(options.hide, options.tasks)

    ctx = BuildContext(
        raw_root=raw_root,
        tasks=options.tasks,
        max_examples=options.max_examples,
        limits=options.limits,
        organiser_root=None if options.organiser is None else Path(options.organiser),
    )
    if progress is not None:
        ctx.progress = progress
    tables: list[TaskTable] = []
    report: dict[str, Any] = {}
    # Seconds per phase, kept in the file: a slow build can be diagnosed after the fact.
    timings: dict[str, float] = {}
    for conv in selected:
        phase = time.perf_counter()
        table = conv.convert(ctx)
        timings[conv.name] = round(time.perf_counter() - phase, 3)
        for split in table.splits:
            _check_unique_ids(conv.name, split)
        tables.append(table)
        report[conv.name] = table.report
        if table.report.get("accepted"):
            report.setdefault("accepted", {})[conv.name] = table.report["accepted"]
    # VG's image_data.json also bridges COCO and Flickr photos (coco_id + flickr_id of one
    # record), so it is read whenever the build has keys of any universe it links.
    has_vg = any(k.startswith("vg:") for k in ctx.images.sizes)
    report["links"] = (
        {"added_from_vg_image_data": add_vg_links(ctx, bridges_only=not has_vg)}
        if any(k.startswith(VG_LINKED) for k in ctx.images.sizes)
        else {}
    )
    fill_vg_sizes(ctx)
    report["links"]["total_by_type"] = ctx.links.counts()
    report["images"] = len(ctx.images.sizes)
    keys = ctx.images.sorted_keys()
    phase = time.perf_counter()
    cleaning = clean_tables(
        tables,
        keys,
        [(lk.type, lk.key_a, lk.key_b) for lk in ctx.links.sorted()],
        options.policy,
        apply=options.clean,
    )
    report["leakage"] = cleaning.report
    report["hidden"] = {}
    for conv, table in zip(selected, tables, strict=True):
        hidden = hidden_splits(conv.spec, hide)
        for split in table.splits:
            mark_split(split, conv.answer_columns, split.name in hidden)
            if split.name in hidden:
                report["hidden"].setdefault(conv.name, {})[split.name] = split.attrs["answers"]
    # Hidden splits are evaluation splits like any other: cleaned against (by their role).
    cleaning.report["hidden_evaluation_splits"] = [
        f"{task}/{split}" for task, splits in report["hidden"].items() for split in splits
    ]
    timings["leakage"] = round(time.perf_counter() - phase, 3)
    timings["before_write"] = round(time.perf_counter() - started, 3)
    report["timings"] = timings

    sources = ctx.sources.as_records() + [
        record | {"path": f"{ORGANISER}/{record['path']}"}
        for record in ctx.organiser_sources.as_records()
    ]
    versions = {conv.name: conv.version for conv in selected}
    root_attrs = {
        "build_options": options.as_record(),
        "sources": sources,
        "build_report": report,
        "fingerprint": fingerprint(sources, options.as_record(), versions, SCHEMA_VERSION),
    }
    with atomic_output(out) as tmp:
        write_unified(
            tmp,
            tables,
            ctx.images,
            ctx.links,
            ctx.vocabularies,
            root_attrs,
            finish=lambda f, index: write_leakage(f, len(keys), cleaning),
        )
    return BuildResult(out, [t.name for t in tables], report, time.perf_counter() - started)
