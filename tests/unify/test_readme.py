"""README's set-up command: its `unify` steps work, and work again when run a second time.

The command is read from README.md itself (``tests/readme.py``), so the README cannot
change without this test running what it says. Installing (venv, pip) is left out here;
`.ci/run` installs the same way, and installing twice is pip's business. The command's last
step, ``evalserver demo``, serves until stopped: ``tests/evalserver/test_readme_demo.py``
(slow) runs the whole command, that step included, twice.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.readme import demo_step, setup_command, steps, unify_steps
from unify.cli import main


def test_install_step_uses_the_constraints() -> None:
    assert " -c constraints.txt -e '.[all]' " in setup_command()


def test_the_command_builds_with_the_organiser_answers_then_serves_them() -> None:
    """The sample's leaderboards score hidden splits: the build must include their answers,
    and the demo must serve the file that build wrote."""
    command = setup_command()
    programs = [program for program, _ in steps(command)]
    assert programs[-1] == "evalserver" and programs.count("evalserver") == 1
    (sample,) = [a for a in unify_steps(command) if a[0] == "sample"]
    (build,) = [a for a in unify_steps(command) if a[0] == "build"]
    out = sample[sample.index("--out") + 1]
    assert build[build.index("--raw") + 1] == out
    assert build[build.index("--organiser") + 1] == f"{out}/organiser"
    demo = demo_step(command)
    assert demo[1] == build[build.index("--out") + 1]
    assert "--data-dir" in demo and "--run" in demo


def test_setup_command_runs_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unify = unify_steps(setup_command())
    assert [s[0] for s in unify][:2] == ["sample", "build"] and unify[-1][0] == "info"
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for attempt in (1, 2):
        for args in unify:
            result = runner.invoke(main, args)
            where = f"run {attempt}: unify {shlex.join(args)}"
            assert result.exit_code == 0, f"{where}: {result.stderr}"
            assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "bottomup_nlvr2" in result.stdout  # info lists the four imported feature sets
