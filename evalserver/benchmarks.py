"""Registering a benchmark version (``evalserver load FILE.h5``) from a private unified file.

A version is identified by the file's content fingerprint: loading the same build again is a
no-op that says so (a server restarted with its load script does not multiply versions);
another build under the same name becomes the next version, and submissions keep naming the
version they were scored against. The file is copied into the data dir
(``benchmarks/<fingerprint>.h5``, atomically), so the server never depends on where the
organiser kept it.

Only phases whose ground truth can be read are registered: a public build (hidden splits
without answers) registers nothing scorable for those phases and says which and why. The
messages name splits and files, never answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evalserver.db.models import BenchmarkPhase, BenchmarkVersion
from evalserver.metrics import load_groundtruth
from evalserver.metrics.groundtruth import file_fingerprint
from evalserver.storage import LocalStorage, Storage, StorageError
from unify import tasks
from unify.errors import DataError
from unify.reader import UnifiedFile

__all__ = [
    "BenchmarkError",
    "FileInfo",
    "LoadOutcome",
    "PhaseInfo",
    "inspect_file",
    "load_benchmark",
]


class BenchmarkError(Exception):
    """A unified file that cannot become a benchmark version (message names the file)."""


@dataclass(frozen=True)
class PhaseInfo:
    task: str
    phase: str
    splits: tuple[str, ...]
    hidden: bool
    num_examples: int


@dataclass(frozen=True)
class FileInfo:
    """What a unified file offers the server: its identity and its scorable phases."""

    fingerprint: str
    schema_version: str
    phases: tuple[PhaseInfo, ...]
    #: (task, phase) -> why it cannot be scored from this file.
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadOutcome:
    benchmark: BenchmarkVersion
    created: bool
    skipped: dict[tuple[str, str], str]


def _fingerprint(uf: UnifiedFile) -> str | None:
    # The hidden-splits build names it ``benchmark_fingerprint`` (one per benchmark, not per
    # file layout); older builds only have the file's own.
    value = getattr(uf, "benchmark_fingerprint", None)
    return value if isinstance(value, str) and value else file_fingerprint(uf)


#: Root attribute of a public copy (``unify publish``): the fingerprint of the private build.
PUBLISHED_FROM = "published_from"


def _is_public_copy(uf: UnifiedFile) -> bool:
    value = getattr(uf, "is_public_copy", None)
    if isinstance(value, bool):
        return value
    return uf.h5.attrs.get(PUBLISHED_FROM) is not None


def _split_hidden(uf: UnifiedFile, task: str, split: str) -> bool:
    spec = tasks.get(task)
    if split in getattr(spec, "hidden", ()):
        return True
    return bool(uf.h5["tasks"][task][split].attrs.get("hidden", False))


def inspect_file(path: Path) -> FileInfo:
    """Open ``path`` and list every (task, phase) of ``unify.tasks`` whose ground truth it
    holds (read once here, so a registered phase is known to be scorable)."""
    try:
        with UnifiedFile(path, checksums=True) as uf:
            if _is_public_copy(uf):
                # It names the private build's fingerprint: loaded first, it would make
                # the private build a "no-op", and its hidden splits have no answers.
                raise BenchmarkError(
                    f"{path}: is a public copy (made by `unify publish`), without the "
                    "answers of hidden splits: load the organiser build it was published from"
                )
            fingerprint = _fingerprint(uf)
            if fingerprint is None:
                raise BenchmarkError(
                    f"{path}: has no fingerprint (built before fingerprints): rebuild it "
                    "with `unify build`"
                )
            known = set(tasks.task_names())
            phases: list[PhaseInfo] = []
            skipped: dict[tuple[str, str], str] = {}
            for task in uf.tasks:
                if task not in known:
                    continue
                spec = tasks.get(task)
                present = set(uf.splits(task))
                for phase in spec.phases:
                    missing = [s for s in phase.splits if s not in present]
                    if missing:
                        skipped[(task, phase.name)] = f"split(s) {', '.join(missing)} not built"
                        continue
                    try:
                        gt = load_groundtruth(uf, task, phase.name)
                    except (DataError, KeyError) as exc:
                        skipped[(task, phase.name)] = str(exc).removeprefix(f"{path}: ")
                        continue
                    phases.append(
                        PhaseInfo(
                            task=task,
                            phase=phase.name,
                            splits=tuple(phase.splits),
                            hidden=any(_split_hidden(uf, task, s) for s in phase.splits),
                            num_examples=_count(gt),
                        )
                    )
            return FileInfo(fingerprint, uf.schema_version, tuple(phases), skipped)
    except DataError as exc:
        raise BenchmarkError(str(exc)) from None
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _count(gt: Any) -> int:
    from evalserver.metrics import SCORERS

    try:
        return len(SCORERS[gt.metric].example_ids(gt.data))
    except (KeyError, TypeError, AttributeError, ValueError):
        return 0


def load_benchmark(
    session: Session,
    data_dir: Path,
    path: Path,
    name: str | None = None,
    storage: Storage | None = None,
) -> LoadOutcome:
    """Register ``path`` as a benchmark version (or find the one with its fingerprint).

    Commits on success. ``name`` defaults to the file's stem. The file is copied into
    ``storage`` (default: the data dir) before the row exists, so a registered version's
    file is always there.
    """
    path = Path(path)
    if not path.exists():
        raise BenchmarkError(f"{path}: no such file")
    if not path.is_file():
        raise BenchmarkError(f"{path}: not a file")
    info = inspect_file(path)
    existing = session.scalars(
        select(BenchmarkVersion).where(BenchmarkVersion.fingerprint == info.fingerprint)
    ).first()
    if existing is not None:
        return LoadOutcome(existing, False, info.skipped)
    if not info.phases:
        reasons = "; ".join(f"{t}/{p}: {why}" for (t, p), why in info.skipped.items())
        raise BenchmarkError(f"{path}: no scorable phase ({reasons or 'no task of vl12'})")
    name = name or path.stem
    relative = Path("benchmarks") / f"{info.fingerprint}.h5"
    storage = LocalStorage(data_dir) if storage is None else storage
    try:
        storage.put_file(relative.as_posix(), path)
    except (StorageError, OSError) as exc:
        raise BenchmarkError(f"{path}: cannot copy it into the storage: {exc}") from None
    latest = session.scalar(
        select(func.max(BenchmarkVersion.version)).where(BenchmarkVersion.name == name)
    )
    benchmark = BenchmarkVersion(
        name=name,
        version=(latest or 0) + 1,
        fingerprint=info.fingerprint,
        file_path=relative.as_posix(),
        schema_version=info.schema_version,
    )
    benchmark.phases = [
        BenchmarkPhase(
            task=p.task,
            phase=p.phase,
            splits=list(p.splits),
            hidden=p.hidden,
            num_examples=p.num_examples,
        )
        for p in info.phases
    ]
    session.add(benchmark)
    try:
        session.commit()
    except IntegrityError:  # another load of this file, or of this name, at the same moment
        session.rollback()
        existing = session.scalars(
            select(BenchmarkVersion).where(BenchmarkVersion.fingerprint == info.fingerprint)
        ).first()
        if existing is not None:
            return LoadOutcome(existing, False, info.skipped)
        raise BenchmarkError(
            f"{path}: another version of {name!r} was loaded at the same moment: load again"
        ) from None
    return LoadOutcome(benchmark, True, info.skipped)
