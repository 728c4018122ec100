"""Fetch the declared sources (``unify.sources``) into a raw folder, safely and resumably.

The hosts of these releases are slow university servers and S3 buckets that drop long
connections, so a download resumes where it stopped (HTTP ``Range``) and retries with a
growing pause; a few downloads run at once, never more than ``jobs``. A file appears under
its final name only once it is complete and checked (written as ``.part`` in the same
folder, then ``os.replace``), so a crash never leaves a half file where a build would read
it. Archives are untrusted input: every entry is checked before anything is extracted
(tarfile's ``data`` filter; the same rules for zip: no absolute names, no ``..``, no links
out of the folder, no devices), and only the declared members are written.

No release publishes sha256 sums. Where one is declared it is enforced; otherwise the sum
of what was fetched is recorded in ``<raw>/.vl12/downloads.json`` and shown, and
``unify doctor`` compares later reads against it.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import stat
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from unify.errors import DataError
from unify.sources import Member, Source

__all__ = [
    "STATE_FILE",
    "DownloadError",
    "DownloadOptions",
    "Outcome",
    "download_sources",
    "fetch_url",
    "load_state",
]

#: Where downloads keep their partial files and the record of what they fetched.
WORK_DIR = ".vl12"
STATE_FILE = f"{WORK_DIR}/downloads.json"
_CHUNK = 1 << 20
#: HTTP statuses that no retry can fix.
_PERMANENT = frozenset({400, 401, 403, 404, 405, 410, 451})
#: Largest zip symlink entry read to check where it points.
_MAX_LINK = 4096
#: A member may inflate to this many times the size of its archive (JSON and pickles
#: compress 5-20x); more is an archive bomb, refused before the disk fills.
MAX_INFLATION = 100


class DownloadError(DataError):
    """A source could not be fetched, verified or extracted (exit 1)."""


class Cancelled(Exception):
    """The run was interrupted; what was fetched so far stays for the next run."""


#: Called with (source name, bytes so far, total bytes or None) as a download advances.
ProgressHook = Callable[[str, int, int | None], None]


def _no_progress(name: str, done: int, total: int | None) -> None:
    return None


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try: the CLI's ``--jobs``, ``--retries``, ``--backoff``, ``--timeout``."""

    jobs: int = 3
    retries: int = 5
    backoff: float = 2.0  # seconds before the first retry; doubled each time
    timeout: float = 60.0  # seconds without a byte before a connection counts as dropped
    from_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.jobs <= 8:
            raise ValueError("jobs must be within 1..8")
        if self.retries < 0 or self.backoff < 0 or self.timeout <= 0:
            raise ValueError("retries and backoff must be >= 0, timeout > 0")


@dataclass
class Outcome:
    """What happened to one source."""

    source: str
    status: str  # "fetched", "present", "from", "built", "manual", "failed"
    detail: str = ""
    sha256: str | None = None
    size: int | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # dest -> size, sha256

    @property
    def ok(self) -> bool:
        return self.status in ("fetched", "present", "from", "built")


# ------------------------------------------------------------------------------- fetching


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": "vl12-download"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


class _WrongRange(http.client.HTTPException):
    """A 206 answer for another range than the one asked for."""


def _resume_offset(resp: http.client.HTTPResponse, start: int) -> int:
    """Where the body starts: ``start`` for a 206 that honours the range, 0 for a 200.

    A 206 for another range than the one asked for cannot be placed: it is an error (the
    retry starts over).
    """
    if resp.status != 206:
        return 0
    content_range = resp.headers.get("Content-Range", "")
    try:
        first = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        first = -1
    if first != start:
        raise _WrongRange(f"asked for bytes {start}-, got {content_range!r}")
    return first


def _total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def fetch_url(
    url: str,
    part: Path,
    options: DownloadOptions,
    progress: ProgressHook = _no_progress,
    label: str = "",
    cancel: threading.Event | None = None,
) -> None:
    """Download ``url`` into ``part``, resuming what ``part`` already holds.

    ``cancel`` set (Ctrl-C in the main thread) stops it between two chunks or during a
    pause, keeping the partial file for the next run.

    A dropped connection, a timeout or a server error (5xx, 429) is retried after
    ``backoff * 2**k`` seconds, resuming from the bytes on disk, up to ``retries`` times;
    a 4xx that no retry can fix fails at once. A server that ignores ``Range`` sends the
    whole file, which then replaces the partial one.
    """
    attempt = 0
    while True:
        start = part.stat().st_size if part.exists() else 0
        try:
            with _open(url, start, options.timeout) as resp:
                offset = _resume_offset(resp, start)
                total = _total(resp, offset)
                with open(part, "r+b" if offset else "wb") as out:
                    out.seek(offset)
                    out.truncate()
                    done = offset
                    progress(label, done, total)
                    while chunk := resp.read(_CHUNK):
                        if cancel is not None and cancel.is_set():
                            raise Cancelled(url)
                        out.write(chunk)
                        done += len(chunk)
                        progress(label, done, total)
                if total is not None and done < total:
                    raise http.client.IncompleteRead(b"", total - done)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:
                # Nothing left to send: the partial file is already whole. Its checksum
                # (or the archive check) tells whether it really is.
                return
            if exc.code in _PERMANENT:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            if isinstance(exc, _WrongRange):
                part.unlink(missing_ok=True)  # start over without a range
        attempt += 1
        if attempt > options.retries:
            kept = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"{url}: gave up after {options.retries} retries ({reason}); "
                f"{kept} bytes kept in {part}, the next run resumes from there"
            )
        pause = options.backoff * 2 ** (attempt - 1)
        if cancel is None:
            time.sleep(pause)
        elif cancel.wait(pause):
            raise Cancelled(url)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check(path: Path, what: str, sha256: str | None, size: int | None) -> str:
    """The sha256 of ``path``; a declared size or sum that differs is an error."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{what}: size {actual_size} bytes, the release has {size}")
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256:
        raise DownloadError(f"{what}: sha256 {digest}, the release has {sha256}")
    return digest


# ----------------------------------------------------------------------------- extraction


def _unsafe_name(name: str) -> str | None:
    """Why an archive entry name must not be extracted (None: it may)."""
    if not name or "\x00" in name:
        return "an empty name or a NUL in it"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute name"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '..' component (it would land outside the folder)"
    return None


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    """tarfile's ``data`` filter rules for zip: names inside the folder, links pointing
    inside it, regular files and folders only."""
    for info in zf.infolist():
        problem = _unsafe_name(info.filename)
        mode = info.external_attr >> 16
        if problem is None and stat.S_ISLNK(mode):
            if info.file_size > _MAX_LINK:
                problem = "a link with an overlong target"
            else:
                target = zf.read(info).decode("utf-8", "replace")
                joined = posixpath_join(posixpath_dir(info.filename), target)
                if _unsafe_name(target) or _unsafe_name(joined):
                    problem = f"a link to {target!r}, outside the folder"
        elif problem is None and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            # Zip writers without Unix modes leave the type bits 0: a plain file.
            problem = "a special file (device, FIFO)"
        if problem is not None:
            raise DownloadError(
                f"{archive}: refused: entry {info.filename!r} has {problem}; nothing extracted"
            )


def posixpath_dir(name: str) -> str:
    return str(PurePosixPath(name).parent)


def posixpath_join(base: str, target: str) -> str:
    if target.startswith("/"):
        return target
    parts: list[str] = []
    for part in PurePosixPath(base, target).parts:
        if part == "..":
            if not parts:
                return "../" + target
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


@contextmanager
def _atomic(dest: Path) -> Iterator[IO[bytes]]:
    """A temporary file next to ``dest`` that replaces it only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_member(
    stream: IO[bytes], dest: Path, member: Member, what: str, limit: int | None = None
) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with _atomic(dest) as out:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise DownloadError(
                    f"{what}: refused: inflates to more than {limit} bytes "
                    f"({MAX_INFLATION}x its archive; a release never does)"
                )
            out.write(chunk)
        if member.size is not None and size != member.size:
            raise DownloadError(f"{what}: size {size} bytes, the release has {member.size}")
        if member.sha256 is not None and digest.hexdigest() != member.sha256:
            raise DownloadError(
                f"{what}: sha256 {digest.hexdigest()}, the release has {member.sha256}"
            )
    return {"size": size, "sha256": digest.hexdigest()}


def extract(source: Source, archive: Path, raw: Path) -> dict[str, dict[str, Any]]:
    """Write the declared members of ``archive`` to their raw-layout paths.

    Every entry of the archive is checked first, whether declared or not: an archive with
    one hostile entry is refused whole. Returns each member's size and sha256.
    """
    written: dict[str, dict[str, Any]] = {}
    limit = MAX_INFLATION * max(archive.stat().st_size, 1)
    try:
        if source.kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, archive)
                for member in source.members:
                    try:
                        info = zf.getinfo(member.inside)
                    except KeyError:
                        raise DownloadError(
                            f"{archive}: has no entry {member.inside!r} (a different release?)"
                        ) from None
                    if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                        raise DownloadError(f"{archive}: {member.inside!r} is not a file")
                    with zf.open(info) as stream:
                        what = f"{archive}:{member.inside}"
                        written[member.dest] = _write_member(
                            stream, raw / member.dest, member, what, limit
                        )
        elif source.kind == "tar.gz":
            with tarfile.open(archive, "r:gz") as tf:
                entries = {}
                for entry in tf:
                    try:
                        tarfile.data_filter(entry, str(raw / WORK_DIR / "extract"))
                    except tarfile.FilterError as exc:
                        raise DownloadError(
                            f"{archive}: refused: entry {entry.name!r}: {exc}; nothing extracted"
                        ) from None
                    entries[entry.name] = entry
                for member in source.members:
                    entry = entries.get(member.inside)
                    if entry is None:
                        raise DownloadError(
                            f"{archive}: has no entry {member.inside!r} (a different release?)"
                        )
                    stream = tf.extractfile(entry) if entry.isfile() else None
                    if stream is None:
                        raise DownloadError(f"{archive}: {member.inside!r} is not a file")
                    with stream:
                        what = f"{archive}:{member.inside}"
                        written[member.dest] = _write_member(
                            stream, raw / member.dest, member, what, limit
                        )
        else:
            raise ValueError(f"{source.name}: kind {source.kind} is not an archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            raise
        raise DownloadError(
            f"{archive}: unreadable archive ({type(exc).__name__}: {exc}); remove it and "
            "download again"
        ) from None
    return written


# ---------------------------------------------------------------------------------- state


def load_state(raw: Path) -> dict[str, Any]:
    """What earlier downloads recorded: ``{"sources": {name: record}}`` (empty if none)."""
    path = raw / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {"sources": {}}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable download record ({exc}); remove it") from None
    if not isinstance(state, dict) or not isinstance(state.get("sources"), dict):
        raise DataError(f"{path}: not a download record; remove it")
    return state


def _save_state(raw: Path, state: dict[str, Any]) -> None:
    path = raw / STATE_FILE
    with _atomic(path) as out:
        out.write(json.dumps(state, indent=2, sort_keys=True).encode())


# ------------------------------------------------------------------------------- sources


def _present(source: Source, raw: Path) -> bool:
    return all((raw / m.dest).is_file() for m in source.members)


def _from_candidate(source: Source, from_dir: Path | None) -> Path | None:
    if from_dir is None or source.manual:
        return None
    candidate = from_dir / source.filename
    return candidate if candidate.is_file() else None


def _copy_in(path: Path, dest: Path, member: Member) -> dict[str, Any]:
    with open(path, "rb") as stream:
        return _write_member(stream, dest, member, str(path))


def _one(
    source: Source,
    raw: Path,
    options: DownloadOptions,
    progress: ProgressHook,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Fetch (or take from ``--from``), verify and place one source."""
    if _present(source, raw):
        return Outcome(source.name, "present", "every file is already in place")
    if source.manual or source.kind == "built":
        # Files made by hand (or by the authors' own script) are taken as they are.
        found = [
            options.from_dir / PurePosixPath(m.inside).name
            for m in source.members
            if options.from_dir is not None
        ]
        if found and all(p.is_file() for p in found):
            pairs = zip(source.members, found, strict=True)
            files = {m.dest: _copy_in(p, raw / m.dest, m) for m, p in pairs}
            return Outcome(source.name, "from", f"copied from {options.from_dir}", files=files)
        if source.kind == "built":
            return _build(source, raw, options, progress, cancel)
        return Outcome(source.name, "manual", f"manual step ({source.page}):\n{_steps(source)}")
    hand = _from_candidate(source, options.from_dir)
    work = raw / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    if hand is not None:
        # A hand-fetched archive is read where it is, never moved or removed.
        archive = got = hand
        status = "from"
        digest = _check(hand, str(hand), source.sha256, source.size)
    else:
        assert source.url is not None
        status = "fetched"
        archive = work / source.filename
        got = work / f"{source.filename}.part"
        fetch_url(source.url, got, options, progress, source.name, cancel)
        try:
            digest = _check(got, source.url, source.sha256, source.size)
        except DownloadError as exc:
            got.unlink()  # a wrong file is not worth resuming
            raise DownloadError(f"{exc}; the download was removed") from None
    size = got.stat().st_size
    if source.kind == "file":
        (member,) = source.members
        files = {member.dest: {"size": size, "sha256": digest}}
        if status == "from":
            _copy_in(got, raw / member.dest, member)
        else:
            (raw / member.dest).parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, raw / member.dest)
    else:
        if status == "fetched":
            os.replace(got, archive)
        files = extract(source, archive, raw)
        if status == "fetched":
            archive.unlink()
    detail = f"from {archive}" if status == "from" else f"from {source.url}"
    return Outcome(source.name, status, detail, sha256=digest, size=size, files=files)


def _steps(source: Source) -> str:
    return "\n".join(f"  {i}. {s}" for i, s in enumerate(source.steps, 1))


def _build(
    source: Source,
    raw: Path,
    options: DownloadOptions,
    progress: ProgressHook,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Fetch the parts of a built source, run its builder, then drop the parts."""
    for part in source.parts:
        try:
            got = _one(part, raw, options, progress, cancel)
            problem = "" if got.ok else got.detail
        except DataError as exc:
            problem = str(exc)
        if problem:
            raise DownloadError(
                f"cannot build it: part {part.name}: {problem}\n"
                f"what to do instead ({source.page}):\n{_steps(source)}"
            )
    assert source.builder is not None
    module, _, function = source.builder.partition(":")
    builder = getattr(importlib.import_module(module), function)
    inputs = {m.dest: raw / m.dest for part in source.parts for m in part.members}
    temps: dict[str, Path] = {}
    try:
        for m in source.members:
            dest = raw / m.dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.close(fd)
            temps[m.dest] = Path(tmp)
        builder(inputs, temps)
        files = {
            dest: {"size": tmp.stat().st_size, "sha256": sha256_of(tmp)}
            for dest, tmp in temps.items()
        }
        for dest, tmp in temps.items():
            os.replace(tmp, raw / dest)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    for path in inputs.values():
        path.unlink(missing_ok=True)
    parts = ", ".join(part.name for part in source.parts)
    return Outcome(source.name, "built", f"from {parts}", files=files)


def download_sources(
    sources: tuple[Source, ...],
    raw: Path,
    options: DownloadOptions = DownloadOptions(),
    progress: ProgressHook = _no_progress,
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Fetch every source not yet in place, at most ``options.jobs`` at a time.

    One failing source does not stop the others; each outcome is reported as it ends and
    its checksums recorded in ``<raw>/.vl12/downloads.json`` at once (one writer: this
    thread), so an interrupted run keeps what it finished.
    """
    raw.mkdir(parents=True, exist_ok=True)
    state = load_state(raw)
    outcomes: list[Outcome] = []
    cancel = threading.Event()

    def run(source: Source) -> Outcome:
        try:
            return _one(source, raw, options, progress, cancel)
        except DataError as exc:
            return Outcome(source.name, "failed", str(exc))

    pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="vl12-dl")
    try:
        futures = {pool.submit(run, s): s for s in sources}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if outcome.status in ("fetched", "from", "built"):
                source = futures[future]
                state["sources"][source.name] = {
                    "url": source.url,
                    "archive": {"size": outcome.size, "sha256": outcome.sha256},
                    "files": outcome.files,
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                _save_state(raw, state)
            report(outcome)
    except BaseException:
        # Ctrl-C (or a failing report): stop the running downloads between two chunks,
        # drop the queued ones; partial files stay under .vl12/ for the next run.
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    order = {s.name: i for i, s in enumerate(sources)}
    return sorted(outcomes, key=lambda o: order[o.source])
