"""Receiving a submission: store the upload, validate it in a process pool, record the row,
then enqueue it.

The order is what makes a submission impossible to lose (spec/evalserver.md):
1. the upload is streamed to ``uploads/<id>/`` (``evalserver.app.upload``) and renamed to a
   server-made name, its sha256 and size counted on the way (never the whole file in
   memory, 413 past the limit);
2. the same team, file and leaderboard gets the existing submission back;
3. the file is validated once, in a worker process of the API's pool (never on the event
   loop), against the ground truth of its (benchmark version, task, phase); a bad file is
   answered with the validator's whole report and nothing is kept; a good one's validated
   form is saved so that the scoring worker never parses it again;
4. the row is committed as ``queued``, and only THEN the id is sent to the broker. A broker
   that is down does not fail the upload: the row stays queued and the sweeper sends it
   again later.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from evalserver import audit
from evalserver.db.models import (
    BenchmarkPhase,
    BenchmarkVersion,
    Status,
    Submission,
    Team,
    utcnow,
)
from evalserver.metrics.upload import GZIP_MAGIC
from evalserver.quotas import Quotas, lock_team
from evalserver.storage import LocalStorage, Storage, StorageError
from evalserver.validation import ValidationLimits, run_validation, validate_stored
from evalserver.worker.celery_app import SCORE_TASK
from unify import tasks
from unify.errors import DataError

__all__ = [
    "BoardNotFound",
    "BoardUnavailable",
    "Metadata",
    "Rejected",
    "StoredFile",
    "TooLarge",
    "cancel_submission",
    "create_submission",
    "enqueue",
    "find_board",
    "new_upload_folder",
    "validate_stored",
    "visible_submissions",
]

log = logging.getLogger(__name__)


class BoardNotFound(LookupError):
    """No loaded benchmark version has the requested (task, phase)."""


class BoardUnavailable(Exception):
    """The benchmark file of a loaded board cannot be read here (moved, damaged): the
    server's fault, not the submission's."""


class TooLarge(Exception):
    """The upload is past ``max_upload_bytes``."""


class Rejected(Exception):
    """The file failed validation: ``report`` is the validator's whole report."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(report["message"])
        self.report = report


@dataclass(frozen=True)
class Metadata:
    """What a participant says about a submission (the form's fields besides the file)."""

    method_name: str = ""
    description: str = ""
    paper_url: str = ""
    code_url: str = ""
    is_public: bool = True
    original_name: str = ""


@dataclass(frozen=True)
class StoredFile:
    path: Path
    sha256: str
    size: int


# --------------------------------------------------------------------------- the board


def find_board(
    session: Session,
    task: str,
    phase: str | None = None,
    benchmark: str | None = None,
    version: int | None = None,
) -> BenchmarkPhase:
    """The leaderboard of (task, phase) in the newest loaded version (of ``benchmark`` when
    named; exactly ``version`` when given). ``phase`` may be a split's name; default: the
    task's default phase."""
    if task not in tasks.task_names():
        raise BoardNotFound(f"unknown task {task!r} (tasks: {', '.join(tasks.task_names())})")
    spec = tasks.get(task)
    try:
        chosen = spec.phase(spec.default_phase if phase is None else phase).name
    except DataError as exc:
        raise BoardNotFound(str(exc)) from None
    query = (
        select(BenchmarkPhase)
        .join(BenchmarkVersion)
        .where(BenchmarkPhase.task == task, BenchmarkPhase.phase == chosen)
        .order_by(BenchmarkVersion.id.desc())
    )
    if benchmark is not None:
        query = query.where(BenchmarkVersion.name == benchmark)
    if version is not None:
        query = query.where(BenchmarkVersion.version == version)
    board = session.scalars(query).first()
    if board is None:
        named = f" of benchmark {benchmark!r}" if benchmark is not None else ""
        named += f" version {version}" if version is not None else ""
        raise BoardNotFound(
            f"no loaded benchmark version{named} has a leaderboard for {task}, phase {chosen}"
        )
    return board


# --------------------------------------------------------------------------- the file


def _server_name(path: Path) -> str:
    """``upload.gz`` for gzip content (by its bytes, not the uploader's name), else
    ``upload``: never a name chosen by the participant."""
    with path.open("rb") as handle:
        return "upload.gz" if handle.read(2) == GZIP_MAGIC else "upload"


# --------------------------------------------------------------------------- validation


# --------------------------------------------------------------------------- create


def _existing(
    session: Session, team: Team, board: BenchmarkPhase, sha256: str
) -> Submission | None:
    return session.scalars(
        select(Submission).where(
            Submission.team_id == team.id,
            Submission.on_board(board.benchmark_id, board.task, board.phase),
            Submission.file_sha256 == sha256,
        )
    ).first()


def new_upload_folder(data_dir: Path) -> tuple[str, Path]:
    """A fresh submission id and its folder under ``uploads/`` (relative to the data dir);
    the folder is made when the first bytes arrive."""
    submission_id = uuid.uuid4().hex
    return submission_id, Path("uploads") / submission_id


def create_submission(
    session: Session,
    *,
    data_dir: Path,
    submission_id: str,
    stored: StoredFile,
    team: Team,
    board: BenchmarkPhase,
    metadata: Metadata,
    pool: Executor,
    limits: ValidationLimits,
    quotas: Quotas | None = None,
    storage: Storage | None = None,
) -> tuple[Submission, bool]:
    """Deduplicate, validate and commit a submission whose file was received into
    ``uploads/<submission_id>/`` (``stored``); (row, created). ``created`` is False when the
    same team sent the same file for the same board before. Raises ``Rejected`` or
    ``BoardUnavailable``; the folder is removed unless a new row keeps it. The caller
    enqueues a created row. ``storage`` (default: the data dir) receives the upload and its
    validated form before the row is committed; the local folder is then only a staging
    place, removed unless the storage is that folder.

    ``quotas``: the team's limits, checked before validation (a refusal costs nothing) and
    again, atomically with the insert, after it (the team's row is locked meanwhile: two
    uploads at once cannot both take the last place); raises ``QuotaExceeded``."""
    storage = LocalStorage(data_dir) if storage is None else storage
    stored_keys: list[str] = []
    folder_rel = Path("uploads") / submission_id
    folder = data_dir / folder_rel
    if stored.path.parent != folder:
        raise ValueError(f"{stored.path} is not in the folder of submission {submission_id}")
    try:
        existing = _existing(session, team, board, stored.sha256)
        if existing is not None:
            shutil.rmtree(folder, ignore_errors=True)
            return existing, False
        if quotas is not None and quotas.active:
            quotas.check(session, team.id, board)
        name = _server_name(stored.path)
        upload = stored.path.rename(folder / name)
        validated = folder / "validated.npz"
        validation_started = time.monotonic()
        try:
            benchmark_file = storage.local_path(board.benchmark.file_path)
            report = run_validation(
                pool,
                limits,
                str(benchmark_file),
                board.task,
                board.phase,
                str(upload),
                str(validated),
            )
        except (DataError, OSError, StorageError) as exc:
            # Logged for the operator with the file's path; the participant gets no path.
            log.error("cannot read the ground truth of %s/%s: %s", board.task, board.phase, exc)
            bench = board.benchmark
            raise BoardUnavailable(
                f"the ground truth of {board.task}, phase {board.phase} of {bench.name} "
                f"version {bench.version} cannot be read on this server; nothing was stored"
            ) from None
        if not report["ok"]:
            raise Rejected(report)
        for path in (upload, validated):
            key = (folder_rel / path.name).as_posix()
            storage.put_file(key, path)
            stored_keys.append(key)
        row = Submission(
            id=submission_id,
            team_id=team.id,
            benchmark_id=board.benchmark_id,
            task=board.task,
            phase=board.phase,
            file_path=(folder_rel / name).as_posix(),
            file_sha256=stored.sha256,
            file_size=stored.size,
            original_name=metadata.original_name[:500],
            validated_path=(folder_rel / validated.name).as_posix(),
            method_name=metadata.method_name,
            description=metadata.description,
            paper_url=metadata.paper_url,
            code_url=metadata.code_url,
            is_public=metadata.is_public,
            status=Status.queued,
            log={
                "validation": {
                    "ok": True,
                    "against": report["against"],
                    "problems": report["total"],
                    "took_s": round(time.monotonic() - validation_started, 3),
                }
            },
        )
        if quotas is not None and quotas.active:
            lock_team(session, team.id)
            quotas.check(session, team.id, board)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # the same file sent twice at once: the first one wins
            session.rollback()
            existing = _existing(session, team, board, stored.sha256)
            if existing is None:
                raise
            _discard(storage, folder, stored_keys)
            return existing, False
        if not storage.holds(stored_keys[0], upload):
            shutil.rmtree(folder, ignore_errors=True)  # staged here, stored elsewhere
        return row, True
    except BaseException:
        _discard(storage, folder, stored_keys)
        raise


def _discard(storage: Storage, folder: Path, keys: list[str]) -> None:
    """Nothing of a refused or duplicate upload is kept, here or in the storage."""
    for key in keys:
        if not storage.holds(key, folder / Path(key).name):
            try:
                storage.delete(key)
            except StorageError as exc:  # logged; an unreferenced key harms nobody
                log.warning("cannot remove %s from the storage: %s", key, exc)
    shutil.rmtree(folder, ignore_errors=True)


def cancel_submission(session: Session, row: Submission, actor: str | None = None) -> bool:
    """``queued``/``running`` -> ``cancelled`` in one guarded UPDATE (a worker's claim needs
    ``queued`` and its result needs ``running``, so neither happens after this); False when
    the row was final already. ``row`` is refreshed. ``actor``: an admin's cancel, recorded
    in the audit log in the same transaction."""
    now = utcnow()
    was = row.status.value
    changed = session.execute(
        update(Submission)
        .where(Submission.id == row.id, Submission.status.in_([Status.queued, Status.running]))
        .values(status=Status.cancelled, finished_at=now, updated_at=now)
    ).rowcount
    if changed and actor is not None:
        audit.record(session, actor, "cancel", submission_id=row.id, team_id=row.team_id,
                     was=was)
    session.commit()
    session.refresh(row)
    return changed == 1


def enqueue(celery: Celery, submission_id: str) -> bool:
    """Send the id to the workers; False (logged, not raised) when the broker is down: the
    row stays queued and the sweeper sends it again."""
    try:
        celery.send_task(SCORE_TASK, args=[submission_id], retry=False)
    except Exception as exc:  # any broker or connection failure
        log.warning("submission %s stays queued: the broker refused it (%s)", submission_id, exc)
        return False
    return True


def visible_submissions(
    session: Session, board: BenchmarkPhase, *, admin: bool, team_id: int | None
) -> list[Submission]:
    """The scored rows of ``board`` a viewer may see: public ones, the viewer's team's own,
    every one for the admin; never those the admin hid. The one privacy rule of every board
    (API leaderboards, pages, exports): filtered before ranking, so a hidden better entry
    never moves a public one."""
    query = (
        select(Submission)
        .where(
            Submission.on_board(board.benchmark_id, board.task, board.phase),
            Submission.status == Status.scored,
            Submission.is_hidden.is_(False),
        )
        .options(selectinload(Submission.team))
    )
    if not admin:
        mine = team_id if team_id is not None else -1
        query = query.where(or_(Submission.is_public.is_(True), Submission.team_id == mine))
    return list(session.scalars(query))
