"""Check the paths a command was given before any work, and name them in every error.

A build parses raw files for minutes before it writes; an output it cannot write must fail
before that work, with the path named, not afterwards as an ``OSError`` traceback. Every
command checks its inputs with :func:`input_file` / :func:`input_dir` and its outputs with
:func:`output_file` / :func:`output_dir`, so each path problem has one wording and one exit
code: a path that cannot be used is a data error (exit 1); an output that exists where the
command would replace it without ``--force`` is a usage error (exit 2, like click's own).

The checks try what the command will do (open and read a byte, create a file in the
folder) rather than predict it from permission bits: as root, permission bits predict
nothing, while a parent that is a file, ``/proc`` or a read-only mount still fail.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from unify.errors import DataError, Vl12Error


class PathError(DataError):
    """A path given to a command cannot be used as it must be (exit 1)."""


class NeedsForceError(Vl12Error):
    """An output exists and the command would replace it: a usage error without --force."""

    exit_code = 2


def os_error_message(exc: OSError) -> str:
    """One line naming the path(s) of an ``OSError``, for errors no check foresaw."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None and exc.filename2 is not None:
        where = f"{os.fsdecode(exc.filename)} -> {os.fsdecode(exc.filename2)}: "
    elif exc.filename is not None:
        where = f"{os.fsdecode(exc.filename)}: "
    else:
        where = ""
    return " ".join(f"{where}{reason}".split())


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _parent_problem(path: Path) -> str | None:
    """Why ``path`` cannot exist because of an ancestor: one that is not a folder."""
    for parent in path.parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else f"{parent} is a file, not a folder"
    return None


def input_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is a regular file this process can read, else a ``PathError``."""
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{what} {path} is a folder, not a file")
    if not path.exists():
        problem = _parent_problem(path)
        if problem is not None:
            raise PathError(f"{what} {path} cannot exist: {problem}")
        raise PathError(f"{what} {path} does not exist")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the open below
        raise PathError(f"{what} {path} is not a regular file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise PathError(
            f"cannot read {what} {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    return path


def input_dir(path: Path, what: str = "folder") -> Path:
    """``path`` if it is a folder this process can list, else a ``PathError``."""
    path = Path(path)
    if not path.exists():
        problem = _parent_problem(path)
        if problem is not None:
            raise PathError(f"{what} {path} cannot exist: {problem}")
        raise PathError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise PathError(f"{what} {path} is a file, not a folder")
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        raise PathError(
            f"cannot read {what} {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    return path


def _probe_writable(folder: Path, path: Path, what: str) -> None:
    """Create and delete a file in ``folder``: the only test that holds for root too."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vl12-probe.", dir=folder)
    except OSError as exc:
        raise PathError(
            f"cannot write {what} {path}: cannot create a file in {folder} "
            f"({exc.strerror or exc.__class__.__name__})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def output_file(path: Path, force: bool, what: str = "output file") -> Path:
    """``path`` if a file can be written there (atomically: temp sibling, then rename).

    An existing regular file is replaced only with ``force`` (``NeedsForceError``
    otherwise); a folder, a device or anything else that is not a regular file is never
    replaced. Missing parent folders are fine (they are created when writing); an
    ancestor that is a file, or a folder where nothing can be created, is an error.
    """
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{what} {path} is a folder; give a file path")
    if path.exists():  # a link to a file counts as that file (the link is replaced)
        if not stat.S_ISREG(path.stat().st_mode):
            raise PathError(f"{what} {path} exists and is not a regular file")
        if not force:
            raise NeedsForceError(f"{path} exists; use --force to overwrite it")
    problem = _parent_problem(path)
    if problem is not None:
        raise PathError(f"cannot write {what} {path}: {problem}")
    _probe_writable(_nearest_existing(path.parent), path, what)
    return path


def output_dir(path: Path, force: bool, what: str = "output folder") -> Path:
    """``path`` if files can be written under it; a non-empty folder needs ``force``."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise PathError(f"{what} {path} is a file, not a folder")
    problem = _parent_problem(path)
    if problem is not None:
        raise PathError(f"cannot write {what} {path}: {problem}")
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                non_empty = next(entries, None) is not None
        except OSError as exc:
            raise PathError(
                f"cannot read {what} {path}: {exc.strerror or exc.__class__.__name__}"
            ) from None
        if non_empty and not force:
            raise NeedsForceError(
                f"{what} {path} is not empty; use --force to write over its files"
            )
    _probe_writable(_nearest_existing(path), path, what)
    return path
