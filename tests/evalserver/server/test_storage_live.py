"""End to end on S3: ``evalserver load``, ``evalserver api`` and a real ``evalserver
worker`` as separate processes sharing nothing but URLs and credentials (the worker has its
own empty data dir, as on another host), the storage a moto server. A submission is scored;
then the retention cleanup and a backup copy run as the operator runs them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalserver.client import Client
from evalserver.db.models import Status
from tests.evalserver.server.api_support import submission
from tests.evalserver.server.live import Live, Services, make_live, services
from tests.evalserver.server.s3stub import S3Server, s3_server

__all__ = ["s3_server", "services"]  # fixtures used here

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path, services: Services) -> Iterator[Live]:
    running = make_live("sqlite", services, tmp_path / "api-host")
    try:
        yield running
    finally:
        running.close()


def _run(live: Live, *args: str, data_dir: Path | None = None) -> str:
    env = live.env | ({"VL12_DATA_DIR": str(data_dir)} if data_dir else {})
    done = subprocess.run(
        [sys.executable, "-m", "evalserver.cli", *args], env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_api_and_a_worker_on_another_host_score_through_s3(
    live: Live, s3_server: S3Server, tiny_h5: Path, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    live.extra_env = s3_server.env(bucket)
    out = _run(live, "load", str(tiny_h5), "--name", "tiny")
    assert "loaded as tiny version 1" in out
    token = live.team_token("alpha")
    url = live.api()
    worker_host = tmp_path / "worker-host"  # nothing shared with the API's data dir
    worker_host.mkdir()
    live.worker(env={"VL12_DATA_DIR": str(worker_host)})

    content = submission(tiny_h5, seed=3)
    upload = tmp_path / "predictions.json"
    upload.write_bytes(content)
    row = Client(url, token).submit(upload, "vqa2", None, "m", "", public=True)
    (scored,) = live.wait(row["id"], timeout=90)
    assert scored.status == Status.scored, (scored.error, live.logs())
    assert scored.result is not None and scored.result["metrics"]

    keys = s3_server.keys(bucket)
    for key in (scored.file_path, scored.validated_path, scored.arrays_path):
        assert f"vl12/{key}" in keys
    # The worker fetched the benchmark once into its own cache; neither host kept uploads.
    assert [p.parent.name for p in (worker_host / "cache").rglob("*.h5")] == ["benchmarks"]
    for host in (live.data_dir, worker_host):
        assert not [p for p in (host / "uploads").rglob("*") if p.is_file()]
        assert not (host / "results").exists()

    # Retention: the upload goes, its validated form and results stay; then nothing more.
    out = _run(live, "storage", "cleanup", "--days", "0")
    assert f"deleted {scored.file_path}" in out
    assert "deleted 1 expired upload(s) and 0 orphaned file(s)" in out
    keys = s3_server.keys(bucket)
    assert f"vl12/{scored.file_path}" not in keys
    assert f"vl12/{scored.validated_path}" in keys and f"vl12/{scored.arrays_path}" in keys
    assert "deleted 0 expired upload(s)" in _run(live, "storage", "cleanup", "--days", "0")

    # Backup of the bucket into a folder; a second run copies nothing.
    backup = tmp_path / "backup"
    out = _run(live, "storage", "copy", "--to", backup.as_uri())
    assert "copied 3 file(s)" in out
    assert (backup / scored.arrays_path).read_bytes()
    assert "copied 0 file(s)" in _run(live, "storage", "copy", "--to", backup.as_uri())
