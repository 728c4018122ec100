"""Run a command on a corrupted input and classify what happened.

Two ways to run the real CLI (``unify ...``, ``evalserver ...``):

- ``fork`` (the default, fast): fork the already-imported test process; the child limits
  its address space (``RLIMIT_AS``: what it has plus ``memory`` bytes), runs the click
  command in-process with ``CliRunner`` and sends back exit code, output and any uncaught
  exception through a pipe; the parent kills it after ``timeout`` seconds.
- ``subprocess`` (what a user runs): a fresh interpreter with the same limits
  (``preexec_fn``), exit code and stderr read as they come.

Outcomes, from worst to best:

- ``crash``: killed by a signal, MemoryError, the timeout, or no result at all;
- ``traceback``: an uncaught exception (or "Traceback" in the output);
- ``written``: something written on failure (an output file, a temporary file left next
  to it, any new or changed file in the case's folder) or an input changed; also a marker
  file created by a pickle global, which would mean a pickle ran code;
- ``silent_acceptance``: exit 0 (``leaks``: 0 or 3) on a corruption that must be rejected;
- ``unclear_error``: a failure whose message names no input file, or HDF5's diagnostic
  dump, or an unexpected exit code (2: usage);
- ``clean_error``: exit 1 with a message that names the file;
- ``ok``: exit 0 on an input that may be accepted.
"""

from __future__ import annotations

import faulthandler
import gc
import hashlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Default limits of one run: 2 GiB of address space on top of what the process holds.
MEMORY = 2 << 30
TIMEOUT = 60.0
_TAIL = 16_000
#: A message line longer than this is not a message (a value dumped whole).
MAX_LINE = 2_000

BAD = ("crash", "traceback", "written", "silent_acceptance", "unclear_error")
GOOD = ("clean_error", "ok")
OUTCOMES = (*BAD, *GOOD)

PROGRAMS = {"unify": "unify.cli", "evalserver": "evalserver.cli"}


@dataclass(frozen=True)
class Command:
    """One command line and what to check around it.

    ``nameable``: file names an error message may name (any one will do); ``output``: the
    file the command writes (must not exist after a failure); ``readonly``: files that
    must not change at all; ``ok_codes``: exit codes that mean "accepted".
    """

    program: str
    args: tuple[str, ...]
    folder: Path
    nameable: tuple[str, ...]
    output: Path | None = None
    readonly: tuple[Path, ...] = ()
    ok_codes: tuple[int, ...] = (0,)

    def shell(self) -> str:
        """The command as a user types it (for reproduction)."""
        import shlex

        return " ".join(shlex.quote(a) for a in (self.program, *self.args))


@dataclass
class RawResult:
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    exception: str | None = None
    traceback: str = ""
    signal: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    runner_error: str | None = None


@dataclass(frozen=True)
class Outcome:
    kind: str
    exit_code: int | None
    detail: str  # the message's or traceback's last line, or why
    stderr: str = field(default="", repr=False)
    seconds: float = 0.0

    @property
    def bad(self) -> bool:
        return self.kind in BAD


# --------------------------------------------------------------------------- running


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(extra: int, absolute: bool = False) -> None:
    limit = extra if absolute else _vm_size() + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _tail(text: str) -> str:
    """The head and the tail of a long output (the head names the file)."""
    half = _TAIL // 2
    return text if len(text) <= _TAIL else text[:half] + "\n…\n" + text[-half:]


def _invoke(program: str, args: Sequence[str]) -> dict[str, Any]:
    import importlib

    from click.testing import CliRunner

    main = importlib.import_module(PROGRAMS.get(program, program)).main
    result = CliRunner().invoke(main, list(args), catch_exceptions=True, prog_name=program)
    exc = result.exception
    tb = ""
    name = None
    if exc is not None and not isinstance(exc, SystemExit):
        name = type(exc).__name__
        tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else repr(exc)
    return {
        "exit_code": result.exit_code,
        "stdout": _tail(result.stdout),
        "stderr": _tail(result.stderr),
        "exception": name,
        "traceback": _tail(tb),
    }


def run_forked(command: Command, timeout: float = TIMEOUT, memory: int = MEMORY) -> RawResult:
    start = time.monotonic()
    read_end, write_end = os.pipe()
    gc.freeze()  # the child's collector leaves the parent's objects (and their pages) alone
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 0
        try:
            os.close(read_end)
            os.chdir(command.folder)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            faulthandler.disable()  # pytest's would dump every deliberate crash
            # What C code writes to the descriptors (HDF5's diagnostics) is output too.
            sink = tempfile.TemporaryFile()  # noqa: SIM115 - lives until os._exit
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            _limit_memory(memory)
            try:
                payload = _invoke(command.program, command.args)
            except MemoryError:
                payload = {"exception": "MemoryError", "traceback": "MemoryError (in the runner)"}
            sink.seek(0)
            raw_output = sink.read(_TAIL).decode("utf-8", "replace")
            if raw_output.strip():
                payload["stderr"] = payload.get("stderr", "") + raw_output
            data = json.dumps(payload).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view) :]
        except BaseException:  # the runner itself failed: report it by the exit status
            status = 70
        finally:
            os._exit(status)
    gc.unfreeze()
    os.close(write_end)
    chunks: list[bytes] = []
    result = RawResult()
    deadline = start + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                result.timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([read_end], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_end, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    result.seconds = time.monotonic() - start
    if os.WIFSIGNALED(status) and not result.timed_out:
        result.signal = os.WTERMSIG(status)
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
        result.runner_error = f"the child exited with status {os.WEXITSTATUS(status)}"
    if chunks and not result.timed_out:
        try:
            payload = json.loads(b"".join(chunks))
        except ValueError:
            result.runner_error = "the child's report was cut short"
        else:
            result.exit_code = payload.get("exit_code")
            result.stdout = payload.get("stdout", "")
            result.stderr = payload.get("stderr", "")
            result.exception = payload.get("exception")
            result.traceback = payload.get("traceback", "")
    elif not result.timed_out and result.signal is None and result.runner_error is None:
        result.runner_error = "the child sent no result"
    return result


def run_subprocess(
    command: Command, timeout: float = TIMEOUT, memory: int = MEMORY + (1 << 30)
) -> RawResult:
    """The command in a fresh interpreter (``memory``: its whole address space)."""
    module = PROGRAMS.get(command.program, command.program)
    code = f"import sys; from {module} import main; main(prog_name={command.program!r})"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    start = time.monotonic()
    result = RawResult()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *command.args],
            cwd=command.folder,
            env=env,
            capture_output=True,
            timeout=timeout,
            preexec_fn=lambda: _limit_memory(memory, absolute=True),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        result.timed_out = True
        result.stderr = _tail((exc.stderr or b"").decode("utf-8", "replace"))
    else:
        if proc.returncode < 0:
            result.signal = -proc.returncode
        else:
            result.exit_code = proc.returncode
        result.stdout = _tail(proc.stdout.decode("utf-8", "replace"))
        result.stderr = _tail(proc.stderr.decode("utf-8", "replace"))
        if "Traceback (most recent call last)" in result.stderr:
            last = [line for line in result.stderr.splitlines() if line.strip()]
            result.exception = last[-1].split(":")[0] if last else "Exception"
            result.traceback = result.stderr
    result.seconds = time.monotonic() - start
    return result


RUNNERS = {"fork": run_forked, "subprocess": run_subprocess}


# --------------------------------------------------------------------------- watching


def snapshot(folder: Path, readonly: Sequence[Path] = ()) -> dict[str, Any]:
    """Every file under ``folder`` (size, mtime) and the sha256 of the read-only inputs."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            st = path.lstat()
            files[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    hashes = {str(p): _sha256(p) for p in readonly if p.is_file()}
    return {"files": files, "hashes": hashes}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _written(
    command: Command, before: Mapping[str, Any], after: Mapping[str, Any], ok: bool
) -> str:
    """What the command wrote that it must not have ("" when nothing)."""
    out = str(command.output.relative_to(command.folder)) if command.output else None
    new = sorted(set(after["files"]) - set(before["files"]))
    changed = sorted(
        k
        for k in before["files"]
        if k in after["files"] and before["files"][k] != after["files"][k]
    )
    gone = sorted(set(before["files"]) - set(after["files"]))
    if ok and out is not None:
        new = [k for k in new if k != out]
    problems = []
    if new:
        problems.append(f"new files {new[:3]}")
    if changed:
        problems.append(f"changed files {changed[:3]}")
    if gone:
        problems.append(f"removed files {gone[:3]}")
    for path, digest in before["hashes"].items():
        if after["hashes"].get(path) != digest:
            problems.append(f"input changed: {Path(path).name}")
    return "; ".join(problems)


# --------------------------------------------------------------------------- classifying


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def classify(
    command: Command,
    raw: RawResult,
    must_reject: bool,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> Outcome:
    text = raw.stderr + raw.stdout
    seconds = raw.seconds

    def outcome(kind: str, detail: str) -> Outcome:
        return Outcome(kind, raw.exit_code, detail[:300], raw.stderr, seconds)

    if raw.timed_out:
        return outcome("crash", f"timeout: still running after {raw.seconds:.0f}s")
    if raw.signal is not None:
        try:
            name = signal.Signals(raw.signal).name
        except ValueError:
            name = f"signal {raw.signal}"
        return outcome("crash", f"killed by {name}")
    if raw.exception == "MemoryError" or "MemoryError" in last_line(raw.traceback):
        return outcome("crash", "MemoryError: " + last_line(raw.traceback))
    if raw.runner_error is not None and raw.exit_code is None:
        return outcome("crash", raw.runner_error)
    if raw.exception is not None or "Traceback (most recent call last)" in text:
        return outcome("traceback", last_line(raw.traceback or text))
    accepted = raw.exit_code in command.ok_codes
    written = _written(command, before, after, accepted)
    if written:
        return outcome("written", written)
    if accepted:
        if must_reject:
            return outcome("silent_acceptance", f"exit {raw.exit_code}")
        return outcome("ok", f"exit {raw.exit_code}")
    message = raw.stderr.strip() or raw.stdout.strip()
    if raw.exit_code != 1:
        return outcome("unclear_error", f"exit {raw.exit_code}: {first_line(message)}")
    if "HDF5-DIAG" in text:
        return outcome("unclear_error", "HDF5's diagnostic dump in the output")
    if not message:
        return outcome("unclear_error", "exit 1 without a message")
    longest = max(len(line) for line in message.splitlines())
    if longest > MAX_LINE:
        return outcome("unclear_error", f"a message line of {longest} characters: {message[:120]}")
    if not any(name in message for name in command.nameable):
        return outcome("unclear_error", f"names no input file: {first_line(message)}")
    return outcome("clean_error", first_line(message))


def run(
    command: Command,
    must_reject: bool,
    mode: str = "fork",
    timeout: float = TIMEOUT,
    memory: int = MEMORY,
) -> Outcome:
    before = snapshot(command.folder, command.readonly)
    if mode == "fork":
        raw = run_forked(command, timeout, memory)
    else:
        raw = run_subprocess(command, timeout, memory + (1 << 30))
    after = snapshot(command.folder, command.readonly)
    return classify(command, raw, must_reject, before, after)
