"""Limits of the upload path and the team quotas, through the API (no worker).

Hostile and broken files (a gzip bomb, a truncated gzip, a file of another kind or for
another task, an empty file) are each one clear error; validation past its memory or time
limit is 413 naming the setting; quotas are 429 naming the limit, with ``Retry-After``
when waiting helps; failed and cancelled rows give their place back. After every refusal
nothing is stored and the server still accepts a good file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from evalserver.db.models import Status, Submission
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.quotas import CONCURRENT_RETRY_S
from tests.evalserver.server.api_support import (
    TASK,
    Server,
    boards,
    running_server,
    submission,
    validation_pool,
)
from unify import tasks

__all__ = ["validation_pool"]  # a fixture used here


def _rows(server: Server) -> list[Submission]:
    with server.sessions() as session:
        return list(session.scalars(select(Submission)))


def _stored_files(server: Server) -> list[Path]:
    root = server.settings.uploads_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _healthy(server: Server, seed: int) -> None:
    """The server still answers and accepts a good file."""
    health = server.client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["database"]["ok"] is True, health.text
    good = server.submit("alpha", submission(server.gt_path, seed=seed))
    assert good.status_code == 201, good.text


@pytest.fixture
def server(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> Iterator[Server]:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, max_decompressed_bytes=1 << 20
    ) as running:
        yield running


def _other_task_file(server: Server) -> tuple[str, bytes]:
    """A valid file of another task whose default phase is loaded."""
    loaded = boards(server.sessions)
    other = next(
        t for t in tasks.task_names() if t != TASK and (t, tasks.get(t).default_phase) in loaded
    )
    return other, chance_submission(load_groundtruth(server.gt_path, other), seed=1)


def test_broken_and_hostile_files_are_each_one_clear_error(server: Server) -> None:
    good = submission(server.gt_path, seed=1)
    packed = gzip.compress(good)
    other, other_file = _other_task_file(server)
    cases = {
        "a gzip bomb": (gzip.compress(b" " * (8 << 20)), "decompress"),
        "a truncated gzip": (packed[: len(packed) // 2], "gzip"),
        "an empty file": (b"", "empty"),
        "an empty gzip": (gzip.compress(b""), "empty"),
        "an HDF5 file": (server.gt_path.read_bytes()[:4096], "HDF5"),
        "a PNG image": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG"),
        f"a file for {other}": (other_file, ""),
    }
    for case, (content, needle) in cases.items():
        response = server.submit("alpha", content, name="predictions.json")
        assert response.status_code == 422, (case, response.text)
        detail = response.json()["detail"]
        assert "not stored" in detail["message"], case
        text = " ".join(p["text"] for p in detail["problems"])
        assert needle.lower() in text.lower(), (case, text)
        assert _rows(server) == [] and _stored_files(server) == [], case
    _healthy(server, seed=2)


def test_a_gzip_bomb_names_the_decompressed_limit(server: Server) -> None:
    bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]")  # 64 MiB in about 64 KiB
    response = server.submit("alpha", bomb)
    assert response.status_code == 422
    text = response.json()["detail"]["problems"][0]["text"]
    assert "decompress" in text and ("1 MiB" in text or "expansion" in text), text
    assert _rows(server) == [] and _stored_files(server) == []


def test_a_wrong_content_type_is_400_and_leaves_nothing(server: Server) -> None:
    url = "/api/v1/submissions"
    content = submission(server.gt_path, seed=3)
    for kind in ("application/json", "application/gzip", "text/plain", "multipart/form-data"):
        response = server.client.post(
            url, headers=server.auth("alpha") | {"Content-Type": kind}, content=content
        )
        assert response.status_code == 400, (kind, response.text)
        assert "multipart/form-data" in response.json()["detail"]
    assert _rows(server) == [] and _stored_files(server) == []
    _healthy(server, seed=4)


def test_validation_past_its_memory_limit_is_413_naming_it(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, validation_memory_mb=8
    ) as server:
        # 24 MiB of JSON read into memory: more than the 8 MB the validation may add.
        response = server.submit("alpha", b"[" + b" " * (24 << 20) + b"]")
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert "limit of 8 MB" in detail and "VL12_VALIDATION_MEMORY_MB" in detail
        assert _rows(server) == [] and _stored_files(server) == []
        # The validation process lived on; a small file fits the limit.
        _healthy(server, seed=5)


def test_validation_past_its_time_limit_is_413_naming_it(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, validation_time_limit_s=0.001
    ) as server:
        response = server.submit("alpha", submission(server.gt_path, seed=6))
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert "longer than the server's limit of 0.001 s" in detail
        assert "VL12_VALIDATION_TIME_LIMIT_S" in detail
        assert _rows(server) == [] and _stored_files(server) == []
        # The timer was cleared: the process validates the next file normally.
        server.settings.validation_time_limit_s = 60.0
        _healthy(server, seed=7)


def _set_status(server: Server, sub_id: str, status: Status, age: timedelta | None = None) -> None:
    values: dict[str, object] = {"status": status}
    with server.sessions() as session:
        if age is not None:
            row = session.get_one(Submission, sub_id)
            values["created_at"] = row.created_at - age
        session.execute(update(Submission).where(Submission.id == sub_id).values(**values))
        session.commit()


def test_concurrent_submissions_per_team_are_429_with_retry_after(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    with running_server(
        "sqlite", tmp_path / "data", tiny_h5, validation_pool, max_concurrent=3
    ) as server:
        answers = [server.submit("alpha", submission(server.gt_path, seed=s)) for s in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        for refused in answers[3:]:
            assert refused.headers["Retry-After"] == str(CONCURRENT_RETRY_S)
            detail = refused.json()["detail"]
            assert "limit of 3 at once" in detail and "VL12_MAX_CONCURRENT" in detail
        # Refused before the body is read: a body that is not even a form is 429, not 400.
        early = server.client.post("/api/v1/submissions", headers=server.auth("alpha"),
                                   content=b"x" * 1000)
        assert early.status_code == 429 and early.headers["Retry-After"]
        # Another team is not affected.
        assert server.submit("beta", submission(server.gt_path, seed=0)).status_code == 201
        # A finished, a failed and a cancelled run free their places.
        ids = [a.json()["id"] for a in answers[:3]]
        _set_status(server, ids[0], Status.scored)
        _set_status(server, ids[1], Status.failed)
        cancel = server.client.post(f"/api/v1/submissions/{ids[2]}/cancel",
                                    headers=server.auth("alpha"))
        assert cancel.status_code == 200
        again = [server.submit("alpha", submission(server.gt_path, seed=s)) for s in range(3, 7)]
        assert [a.status_code for a in again] == [201, 201, 201, 429]
        assert len(_rows(server)) == 7  # 3 + beta's + 3; nothing of the refused ones
        assert sorted({p.parent.name for p in _stored_files(server)}) == sorted(
            r.id for r in _rows(server)
        )


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_daily_quota_counts_neither_failed_nor_cancelled_runs(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor, db: str
) -> None:
    with running_server(
        db, tmp_path / "data", tiny_h5, validation_pool, quota_per_day=2
    ) as server:
        first = server.submit("alpha", submission(server.gt_path, seed=1)).json()["id"]
        second = server.submit("alpha", submission(server.gt_path, seed=2)).json()["id"]
        _set_status(server, first, Status.scored, age=timedelta(hours=20))
        _set_status(server, second, Status.scored, age=timedelta(hours=1))
        refused = server.submit("alpha", submission(server.gt_path, seed=3))
        assert refused.status_code == 429
        detail = refused.json()["detail"]
        assert "2 submission(s) per 24 hours" in detail and "VL12_QUOTA_PER_DAY" in detail
        assert f"{TASK}, phase {tasks.get(TASK).default_phase} of tiny version 1" in detail
        # The place frees when the first leaves the window: in 4 hours.
        wait = int(refused.headers["Retry-After"])
        assert 4 * 3600 - 60 <= wait <= 4 * 3600
        # A failed run gives its place back; a run older than 24 hours no longer counts.
        _set_status(server, second, Status.failed)
        third = server.submit("alpha", submission(server.gt_path, seed=3))
        assert third.status_code == 201
        assert server.submit("alpha", submission(server.gt_path, seed=4)).status_code == 429
        _set_status(server, first, Status.scored, age=timedelta(hours=5))
        assert server.submit("alpha", submission(server.gt_path, seed=4)).status_code == 201
        # Other boards and other teams have their own count.
        other, content = _other_task_file(server)
        assert server.submit("alpha", content, task=other).status_code == 201
        assert server.submit("beta", submission(server.gt_path, seed=5)).status_code == 201


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_total_quota_is_429_without_retry_after(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor, db: str
) -> None:
    with running_server(
        db, tmp_path / "data", tiny_h5, validation_pool, quota_total=2
    ) as server:
        ids = [server.submit("alpha", submission(server.gt_path, seed=s)).json()["id"]
               for s in (1, 2)]
        refused = server.submit("alpha", submission(server.gt_path, seed=3))
        assert refused.status_code == 429 and "Retry-After" not in refused.headers
        detail = refused.json()["detail"]
        assert "its 2 submission(s) in total" in detail and "VL12_QUOTA_TOTAL" in detail
        _set_status(server, ids[0], Status.cancelled)
        assert server.submit("alpha", submission(server.gt_path, seed=3)).status_code == 201
        assert server.submit("alpha", submission(server.gt_path, seed=4)).status_code == 429


def test_a_memory_limit_holds_inside_its_block_and_is_restored_after() -> None:
    import resource

    import numpy as np

    from evalserver.rlimits import MemoryLimit

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(MemoryError), MemoryLimit(16):
        np.ones(256 << 20, np.uint8)  # 256 MiB past a limit of 16 MB
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert int(np.ones(256 << 20, np.uint8)[-1]) == 1  # the same allocation, after
    with MemoryLimit(0):  # no limit
        assert resource.getrlimit(resource.RLIMIT_AS) == before
