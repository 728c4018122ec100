"""Where the server's files live: uploads, validated forms, per-example arrays and benchmark
files, all through one interface, so that the API and workers on several hosts share them
by a URL and credentials only.

* ``file:///path`` (``LocalStorage``): a folder, by default the data dir itself (the layout
  of one machine); a shared file system for several hosts.
* ``s3://bucket/prefix`` (``S3Storage``): any S3-compatible object store (AWS, MinIO,
  Ceph...), through boto3.

A file is named by its key, a relative POSIX path (``uploads/<id>/upload``,
``benchmarks/<fingerprint>.h5``, ``results/<id>/attempt-1.npz``); the database rows hold
keys, never a host's paths, so the backend can change without touching them. Every write
appears whole or not at all. h5py and numpy need local files: ``local_path`` gives one (the
file itself for a folder; for S3 a copy in the host's cache, downloaded once: benchmark
files are named by their fingerprint and never rewritten).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from evalserver.settings import Settings

__all__ = [
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredObject",
    "check_key",
    "make_storage",
    "storage_from_url",
]

#: Chunk of a local copy.
_COPY_CHUNK = 1 << 22


class StorageError(Exception):
    """A storage that cannot be used (bad URL, unreachable, missing file): the message
    names the storage and the key, never credentials. ``transient``: the store did not
    answer or answered a server error (worth trying again later), not a missing file or a
    refusal."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """A key is a relative POSIX path without ``..``: no key can leave the storage."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key or "\x00" in key:
        raise StorageError(f"not a storage key: {key!r}")
    return path.as_posix()


class Storage(Protocol):
    """What the server needs of a place for its files."""

    #: The URL it was made from (``file:///...`` or ``s3://bucket/prefix``), for messages.
    url: str

    def put_file(self, key: str, source: Path) -> None:
        """Store a copy of the local file ``source`` under ``key`` (whole or not at all)."""

    def new_file(self, key: str) -> AbstractContextManager[Path]:
        """A local path to write ``key``'s content to; stored when the block ends without an
        error, discarded otherwise. Its name ends like the key (numpy keeps ``.npz``)."""

    def reading(self, key: str) -> AbstractContextManager[Path]:
        """A local path holding ``key``'s content for the duration of the block."""

    def local_path(self, key: str) -> Path:
        """A local file with ``key``'s content that stays (the file itself, or a copy
        in the cache downloaded once): for files that never change (benchmarks)."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; False when there was nothing to remove."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix/``; how many."""

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every key under ``prefix/`` (any depth)."""

    def holds(self, key: str, path: Path) -> bool:
        """Whether ``path`` IS the stored file of ``key`` (a folder storage whose root is
        the data dir stores an upload where it was received: nothing to copy or remove)."""


# --------------------------------------------------------------------------- folder


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalStorage:
    """A folder (local disk, or NFS/CephFS/... shared by every host)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri() if self.root.is_absolute() else str(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def holds(self, key: str, path: Path) -> bool:
        mine = self.path(key)
        # The same spelling needs no system call (the default: the data dir is the
        # storage); this runs a few times per upload.
        if mine == Path(path):
            return True
        try:
            return mine.resolve() == Path(path).resolve()
        except OSError:
            return False

    @contextlib.contextmanager
    def new_file(self, key: str) -> Iterator[Path]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(PurePosixPath(key).suffixes) or ".tmp"
        tmp = target.parent / f".writing-{uuid.uuid4().hex}{suffix}"
        try:
            yield tmp
            # Readable by workers running as other users (mkstemp-like files are private).
            os.chmod(tmp, 0o644)
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> None:
        if self.holds(key, source):
            return
        with self.new_file(key) as tmp, Path(source).open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, _COPY_CHUNK)

    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        yield self.local_path(key)

    def local_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise StorageError(f"{self.url}: no file {key}")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        # An emptied folder (uploads/<id>/) goes too; a shared one stays.
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        return True

    def delete_prefix(self, prefix: str) -> int:
        folder = self.path(prefix)
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def list(self, prefix: str) -> Iterator[StoredObject]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith(".writing-"):
                stat = path.stat()
                yield StoredObject(
                    path.relative_to(self.root).as_posix(),
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, UTC),
                )


# --------------------------------------------------------------------------- S3


class S3Storage:
    """An S3-compatible bucket under a key prefix. Downloads of files that never change
    go to ``cache_dir`` once per host (a lock file: parallel worker processes download
    once); other reads go to temporary files there, removed after use."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        cache_dir: Path,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = Path(cache_dir)
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
        }
        self._client: Any = None
        self._client_pid = 0

    @property
    def client(self) -> Any:
        """A boto3 client per process (a forked worker process makes its own)."""
        if self._client is None or self._client_pid != os.getpid():
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
                **self._options,
            )
            self._client_pid = os.getpid()
        return self._client

    def object_key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, key: str, exc: Exception) -> StorageError:
        from botocore.exceptions import ClientError

        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        transient = not isinstance(exc, ClientError) or (status or 0) >= 500
        return StorageError(f"{self.url}: {key}: {text}", transient=transient)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    def holds(self, key: str, path: Path) -> bool:
        return False

    def put_file(self, key: str, source: Path) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # One PUT, or a multipart upload that is invisible until it completes.
            self.client.upload_file(str(source), self.bucket, self.object_key(key))
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise self._error(key, exc) from None

    def _scratch(self, key: str) -> Path:
        folder = self.cache_dir / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "".join(PurePosixPath(key).suffixes) or ".tmp"
        return folder / f"{uuid.uuid4().hex}{suffix}"

    @contextlib.contextmanager
    def new_file(self, key: str) -> Iterator[Path]:
        tmp = self._scratch(key)
        try:
            yield tmp
            self.put_file(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def _download(self, key: str, dest: Path) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".downloading-{uuid.uuid4().hex}"
        try:
            self.client.download_file(self.bucket, self.object_key(key), str(tmp))
            os.replace(tmp, dest)
        except ClientError as exc:
            if self._missing(exc):
                raise StorageError(f"{self.url}: no file {key}") from None
            raise self._error(key, exc) from None
        except (BotoCoreError, Boto3Error) as exc:
            raise self._error(key, exc) from None
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        tmp = self._scratch(key)
        try:
            self._download(key, tmp)
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        dest = self.cache_dir / check_key(key)
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (dest.parent / f".{dest.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be downloading it
            if not dest.is_file():
                self._download(key, dest)
        return dest

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise self._error(key, exc) from None
        except BotoCoreError as exc:
            raise self._error(key, exc) from None
        return True

    def delete(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.exists(key):
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(key, exc) from None
        return True

    def delete_prefix(self, prefix: str) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        keys = [obj.key for obj in self.list(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000
            batch = [{"Key": self.object_key(k)} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            except (BotoCoreError, ClientError) as exc:
                raise self._error(prefix, exc) from None
        return len(keys)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = self.object_key(prefix).rstrip("/") + "/"
        strip = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(
                        item["Key"].removeprefix(strip), int(item["Size"]), item["LastModified"]
                    )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(prefix, exc) from None


# --------------------------------------------------------------------------- making one


def storage_from_url(
    url: str | None, data_dir: Path, *, cache_dir: Path | None = None, **s3: Any
) -> LocalStorage | S3Storage:
    """``None`` or ``""``: the data dir itself. ``file:///path`` or a plain path: that
    folder. ``s3://bucket[/prefix]``: a bucket (``s3`` options: endpoint_url, region,
    access_key_id, secret_access_key; else boto3's usual environment and files)."""
    if not url:
        return LocalStorage(Path(data_dir))
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{url}: a file URL names a local path (file:///path)")
        path = Path(unquote(parsed.path) if parsed.scheme else url)
        if not path.is_absolute():
            raise StorageError(f"{url}: the storage folder must be an absolute path")
        return LocalStorage(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"{url}: no bucket (s3://bucket/prefix)")
        cache = cache_dir if cache_dir is not None else Path(data_dir) / "cache"
        return S3Storage(parsed.netloc, parsed.path, cache, **s3)
    raise StorageError(f"{url}: unknown storage (use file:///path or s3://bucket/prefix)")


def make_storage(settings: Settings) -> LocalStorage | S3Storage:
    """The storage of ``settings`` (``VL12_STORAGE_URL`` and the ``VL12_S3_*`` settings)."""
    secret = settings.s3_secret_access_key
    return storage_from_url(
        settings.storage_url,
        settings.data_dir,
        cache_dir=settings.data_dir / "cache",
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=None if secret is None else secret.get_secret_value(),
    )

