"""``evalserver load``, ``team create`` and the schema check of the operator commands.

A benchmark version is its file's fingerprint: the same file again is a no-op that says so,
another build under the same name is the next version; the file is copied into the data
dir; phases follow the TaskSpecs, hidden per the split attributes; phases whose ground truth
the file lacks are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from evalserver.cli import main
from evalserver.db.migrate import upgrade
from evalserver.db.models import BenchmarkPhase, BenchmarkVersion, Team
from evalserver.db.session import make_engine, make_sessionmaker
from evalserver.teams import authenticate, hash_token
from tests.evalserver.server.api_support import database, rebuilt
from unify import tasks


@pytest.fixture(params=["sqlite", "postgresql"])
def data_dir(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A data dir and an upgraded database: SQLite in the data dir (the commands' default,
    no VL12_DATABASE_URL), or a private PostgreSQL database named by VL12_DATABASE_URL."""
    data = tmp_path / "data"
    monkeypatch.delenv("VL12_BROKER_URL", raising=False)
    monkeypatch.delenv("VL12_DATABASE_URL", raising=False)
    monkeypatch.setenv("VL12_DATA_DIR", str(data))
    with database(request.param, data) as url:
        if request.param != "sqlite":
            monkeypatch.setenv("VL12_DATABASE_URL", url)
        upgrade(url)
        yield data


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _url(data: Path) -> str:
    return os.environ.get("VL12_DATABASE_URL") or f"sqlite:///{data / 'vl12.db'}"


def versions(data: Path) -> list[BenchmarkVersion]:
    engine = make_engine(_url(data))
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.scalars(select(BenchmarkVersion).order_by(BenchmarkVersion.id)).all()
            for row in rows:
                row.phases  # noqa: B018  # loaded while the session is open
            return list(rows)
    finally:
        engine.dispose()


def test_load_registers_phases_copies_the_file_and_is_idempotent(
    data_dir: Path, tiny_h5: Path
) -> None:
    code, out, err = run("load", str(tiny_h5), "--name", "bench")
    assert code == 0, err
    assert "loaded as bench version 1" in out
    [bench] = versions(data_dir)
    copy = data_dir / bench.file_path
    assert copy == data_dir / "benchmarks" / f"{bench.fingerprint}.h5"
    assert copy.read_bytes() == tiny_h5.read_bytes()
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no temp left
    registered = {(p.task, p.phase) for p in bench.phases}
    # Every task of the build has its default phase (the sample answers them all).
    assert {t for t, _ in registered} == set(tasks.task_names())
    for task in tasks.task_names():
        assert (task, tasks.get(task).default_phase) in registered
    # Skipped phases are named with the reason, never with answers.
    assert "skipped vqa2/test" in out and "no answers" in out

    code, out, _ = run("load", str(tiny_h5), "--name", "bench")
    assert code == 0 and "already loaded as bench version 1" in out and "nothing to do" in out
    assert len(versions(data_dir)) == 1


def test_a_new_build_under_the_same_name_is_the_next_version(
    data_dir: Path, tiny_h5: Path, tmp_path: Path
) -> None:
    assert run("load", str(tiny_h5), "--name", "bench")[0] == 0
    other = rebuilt(tiny_h5, tmp_path / "second.h5", hidden=("vqa2", "minval"))
    code, out, err = run("load", str(other), "--name", "bench")
    assert code == 0, err
    assert "loaded as bench version 2" in out
    first, second = versions(data_dir)
    assert (first.version, second.version) == (1, 2)
    assert first.fingerprint != second.fingerprint
    assert (data_dir / first.file_path).exists() and (data_dir / second.file_path).exists()
    hidden = {(p.task, p.phase) for p in second.phases if p.hidden}
    assert hidden == {("vqa2", "minval")}
    assert not any(p.hidden for p in first.phases)


def test_the_name_defaults_to_the_file_stem(data_dir: Path, tiny_h5: Path) -> None:
    assert run("load", str(tiny_h5))[0] == 0
    assert [b.name for b in versions(data_dir)] == [tiny_h5.stem]


@pytest.mark.parametrize("content", [None, b"", b"not hdf5 at all"])
def test_a_bad_file_is_one_message_and_nothing_registered(
    data_dir: Path, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "bad.h5"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run("load", str(path))
    assert code == 1 and str(path) in err and "Traceback" not in err + out
    assert versions(data_dir) == []
    assert not (data_dir / "benchmarks").exists() or not list((data_dir / "benchmarks").iterdir())


def test_team_create_prints_the_token_once_and_stores_its_hash(data_dir: Path) -> None:
    code, out, err = run("team", "create", "<b>Team 'X'</b>")
    assert code == 0 and "shown once" in err
    token = out.strip()
    assert len(token) >= 40 and "\n" not in token
    engine = make_engine(_url(data_dir))
    try:
        with make_sessionmaker(engine)() as session:
            [team] = session.scalars(select(Team)).all()
            assert team.name == "<b>Team 'X'</b>" and team.token_hash == hash_token(token)
            assert token not in team.token_hash
            assert authenticate(session, token) is not None
            assert authenticate(session, token + "x") is None
    finally:
        engine.dispose()
    code, _, err = run("team", "create", "<b>Team 'X'</b>")
    assert code == 1 and "exists already" in err


@pytest.mark.parametrize(
    "command", [("load", "x.h5"), ("team", "create", "t"), ("api", "--port", "1")]
)
def test_commands_refuse_an_old_schema_naming_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.delenv("VL12_DATABASE_URL", raising=False)
    monkeypatch.setenv("VL12_DATA_DIR", str(tmp_path / "empty"))
    code, _, err = run(*command)
    assert code == 1 and "evalserver db upgrade" in err
    # Asking did not create a database file.
    assert not (tmp_path / "empty" / "vl12.db").exists()


def test_phase_rows_match_the_loaded_benchmark(data_dir: Path, tiny_h5: Path) -> None:
    run("load", str(tiny_h5))
    [bench] = versions(data_dir)
    for phase in bench.phases:
        assert isinstance(phase, BenchmarkPhase)
        spec = tasks.get(phase.task)
        assert tuple(phase.splits) == spec.phase(phase.phase).splits
        assert phase.num_examples > 0


def test_two_loads_of_one_file_at_once_make_one_version(data_dir: Path, tiny_h5: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from evalserver.benchmarks import load_benchmark

    engine = make_engine(_url(data_dir))
    sessions = make_sessionmaker(engine)

    def one(_: int) -> bool:
        with sessions() as session:
            return load_benchmark(session, data_dir, tiny_h5, "bench").created

    try:
        with ThreadPoolExecutor(max_workers=2) as threads:
            created = list(threads.map(one, range(2)))
    finally:
        engine.dispose()
    assert sorted(created) == [False, True]
    assert len(versions(data_dir)) == 1


def test_a_public_copy_is_refused(data_dir: Path, tiny_h5: Path, tmp_path: Path) -> None:
    import h5py

    public = rebuilt(tiny_h5, tmp_path / "public.h5")
    with h5py.File(public, "r+") as h5:
        h5.attrs["published_from"] = "0" * 64
    code, _, err = run("load", str(public))
    assert code == 1 and "public copy" in err and "organiser build" in err
    assert versions(data_dir) == []
