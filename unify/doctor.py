"""Diagnose a raw folder before a build: what is present, missing, unreadable or different.

A build that fails after twenty minutes on a truncated download is the most common way to
lose an afternoon with these releases. ``unify doctor`` reads every raw file of the named
tasks through once, with the very readers (and limits) the converters use, so a file it
passes parses in the build, and it names the command or page that fixes each problem.

Checksums are compared with the best reference there is: the generated sample's own
manifest (``vl12-sample-manifest.json``, written by ``unify sample``), else a sha256 the
source declares, else what ``unify download`` recorded when it fetched the file. A
readable file that differs is a warning (another release version reads fine), an error
only with ``--strict``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from unify.download import load_state, sha256_of
from unify.errors import DataError
from unify.rawio import DEFAULT_LIMITS, RawLimits, SourceLog, iter_json_items, iter_jsonl, load_json
from unify.safe_pickle import load_plain
from unify.sources import SOURCES, ReadAs, Source, source_of
from unify.tasks import get

__all__ = ["MANIFEST", "FileReport", "diagnose", "exit_code", "read_through", "write_manifest"]

#: The generated sample's record of its own files (``unify sample`` writes it).
MANIFEST = "vl12-sample-manifest.json"

Status = Literal["ok", "missing", "absent", "unreadable", "differs"]


@dataclass
class FileReport:
    """One raw file of one task, as the doctor found it."""

    task: str
    path: str  # raw-layout path, as found (an alias folder if that is what exists)
    required: bool
    status: Status
    detail: str = ""
    size: int | None = None
    sha256: str | None = None
    reference: str = ""  # what the checksum was compared with ("" when nothing)
    fix: str = ""
    steps: list[str] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        return self.status == "unreadable" or (self.status == "missing" and self.required)


def _read_as(path: Path, declared: ReadAs | None) -> ReadAs:
    """The reader of a file: the source's declaration, else by its name (files with no
    source are optional extras such as GQA's choices: whole JSON or a JSON object)."""
    if declared is not None:
        return declared
    if path.suffix == ".p":
        return "pickle"
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return "json-stream" if head.startswith(b"{") else "json"


def read_through(
    path: Path, read_as: ReadAs, limits: RawLimits = DEFAULT_LIMITS
) -> tuple[int, str]:
    """Parse ``path`` to its end as the build would; return its size and sha256.

    Any problem is a ``DataError`` naming the file (and the byte, line or record).
    """
    if not path.is_file():
        raise DataError(f"{path} is not a regular file")
    log = SourceLog(path.parent)
    if read_as in ("pickle", "text"):
        if read_as == "pickle":
            load_plain(path, limits)
        return path.stat().st_size, sha256_of(path)
    if read_as == "json":
        load_json(path, "doctor", log, limits)
    elif read_as == "json-stream":
        for _ in iter_json_items(path, "doctor", log, limits):
            pass
    else:
        for _ in iter_jsonl(path, "doctor", log, limits):
            pass
    (record,) = log.files.values()
    return record.size, record.sha256


def _load_manifest(raw: Path) -> dict[str, Any]:
    path = raw / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable sample manifest ({exc}); remove it") from None
    return files if isinstance(files, dict) else {}


def write_manifest(raw: Path, files: Iterable[Path]) -> Path:
    """Record the size and sha256 of the sample's files, for ``unify doctor`` to verify."""
    records = {
        p.relative_to(raw).as_posix(): {"size": p.stat().st_size, "sha256": sha256_of(p)}
        for p in sorted(files)
    }
    path = raw / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.part")
    tmp.write_text(json.dumps({"generator": "unify sample", "files": records}, indent=1) + "\n")
    tmp.replace(path)
    return path


def _recorded(state: dict[str, Any], dest: str) -> dict[str, Any] | None:
    for record in state["sources"].values():
        files = record.get("files") if isinstance(record, dict) else None
        if isinstance(files, dict) and isinstance(files.get(dest), dict):
            return files[dest]
    return None


def _fix(
    task: str, raw: Path, found: tuple[Source, Any] | None, homepage: str
) -> tuple[str, list[str]]:
    if found is None:
        return f"get it from {homepage}", []
    source, _ = found
    if source.manual:
        return (
            f"manual step, see {source.page} "
            f"(`unify download {task} --raw {shlex.quote(str(raw))}` prints the steps)",
            list(source.steps),
        )
    return f"unify download {task} --raw {shlex.quote(str(raw))}", []


def diagnose(
    raw: Path,
    tasks: Iterable[str],
    sources: tuple[Source, ...] = SOURCES,
    limits: RawLimits = DEFAULT_LIMITS,
) -> list[FileReport]:
    """Check every raw file (required and optional) of ``tasks`` under ``raw``.

    A file shared by several tasks is read once.
    """
    manifest = _load_manifest(raw)
    state = load_state(raw)
    seen: dict[Path, tuple[Status, str, int | None, str | None]] = {}
    reports = []
    for task in tasks:
        spec = get(task)
        conv = spec.make_converter()
        for rf in conv.raw_files:
            path = conv.file(raw, rf.name)
            rel = path.relative_to(raw).as_posix()
            canonical = f"{task}/{rf.name}"
            found = source_of(canonical, sources)
            fix, steps = _fix(task, raw, found, conv.homepage)
            if not path.exists():
                status: Status = "missing" if rf.required else "absent"
                if not rf.required and found is not None and not found[0].manual:
                    fix += " --optional"
                reports.append(FileReport(task, rel, rf.required, status, fix=fix, steps=steps))
                continue
            key = path.resolve()
            if key not in seen:
                try:
                    size, digest = read_through(
                        path, _read_as(path, found and found[1].read_as), limits
                    )
                    seen[key] = ("ok", "", size, digest)
                except (DataError, OSError) as exc:
                    seen[key] = ("unreadable", str(exc), None, None)
            status, detail, size, digest = seen[key]
            report = FileReport(task, rel, rf.required, status, detail, size, digest)
            if status == "unreadable":
                report.fix = (
                    f"remove {shlex.quote(str(path))}, then {fix}"
                    if fix.startswith("unify")
                    else fix
                )
                report.steps = steps
            else:
                _compare(report, manifest, found, state, canonical, raw, fix)
            reports.append(report)
    return reports


def _compare(
    report: FileReport,
    manifest: dict[str, Any],
    found: tuple[Source, Any] | None,
    state: dict[str, Any],
    canonical: str,
    raw: Path,
    fix: str,
) -> None:
    """Set the report's reference, and mark it ``differs`` when the checksum disagrees."""
    expected: tuple[int | None, str | None] | None = None
    if report.path in manifest and isinstance(manifest[report.path], dict):
        entry = manifest[report.path]
        report.reference = "the sample's manifest"
        expected = (entry.get("size"), entry.get("sha256"))
    elif found is not None and (found[1].sha256 or found[1].size):
        report.reference = "the release"
        expected = (found[1].size, found[1].sha256)
    elif (entry := _recorded(state, canonical)) is not None:
        report.reference = "the download record"
        expected = (entry.get("size"), entry.get("sha256"))
    if expected is None:
        return
    size, sha = expected
    if size is not None and size != report.size:
        report.status = "differs"
        report.detail = f"{report.size} bytes; {report.reference} has {size}"
    elif sha is not None and sha != report.sha256:
        report.status = "differs"
        report.detail = f"sha256 {report.sha256}; {report.reference} has {sha}"
    if report.status == "differs":
        report.fix = (
            "another release version reads fine; if this is not wanted: "
            f"remove {shlex.quote(str(raw / report.path))}, then {fix}"
        )


def exit_code(reports: list[FileReport], strict: bool) -> int:
    """1 when a needed file is missing or any present file is unreadable (or, with
    ``strict``, differs from its reference); else 0."""
    bad = any(r.is_error or (strict and r.status == "differs") for r in reports)
    return 1 if bad else 0


def as_records(reports: list[FileReport]) -> list[dict[str, Any]]:
    return [asdict(r) | {"error": r.is_error} for r in reports]
