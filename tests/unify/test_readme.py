"""README's set-up command: its `unify` steps work, and work again when run a second time.

The command is read from README.md itself (the first ``sh`` block), so the README cannot
change without this test running what it says. Installing (venv, pip) is left out here;
`.ci/run` installs the same way, and installing twice is pip's business.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from unify.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
UNIFY = ".venv/bin/unify"


def setup_command() -> str:
    match = re.search(r"```sh\n(.*?)\n```", README.read_text(encoding="utf-8"), flags=re.S)
    assert match is not None, "README.md has no sh block"
    return match.group(1).strip()


def unify_steps(command: str) -> list[list[str]]:
    """The `unify` invocations of an `a && b && for v in x y; do c $v; done && d` line."""
    steps: list[list[str]] = []
    for part in command.split(" && "):
        loop = re.fullmatch(r"for (\w+) in ([^;]+); do (.+); done", part)
        if loop:
            var, values, body = loop.groups()
            for value in values.split():
                steps += unify_steps(body.replace(f"${var}", value))
            continue
        words = shlex.split(part)
        if words[0] == UNIFY:
            steps.append(words[1:])
        else:
            assert words[0] in ("python3", ".venv/bin/pip"), f"unexpected step: {part}"
    return steps


def test_install_step_uses_the_constraints() -> None:
    assert " -c constraints.txt -e '.[all]' " in setup_command()


def test_setup_command_runs_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = unify_steps(setup_command())
    assert [s[0] for s in steps][:2] == ["sample", "build"] and steps[-1][0] == "info"
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for attempt in (1, 2):
        for args in steps:
            result = runner.invoke(main, args)
            where = f"run {attempt}: unify {shlex.join(args)}"
            assert result.exit_code == 0, f"{where}: {result.stderr}"
            assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "bottomup_nlvr2" in result.stdout  # info lists the four imported feature sets
