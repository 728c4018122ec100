"""The declaration every converter fills in, and the build context it works with.

A converter is a small, declarative module (as in TensorFlow Datasets): it names its
task, task group, metric, the raw files it reads (required or optional, with the official
download page) and its splits with their roles. The shared machinery in this module and in
``unify.build`` checks the files, hashes them, applies ``--max-examples``, collects images
and links, and writes the result, so a converter only maps raw records to columns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from unify.errors import DataError, RecordError
from unify.images import ImageRegistry, LinkSet
from unify.rawio import (
    DEFAULT_LIMITS,
    RawLimits,
    SourceLog,
    iter_json_array,
    iter_json_items,
    iter_jsonl,
    load_json,
)
from unify.rules import Declared
from unify.schema import Role
from unify.table import TaskTable
from unify.tasks import Split, TaskSpec
from unify.vocab import Vocabulary

T = TypeVar("T")


@dataclass(frozen=True)
class RawFile:
    """One file of an official release, relative to the task's raw folder."""

    name: str
    required: bool = True
    description: str = ""


ProgressFactory = Callable[..., Any]


def _no_progress(iterable: Iterable[T], **_: Any) -> Iterable[T]:
    return iterable


@dataclass
class BuildContext:
    """State shared by the converters of one build (passed explicitly, never global)."""

    raw_root: Path
    tasks: tuple[str, ...]
    max_examples: int | None = None
    #: Resource bounds of every raw parser (``unify build`` options).
    limits: RawLimits = DEFAULT_LIMITS
    #: The organisers' answers of hidden splits (``--organiser``), laid out like the raw
    #: folder; ``None``: a build without them (hidden splits keep no answers).
    organiser_root: Path | None = None
    images: ImageRegistry = field(default_factory=ImageRegistry)
    links: LinkSet = field(default_factory=LinkSet)
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)
    sources: SourceLog = field(init=False)
    #: Organiser files read (paths relative to ``organiser_root``).
    organiser_sources: SourceLog = field(init=False)
    progress: ProgressFactory = _no_progress
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.sources = SourceLog(self.raw_root)
        self.organiser_sources = SourceLog(self.organiser_root or self.raw_root)

    def limit(self, records: Iterable[T]) -> Iterator[T]:
        """Smoke mode: the first N records of a raw file, in release order."""
        if self.max_examples is None:
            return iter(records)
        return islice(records, self.max_examples)

    def shared(self, key: str, load: Callable[[], T]) -> T:
        """Load a raw file that several converters read (e.g. VG image_data.json) once."""
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]


class Converter(ABC):
    """Map a release's raw records to columns; everything else comes from the TaskSpec.

    The converter declares only what belongs to the raw files (their names, the download
    page, its own version); the task's name, splits and roles, id and group live in the
    ``TaskSpec`` it is bound to, so one converter class can serve two tasks that share a
    raw format (the refer tasks do).
    """

    version: ClassVar[str]
    homepage: ClassVar[str]
    raw_files: ClassVar[tuple[RawFile, ...]]
    #: The field rules of the release (``unify.rules``), by the part of the release they
    #: apply to: rules checked on columns, and descriptions of rules checked inline on
    #: the fast path; declared next to the field mapping, listed in docs/raw-layout.md.
    field_rules: ClassVar[Mapping[str, tuple[Declared, ...]]] = MappingProxyType({})
    #: Files of the organisers holding the answers of the task's hidden splits, in the
    #: release's own format, under ``<organiser>/<task>/`` (``unify build --organiser``).
    organiser_files: ClassVar[tuple[RawFile, ...]] = ()
    #: Columns of an evaluation split that hold its answers: what a hidden split lacks in
    #: a public build and what ``unify publish`` leaves out. Empty: the answers cannot be
    #: separated from the inputs (retrieval), so no split of the task can be hidden.
    answer_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def splits(self) -> tuple[Split, ...]:
        return self.spec.splits

    def task_dir(self, raw_root: Path) -> Path:
        """The task's folder: its name, or the first alias that exists."""
        for folder in (self.name, *self.spec.aliases):
            if (raw_root / folder).is_dir():
                return raw_root / folder
        return raw_root / self.name

    def file(self, raw_root: Path, name: str) -> Path:
        return self.task_dir(raw_root) / name

    def file_status(self, raw_root: Path) -> list[tuple[RawFile, Path, bool]]:
        return [
            (rf, self.file(raw_root, rf.name), self.file(raw_root, rf.name).is_file())
            for rf in self.raw_files
        ]

    def missing_files(self, raw_root: Path) -> list[tuple[str, Path, str]]:
        return [
            (self.name, path, self.homepage)
            for rf, path, present in self.file_status(raw_root)
            if rf.required and not present
        ]

    def has_file(self, ctx: BuildContext, name: str) -> bool:
        return self.file(ctx.raw_root, name).is_file()

    # Organiser files: read like raw files, recorded in the build's sources apart.
    def organiser_file(self, ctx: BuildContext, name: str) -> Path | None:
        """The organiser file ``name`` of this task, or ``None`` when the build has no
        organiser folder or the folder has no such file."""
        if ctx.organiser_root is None:
            return None
        path = self.file(ctx.organiser_root, name)
        return path if path.is_file() else None

    def load_organiser_json(self, ctx: BuildContext, path: Path) -> Any:
        return load_json(path, self.name, ctx.organiser_sources, ctx.limits)

    def iter_organiser_json_items(
        self, ctx: BuildContext, path: Path
    ) -> Iterator[tuple[str, Any]]:
        return iter_json_items(path, self.name, ctx.organiser_sources, ctx.limits)

    # Reading helpers: every read is recorded with its sha256 in the build's sources.
    def load_json(self, ctx: BuildContext, name: str) -> Any:
        return load_json(self.file(ctx.raw_root, name), self.name, ctx.sources, ctx.limits)

    def iter_json_items(self, ctx: BuildContext, name: str) -> Iterator[tuple[str, Any]]:
        path = self.file(ctx.raw_root, name)
        return iter_json_items(path, self.name, ctx.sources, ctx.limits)

    def iter_json_array(self, ctx: BuildContext, name: str, prefix: str) -> Iterator[Any]:
        path = self.file(ctx.raw_root, name)
        return iter_json_array(path, prefix, self.name, ctx.sources, ctx.limits)

    def iter_jsonl(self, ctx: BuildContext, name: str) -> Iterator[tuple[int, Any]]:
        return iter_jsonl(self.file(ctx.raw_root, name), self.name, ctx.sources, ctx.limits)

    def split_role(self, split: str) -> Role:
        return self.spec.role(split)

    def task_attrs(self, **extra: Any) -> dict[str, Any]:
        spec = self.spec
        return {
            "task_group": spec.group,
            "metric": spec.metric,
            "example_unit": spec.example_unit,
            "id_field": spec.id_field,
            "converter_version": self.version,
            "title": self.title,
        } | extra

    @abstractmethod
    def convert(self, ctx: BuildContext) -> TaskTable:
        """Read the raw files and return the task's splits."""


def require(
    record: Any, key: str, kind: type | tuple[type, ...], path: Path | str, record_id: object
) -> Any:
    """Fetch a field, raising an error naming file, record and field when it is wrong."""
    if not isinstance(record, dict):
        raise RecordError(
            path, record_id, key, f"record is a {type(record).__name__}, not an object"
        )
    try:
        value = record[key]
    except KeyError:
        raise RecordError(path, record_id, key, "missing") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(
            path, record_id, key, f"expected {names}, got {type(value).__name__} {value!r:.60}"
        )
    return value


def require_list(value: Any, path: Path | str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise DataError(f"{path}: {what} must be a JSON array, got {type(value).__name__}")
    return value


def require_items(
    item: Any, fields: tuple[tuple[str, type], ...], path: Path, rid: object, where: str
) -> None:
    """``require`` for a nested item, naming the field as ``where.key``."""
    if not isinstance(item, dict):
        raise RecordError(path, rid, where, f"expected an object, got {type(item).__name__}")
    for key, kind in fields:
        if key not in item:
            raise RecordError(path, rid, f"{where}.{key}", "missing")
        value = item[key]
        if type(value) is not kind:
            raise RecordError(
                path,
                rid,
                f"{where}.{key}",
                f"expected {kind.__name__}, got {type(value).__name__} {value!r:.60}",
            )
