"""``evalserver demo``'s quick refusals and guards (the whole job runs in the slow
``test_readme_demo.py``): torch stays out of the server's process, a port in use is said
before anything is made, a run folder the demo did not start is never overwritten, the
team's token file is its owner's only."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalserver.demo import CHECKPOINT, RUN_RECORD, Demo, DemoError, write_private
from evalserver.settings import Settings
from tests.evalserver.server.live import ROOT


def _demo(tmp_path: Path, run_dir: Path) -> Demo:
    demo = Demo(tmp_path / "x.h5", Settings(data_dir=tmp_path / "data"), run_dir, "x", "1s",
                say=lambda _: None)
    demo.bench = SimpleNamespace(fingerprint="f" * 64)  # type: ignore[assignment]
    return demo


def test_the_demo_module_does_not_import_torch() -> None:
    code = "import sys, evalserver.demo; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert out.stdout.strip() == "False"


def test_a_port_in_use_is_said_before_anything_is_made(tmp_path: Path) -> None:
    unified = tmp_path / "x.h5"
    unified.write_bytes(b"")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "evalserver.cli", "demo", str(unified), "--data-dir",
             str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
        )
    assert done.returncode == 1
    assert f"cannot serve on http://127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_a_run_folder_the_demo_did_not_start_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "someone-elses-run"
    run_dir.mkdir()
    (run_dir / CHECKPOINT).write_bytes(b"weights")
    with pytest.raises(DemoError, match="did not start"):
        _demo(tmp_path, run_dir).train()
    assert (run_dir / CHECKPOINT).read_bytes() == b"weights"


def test_a_finished_run_on_this_benchmark_is_not_trained_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CHECKPOINT).write_bytes(b"weights")
    record = {"state": "finished", "benchmark_fingerprint": "f" * 64, "summary": {"steps": 3}}
    (run_dir / RUN_RECORD).write_text(json.dumps(record))
    demo = _demo(tmp_path, run_dir)
    ran: list[tuple[str, ...]] = []
    demo._baseline = lambda *args: ran.append(args) or ""  # type: ignore[method-assign]
    demo.train()
    assert ran == []
    # Another benchmark (a rebuilt file), or a run interrupted before its end: trained again.
    for changed in ({"benchmark_fingerprint": "e" * 64}, {"state": "training"}):
        (run_dir / RUN_RECORD).write_text(json.dumps(record | changed))
        demo.train()
        assert ran[-1][:1] == ("train",) and "--time-budget" in ran[-1]
        assert json.loads((run_dir / RUN_RECORD).read_text())["state"] == "finished"


def test_the_token_file_is_its_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "demo" / "team.token"
    write_private(path, "secret\n")
    write_private(path, "another\n")  # replaced whole, still private
    assert path.read_text() == "another\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["team.token"]  # no temp file left
