"""``evalserver storage cleanup`` (the retention of uploads) and ``evalserver storage copy``
(backup, restore, and moving a server from a folder to S3 or back). Both read the same
``VL12_*`` settings as the server; a storage that cannot be used is one message, exit 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from evalserver.admin_cli import _database, _fail, _settings, data_dir_option

__all__ = ["storage"]

#: What the server stores, by top-level prefix (every key is under one of these).
PREFIXES = ("benchmarks", "uploads", "results")


@click.group()
def storage() -> None:
    """The server's files: uploads, validated forms, per-example arrays, benchmark files
    (VL12_STORAGE_URL: the data dir by default, file:///path or s3://bucket/prefix)."""


def _storage_of(url: str | None, settings: Any) -> Any:
    from evalserver.storage import StorageError, make_storage, storage_from_url

    try:
        if url is None:
            return make_storage(settings)
        secret = settings.s3_secret_access_key
        return storage_from_url(
            url,
            settings.data_dir,
            cache_dir=settings.data_dir / "cache",
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=None if secret is None else secret.get_secret_value(),
        )
    except StorageError as exc:
        _fail(str(exc))


@storage.command()
@click.option("--days", type=click.FloatRange(min=0), default=None,
              help="Keep uploads this many days after their submission is final "
              "(default: VL12_UPLOAD_RETENTION_DAYS; unset there too: keep them).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@data_dir_option
def cleanup(days: float | None, dry_run: bool, data_dir: Path | None) -> None:
    """Delete uploaded files past the retention and upload files that never became a
    submission (older than a day). Rows, results, per-example arrays, validated forms and
    benchmark files are kept. Safe to run at any time, from any host, repeatedly."""
    from evalserver.admin_cli import require_current_schema
    from evalserver.db.session import make_engine
    from evalserver.retention import cleanup_uploads
    from evalserver.storage import StorageError

    settings = _settings(data_dir)
    require_current_schema(settings)
    store = _storage_of(None, settings)
    retention = days if days is not None else settings.upload_retention_days
    engine = make_engine(settings.db_url)
    try:
        with _database(settings.db_url):
            report = cleanup_uploads(engine, store, retention, dry_run=dry_run)
    except StorageError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    for key in report.expired + report.orphans:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {key}")
    kept = "kept for ever" if retention is None else f"kept {retention:g} day(s)"
    click.echo(f"{store.url}: {report.line(dry_run)} (uploads {kept})")


@storage.command()
@click.option("--from", "source", default=None, metavar="URL",
              help="Copy from this storage (default: the server's, VL12_STORAGE_URL).")
@click.option("--to", "dest", default=None, metavar="URL",
              help="Copy to this storage (default: the server's, VL12_STORAGE_URL).")
@data_dir_option
def copy(source: str | None, dest: str | None, data_dir: Path | None) -> None:
    """Copy every file of one storage into another (a file:///path folder or
    s3://bucket/prefix): a backup with --to, a restore with --from, or a move to S3. A file
    already there with the same size is skipped, so an interrupted copy is resumed by
    running it again."""
    from evalserver.storage import StorageError

    if (source is None) == (dest is None):
        raise click.UsageError("give exactly one of --from URL and --to URL")
    settings = _settings(data_dir)
    src = _storage_of(source, settings)
    dst = _storage_of(dest, settings)
    if src.url == dst.url:
        raise click.UsageError(f"--from and --to are the same storage ({src.url})")
    copied = skipped = size = 0
    try:
        for prefix in PREFIXES:
            present = {obj.key: obj.size for obj in dst.list(prefix)}
            for obj in src.list(prefix):
                if present.get(obj.key) == obj.size:
                    skipped += 1
                    continue
                with src.reading(obj.key) as local:
                    dst.put_file(obj.key, local)
                copied += 1
                size += obj.size
    except StorageError as exc:
        _fail(str(exc))
    click.echo(
        f"{src.url} -> {dst.url}: copied {copied} file(s), {size:,} bytes; "
        f"{skipped} already there"
    )
