"""The README's set-up command, read from README.md itself (its first ``sh`` block), so the
README cannot change without the tests running what it says.

The command is ``a && b && for v in x y; do c $v; done && d``: install (``python3 -m venv``,
``.venv/bin/pip``), the ``unify`` steps, then ``evalserver demo``, which serves until
stopped. ``steps`` returns every step after the install as ``(program, args)``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
UNIFY = ".venv/bin/unify"
EVALSERVER = ".venv/bin/evalserver"
INSTALL = ("python3", ".venv/bin/pip")


def setup_command() -> str:
    match = re.search(r"```sh\n(.*?)\n```", README.read_text(encoding="utf-8"), flags=re.S)
    assert match is not None, "README.md has no sh block"
    return match.group(1).strip()


def steps(command: str) -> list[tuple[str, list[str]]]:
    """``(program, args)`` of each step after the install, loops unrolled; programs are
    ``unify`` or ``evalserver`` (anything else is an error: the README runs what is here)."""
    found: list[tuple[str, list[str]]] = []
    for part in command.split(" && "):
        loop = re.fullmatch(r"for (\w+) in ([^;]+); do (.+); done", part)
        if loop:
            var, values, body = loop.groups()
            for value in values.split():
                found += steps(body.replace(f"${var}", value))
            continue
        words = shlex.split(part)
        if words[0] == UNIFY:
            found.append(("unify", words[1:]))
        elif words[0] == EVALSERVER:
            found.append(("evalserver", words[1:]))
        else:
            assert words[0] in INSTALL, f"unexpected step: {part}"
    return found


def unify_steps(command: str) -> list[list[str]]:
    """The README's `unify` steps (they finish; the final `evalserver demo` serves)."""
    return [args for program, args in steps(command) if program == "unify"]


def demo_step(command: str) -> list[str]:
    """The args of the README's last step, ``evalserver demo ...``."""
    program, args = steps(command)[-1]
    assert program == "evalserver" and args[0] == "demo", f"last step: {program} {args}"
    return args
