"""Path problems on every `unify` command: one line naming the path, exit 1, no traceback.

The cases are built so that they fail for root too (permission bits do not stop root): a
parent that is a file, a folder given as a file (and the reverse), a path under ``/proc``
where nothing can be created, ``/proc/self/mem`` (opens, but reading it fails), a FIFO
given as the output file. (Never a real device such as /dev/null: code that regressed
would rename its output over it, and as root it can.)
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import unify.cli
from unify.cli import main
from unify.paths import NeedsForceError, PathError, input_file, os_error_message, output_file

UNREADABLE = Path("/proc/self/mem")  # exists for everyone; reading byte 0 fails (EIO)
UNWRITABLE = Path("/proc")  # no file can be created in it, not even by root


def invoke(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(main, list(args))
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    return result.exit_code, result.stdout, result.stderr, exc


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, Path]:
    """A regular file, a folder and a FIFO to misuse as paths."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    adir = tmp_path / "adir"
    adir.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"file": afile, "dir": adir, "fifo": fifo, "tmp": tmp_path}


def feature_import(file: Path | str, tsv: Path | str) -> list[str]:
    return ["features", "import", str(file), str(tsv), "--name", "f", "--universe", "coco"]


def _cases(p: dict[str, Path], raw: Path, h5: Path) -> list[tuple[list[str], Path]]:
    """(arguments, the path the error must name) for each command and path problem."""
    afile, adir, fifo, tmp = p["file"], p["dir"], p["fifo"], p["tmp"]
    out = str(tmp / "new.h5")
    tsv = str(raw / "features" / "coco.tsv")
    missing = tmp / "missing"
    return [
        # list
        (["list", "--raw", str(missing)], missing),
        (["list", "--raw", str(afile)], afile),
        (["list", "--raw", str(afile / "raw")], afile / "raw"),
        # build: inputs
        (["build", "vqa2", "--raw", str(missing), "--out", out], missing),
        (["build", "vqa2", "--raw", str(afile), "--out", out], afile),
        # build: outputs
        (["build", "vqa2", "--raw", str(raw), "--out", str(adir)], adir),
        (["build", "vqa2", "--raw", str(raw), "--out", str(adir), "--force"], adir),
        (["build", "vqa2", "--raw", str(raw), "--out", str(afile / "u.h5")], afile),
        (["build", "vqa2", "--raw", str(raw), "--out", str(afile / "a" / "u.h5")], afile),
        (["build", "vqa2", "--raw", str(raw), "--out", str(UNWRITABLE / "u.h5")], UNWRITABLE),
        (["build", "vqa2", "--raw", str(raw), "--out", str(fifo), "--force"], fifo),
        # info
        (["info", str(missing)], missing),
        (["info", str(adir)], adir),
        (["info", str(afile / "u.h5")], afile / "u.h5"),
        (["info", str(UNREADABLE)], UNREADABLE),
        # leaks
        (["leaks", str(adir)], adir),
        (["leaks", str(UNREADABLE)], UNREADABLE),
        (["leaks", str(h5), "--against", str(missing), "--universe", "coco"], missing),
        (["leaks", str(h5), "--against", str(adir), "--universe", "coco"], adir),
        (["leaks", str(h5), "--against", str(UNREADABLE), "--universe", "coco"], UNREADABLE),
        # features import
        (feature_import(missing, tsv), missing),
        (feature_import(adir, tsv), adir),
        (feature_import(h5, missing), missing),
        (feature_import(h5, adir), adir),
        (feature_import(h5, UNREADABLE), UNREADABLE),
        # sample
        (["sample", "--out", str(afile)], afile),
        (["sample", "--out", str(afile / "s")], afile),
        (["sample", "--out", str(UNWRITABLE / "s")], UNWRITABLE),
    ]


def test_every_path_problem_is_one_line_naming_the_path(
    places: dict[str, Path], tiny_raw: Path, tiny_h5: Path
) -> None:
    failures = []
    for args, named in _cases(places, tiny_raw, tiny_h5):
        code, out, err, exc = invoke(*args)
        lines = err.splitlines()
        ok = (
            exc is None
            and code == 1
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and str(named) in lines[0]
            and "Traceback" not in err + out
        )
        if not ok:
            failures.append(f"unify {' '.join(args)} -> {code} {exc!r} {err!r}")
    assert not failures, "\n".join(failures)
    # Nothing was created by a refused command.
    assert not (places["tmp"] / "new.h5").exists()
    assert sorted(p.name for p in places["tmp"].iterdir()) == ["adir", "afile", "fifo"]
    assert places["file"].read_text() == "not a folder"
    assert places["fifo"].is_fifo()


def test_an_unreadable_raw_file_is_named_before_the_build(tiny_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw / "vgqa", raw / "vgqa")
    (raw / "vgqa" / "question_answers.json").unlink()
    (raw / "vgqa" / "question_answers.json").symlink_to(UNREADABLE)
    code, _, err, exc = invoke("build", "vgqa", "--raw", str(raw), "--out", str(tmp_path / "u"))
    assert exc is None and code == 1
    assert err == f"error: cannot read raw file {raw / 'vgqa/question_answers.json'}: " + (
        f"{os.strerror(errno.EIO)}\n"
    )
    assert not (tmp_path / "u").exists()


def test_permission_denied_is_named(
    tiny_h5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission bits do not stop root (CI runs as root), so the denial is simulated where
    the check opens the file: the message must name the path and the reason."""
    locked = tmp_path / "locked.h5"
    shutil.copyfile(tiny_h5, locked)
    real_open = Path.open

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        if self == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", denied)
    code, _, err, exc = invoke("info", str(locked))
    assert exc is None and code == 1 and str(locked) in err and len(err.splitlines()) == 1
    assert os.strerror(errno.EACCES) in err


def test_an_os_error_no_check_foresaw_is_one_line(
    tiny_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. the disk fills up while the file is written: the path, the reason, exit 1."""
    tmp = tmp_path / ".u.h5.x.tmp"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(unify.cli, "run_build", full_disk)
    code, _, err, exc = invoke("build", "vqa2", "--raw", str(tiny_raw), "--out", str(tmp_path))
    assert (code, exc) == (1, None)  # tmp_path is a folder: caught before run_build
    code, _, err, exc = invoke(
        "build", "vqa2", "--raw", str(tiny_raw), "--out", str(tmp_path / "u.h5")
    )
    assert exc is None and code == 1
    assert err == f"error: {tmp}: {os.strerror(errno.ENOSPC)}\n"


def test_output_file_rules(tmp_path: Path) -> None:
    target = tmp_path / "a.h5"
    assert output_file(target, force=False) == target  # missing: fine
    assert output_file(tmp_path / "new" / "deeper" / "a.h5", force=False)  # parents created later
    assert not (tmp_path / "new").exists()  # ...but not by the check
    target.write_text("x")
    with pytest.raises(NeedsForceError, match="use --force") as caught:
        output_file(target, force=False)
    assert caught.value.exit_code == 2
    assert output_file(target, force=True) == target
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    assert output_file(link, force=True) == link  # a link to a file is that file
    with pytest.raises(PathError, match="is a folder"):
        output_file(tmp_path, force=True)
    assert list(tmp_path.glob(".vl12-probe.*")) == []  # the write probe cleans up


def test_input_file_reads_a_byte(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert input_file(empty) == empty  # empty is readable; the parser says what is wrong
    with pytest.raises(PathError, match="cannot read file /proc/self/mem"):
        input_file(UNREADABLE)


def test_input_file_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A writer holds the FIFO with a byte in it, so that a check that opened and read it
    # would return (and fail this test) instead of blocking.
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(writer, b"x")
        with pytest.raises(PathError, match="is not a regular file"):
            input_file(fifo, "unified file")
    finally:
        os.close(writer)


def test_os_error_message_is_one_line() -> None:
    assert os_error_message(OSError(2, "No such\nfile", "a.h5")) == "a.h5: No such file"
    exc = OSError(18, "Invalid cross-device link", "a", None, "b")
    assert os_error_message(exc) == "a -> b: Invalid cross-device link"
    assert os_error_message(OSError("plain")) == "plain"
