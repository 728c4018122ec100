"""The storage interface, the same checks on both backends: a folder and an S3 bucket
(moto's server mode in its own process). Then the API with an S3 storage: an accepted
upload and its validated form are in the bucket and nowhere on the API's disk; a rejected
one leaves nothing in either."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from evalserver.db.models import BenchmarkVersion, Submission
from evalserver.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    check_key,
    storage_from_url,
)
from tests.evalserver.server.api_support import running_server, submission, validation_pool
from tests.evalserver.server.s3stub import KEY_ID, REGION, SECRET, S3Server, s3_server

__all__ = ["s3_server", "validation_pool"]  # fixtures used here


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "folder":
        yield LocalStorage(tmp_path / "store")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    yield S3Storage(
        bucket, "pre/fix", tmp_path / "cache", endpoint_url=server.endpoint, region=REGION,
        access_key_id=KEY_ID, secret_access_key=SECRET,
    )


def test_put_read_list_delete(store: Storage, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00\x01" * 1000)
    assert not store.exists("uploads/a/upload")
    store.put_file("uploads/a/upload", source)
    store.put_file("uploads/a/validated.npz", source)
    store.put_file("uploads/b/upload", source)
    assert store.exists("uploads/a/upload")
    with store.reading("uploads/a/upload") as local:
        assert local.read_bytes() == source.read_bytes()
    listed = {obj.key: obj.size for obj in store.list("uploads")}
    assert listed == {"uploads/a/upload": 2000, "uploads/a/validated.npz": 2000,
                      "uploads/b/upload": 2000}
    assert list(store.list("upload")) == []  # a prefix is a folder, not a string prefix
    assert store.delete("uploads/a/upload") is True
    assert store.delete("uploads/a/upload") is False
    assert store.delete_prefix("uploads/a") == 1
    assert [obj.key for obj in store.list("uploads")] == ["uploads/b/upload"]


def test_new_file_is_stored_whole_or_not_at_all(store: Storage) -> None:
    with store.new_file("results/x/attempt-1.npz") as path:
        assert path.name.endswith(".npz")  # numpy would add .npz to any other name
        path.write_bytes(b"complete")
    with pytest.raises(RuntimeError), store.new_file("results/x/attempt-2.npz") as path:
        path.write_bytes(b"half")
        raise RuntimeError("the scorer stopped")
    assert store.exists("results/x/attempt-1.npz")
    assert not store.exists("results/x/attempt-2.npz")
    assert [o.key for o in store.list("results")] == ["results/x/attempt-1.npz"]


def test_local_path_of_an_unchanging_file_is_fetched_once(store: Storage, tmp_path: Path) -> None:
    source = tmp_path / "bench.h5"
    source.write_bytes(b"h5 content")
    store.put_file("benchmarks/abc.h5", source)
    first = store.local_path("benchmarks/abc.h5")
    assert first.read_bytes() == b"h5 content"
    before = first.stat().st_mtime_ns
    assert store.local_path("benchmarks/abc.h5") == first
    assert first.stat().st_mtime_ns == before  # not downloaded again
    with pytest.raises(StorageError, match=r"no file benchmarks/missing\.h5") as missing:
        store.local_path("benchmarks/missing.h5")
    assert not missing.value.transient
    with pytest.raises(StorageError, match="no file"), store.reading("uploads/none/upload"):
        pass


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "uploads/../../x", "a\\b", "a\x00"])
def test_keys_cannot_leave_the_storage(store: Storage, key: str) -> None:
    with pytest.raises(StorageError, match="not a storage key"):
        check_key(key)
    with pytest.raises(StorageError, match="not a storage key"):
        store.exists(key)


def test_storage_urls(tmp_path: Path) -> None:
    assert isinstance(storage_from_url(None, tmp_path), LocalStorage)
    assert storage_from_url(None, tmp_path).root == tmp_path
    assert storage_from_url(f"file://{tmp_path}/x", tmp_path).root == tmp_path / "x"
    s3 = storage_from_url("s3://bucket/a/b/", tmp_path)
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "a/b", "s3://bucket/a/b")
    assert s3.object_key("uploads/x") == "a/b/uploads/x"
    for bad, why in [("ftp://h/x", "unknown storage"), ("s3:///x", "no bucket"),
                     ("file://host/x", "local path"), ("relative/x", "absolute")]:
        with pytest.raises(StorageError, match=why):
            storage_from_url(bad, tmp_path)


def test_an_unreachable_s3_is_one_message_without_credentials(tmp_path: Path) -> None:
    from tests.evalserver.services import free_port

    store = S3Storage("b", "", tmp_path, endpoint_url=f"http://127.0.0.1:{free_port()}",
                      region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET)
    store.client.meta.config.retries["max_attempts"] = 1
    with pytest.raises(StorageError) as caught:
        store.exists("uploads/x/upload")
    assert str(caught.value).startswith("s3://b: uploads/x/upload: ")
    assert SECRET not in str(caught.value)
    assert caught.value.transient  # the worker retries; the submission is not failed


# --------------------------------------------------------------------------- the API on S3


def test_api_with_s3_storage_keeps_nothing_on_its_disk(
    tmp_path: Path, tiny_h5: Path, s3_server: S3Server, validation_pool: ProcessPoolExecutor
) -> None:
    bucket = s3_server.new_bucket()
    env = s3_server.env(bucket)
    settings = {k.removeprefix("VL12_").lower(): v for k, v in env.items()}
    data = tmp_path / "data"
    with running_server("sqlite", data, tiny_h5, validation_pool, **settings) as server:
        with server.sessions() as session:
            bench = session.scalars(select(BenchmarkVersion)).one()
            bench_key = f"vl12/{bench.file_path}"
        assert not (data / "benchmarks").exists()  # loaded into the bucket, not the data dir
        good = server.submit("alpha", submission(tiny_h5, seed=1))
        assert good.status_code == 201, good.text
        bad = server.submit("alpha", b'[{"question_id": 1}]')
        assert bad.status_code == 422
        with server.sessions() as session:
            row = session.scalars(select(Submission)).one()
        assert s3_server.keys(bucket) == sorted(
            [bench_key, f"vl12/{row.file_path}", f"vl12/{row.validated_path}"]
        )
        leftovers = [p for p in (data / "uploads").rglob("*") if p.is_file()]
        assert leftovers == []
        # The benchmark was fetched once into the API's cache, by its fingerprint.
        assert (data / "cache" / bench.file_path).is_file()
        assert len(server.sent()) == 1

        # The bucket gone: the upload is refused with 503, nothing kept, no row, no message.
        client = s3_server.client()
        for key in s3_server.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
        client.delete_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        lost = server.submit("alpha", submission(tiny_h5, seed=2))
        assert lost.status_code == 503, lost.text
        assert "cannot store files" in lost.json()["detail"] and bucket not in lost.text
        with server.sessions() as session:
            assert len(session.scalars(select(Submission)).all()) == 1
        assert not [p for p in (data / "uploads").rglob("*") if p.is_file()]
        assert server.sent() == []


# --------------------------------------------------------------------------- retention


def test_cleanup_deletes_expired_uploads_and_old_orphans_only(
    tmp_path: Path, tiny_h5: Path, validation_pool: ProcessPoolExecutor
) -> None:
    from datetime import timedelta

    from evalserver.db.models import Status, utcnow
    from evalserver.retention import cleanup_uploads
    from evalserver.storage import make_storage

    data = tmp_path / "data"
    with running_server("sqlite", data, tiny_h5, validation_pool) as server:
        ids = [server.submit("alpha", submission(tiny_h5, seed=s)).json()["id"] for s in (1, 2, 3)]
        now = utcnow()
        with server.sessions() as session:
            old, recent, waiting = (session.get_one(Submission, i) for i in ids)
            old.status, old.finished_at = Status.scored, now - timedelta(days=10)
            recent.status, recent.finished_at = Status.failed, now - timedelta(days=2)
            waiting.created_at = now - timedelta(days=30)  # still queued: never touched
            session.commit()
            paths = {i: (session.get_one(Submission, i).file_path,
                         session.get_one(Submission, i).validated_path) for i in ids}
        stale = data / "uploads" / "crashed" / "upload.part"
        fresh = data / "uploads" / "arriving" / "upload.part"
        for orphan in (stale, fresh):
            orphan.parent.mkdir(parents=True)
            orphan.write_bytes(b"x" * 10)
        day_ago = (now - timedelta(days=2)).timestamp()
        os.utime(stale, (day_ago, day_ago))
        store = make_storage(server.settings)
        engine = server.sessions.kw["bind"]

        expired_size = (data / paths[ids[0]][0]).stat().st_size
        dry = cleanup_uploads(engine, store, 7, dry_run=True)
        assert dry.expired == [paths[ids[0]][0]]
        assert dry.orphans == ["uploads/crashed/upload.part"]
        assert stale.exists() and (data / paths[ids[0]][0]).exists()

        done = cleanup_uploads(engine, store, 7)
        assert (done.expired, done.orphans) == (dry.expired, dry.orphans)
        assert done.freed_bytes == expired_size + 10
        assert not (data / paths[ids[0]][0]).exists() and not stale.exists()
        assert fresh.exists()
        for sub_id in ids:  # validated forms are kept; so are the others' uploads
            assert (data / paths[sub_id][1]).exists()
        assert (data / paths[ids[1]][0]).exists() and (data / paths[ids[2]][0]).exists()
        again = cleanup_uploads(engine, store, 7)
        assert (again.expired, again.orphans) == ([], [])
        assert cleanup_uploads(engine, store, None).expired == []  # unset: kept for ever


def test_storage_commands_fail_with_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from evalserver.cli import main
    from tests.evalserver.services import free_port

    runner = CliRunner()
    env = {"VL12_DATA_DIR": str(tmp_path), "VL12_STORAGE_URL": ""}
    both = runner.invoke(main, ["storage", "copy", "--from", "s3://a", "--to", "s3://b"], env=env)
    assert both.exit_code == 2 and "exactly one of --from URL and --to URL" in both.output
    same = runner.invoke(main, ["storage", "copy", "--to", tmp_path.as_uri()], env=env)
    assert same.exit_code == 2 and "the same storage" in same.output
    bad = runner.invoke(main, ["storage", "copy", "--to", "ftp://x/y"], env=env)
    assert (bad.exit_code, bad.output.strip()) == (
        1, "ftp://x/y: unknown storage (use file:///path or s3://bucket/prefix)"
    )
    down = runner.invoke(
        main, ["storage", "copy", "--to", "s3://bucket/p"],
        env=env | {"VL12_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                   "VL12_S3_ACCESS_KEY_ID": KEY_ID, "VL12_S3_SECRET_ACCESS_KEY": SECRET,
                   "VL12_S3_REGION": REGION, "AWS_MAX_ATTEMPTS": "1"},
    )
    assert down.exit_code == 1 and down.output.startswith("s3://bucket/p: benchmarks: ")
    assert len(down.output.strip().splitlines()) == 1 and SECRET not in down.output
