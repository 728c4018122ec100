"""How long uploads are kept (``VL12_UPLOAD_RETENTION_DAYS``), and the cleanup that applies
it (``evalserver storage cleanup``, from cron or a systemd timer).

What goes, under ``uploads/`` of the storage only:
* the uploaded file of a submission that is final (scored, failed, cancelled) and finished
  more than the retention ago; its row, result, per-example arrays and validated form stay
  (a re-score reads the validated form, never the upload);
* anything of an upload that never became a row (a crash between receiving and
  committing), once older than a grace period, so an upload still streaming is never hit.

Nothing under ``results/`` or ``benchmarks/`` is ever deleted. The work is proportional to
what is stored under ``uploads/``, so running it again finds nothing more to do.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from evalserver.db.models import Submission, utcnow
from evalserver.storage import Storage, StoredObject

__all__ = ["ORPHAN_GRACE", "CleanupReport", "cleanup_uploads"]

#: An upload folder without a row is left alone this long (it may still be arriving).
ORPHAN_GRACE = timedelta(days=1)
#: Rows read per query.
_BATCH = 500


@dataclass
class CleanupReport:
    expired: list[str] = field(default_factory=list)  # keys of uploads past retention
    orphans: list[str] = field(default_factory=list)  # keys without a submission row
    freed_bytes: int = 0

    def line(self, dry_run: bool) -> str:
        verb = "would delete" if dry_run else "deleted"
        return (
            f"{verb} {len(self.expired)} expired upload(s) and {len(self.orphans)} orphaned "
            f"file(s), {self.freed_bytes:,} bytes"
        )


def cleanup_uploads(
    engine: Engine,
    storage: Storage,
    retention_days: float | None,
    *,
    now: datetime | None = None,
    orphan_grace: timedelta = ORPHAN_GRACE,
    dry_run: bool = False,
) -> CleanupReport:
    """Delete expired uploads and orphaned upload files (see the module); what it did.
    ``retention_days`` None keeps every submission's upload (orphans still go)."""
    now = now or utcnow()
    by_id: dict[str, list[StoredObject]] = defaultdict(list)
    for obj in storage.list("uploads"):
        parts = obj.key.split("/")
        if len(parts) >= 3:
            by_id[parts[1]].append(obj)
    report = CleanupReport()
    ids = sorted(by_id)
    expiry = None if retention_days is None else now - timedelta(days=retention_days)
    with Session(engine) as session:
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            rows = {
                row.id: row
                for row in session.scalars(select(Submission).where(Submission.id.in_(batch)))
            }
            for sub_id in batch:
                row = rows.get(sub_id)
                for obj in by_id[sub_id]:
                    if row is None:
                        if obj.modified < now - orphan_grace:
                            report.orphans.append(obj.key)
                            report.freed_bytes += obj.size
                    elif (
                        expiry is not None
                        and obj.key == row.file_path
                        and row.status.final
                        and (row.finished_at or row.created_at) < expiry
                    ):
                        report.expired.append(obj.key)
                        report.freed_bytes += obj.size
    if not dry_run:
        for key in report.expired + report.orphans:
            storage.delete(key)
    return report
