"""ORM models. A submission's row is the truth: queue messages carry only its id, and every
status change is a guarded UPDATE on this row (see ``evalserver.worker``).

Times are timezone-aware UTC. Files are named by storage keys (``uploads/<id>/upload``,
``benchmarks/<fingerprint>.h5``; see ``evalserver.storage``), never host paths, so a data dir
can be moved, or the files kept on a shared file system or in S3 for several hosts.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "AdminToken",
    "AuditEntry",
    "Base",
    "BenchmarkPhase",
    "BenchmarkVersion",
    "Rescore",
    "RescoreStatus",
    "Status",
    "Submission",
    "Team",
    "UtcDateTime",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


#: Named constraints: a later migration can drop or alter one by name (SQLite batch mode
#: cannot address an unnamed constraint).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database. SQLite keeps no offset and hands back
    naive values; they are UTC by construction here, so they come back aware, and arithmetic
    with ``utcnow()`` works the same on SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: UtcDateTime(),
    }


class Status(enum.StrEnum):
    """Where a submission is. ``scored``, ``failed`` and ``cancelled`` are final."""

    queued = "queued"
    running = "running"
    scored = "scored"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        return self in (Status.scored, Status.failed, Status.cancelled)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Verbatim as given (HTML or SQL metacharacters included): escaped where rendered.
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: sha256 hex of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    submissions: Mapped[list[Submission]] = relationship(back_populates="team")


class BenchmarkVersion(Base):
    """One loaded (private) unified file. Identified by its fingerprint; a name can have
    several versions, and results keep naming the version they were scored against."""

    __tablename__ = "benchmark_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    #: The copy of the unified file: a storage key (``benchmarks/<fingerprint>.h5``).
    file_path: Mapped[str] = mapped_column(String(500))
    schema_version: Mapped[str] = mapped_column(String(20))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    phases: Mapped[list[BenchmarkPhase]] = relationship(
        back_populates="benchmark", cascade="all, delete-orphan"
    )


class BenchmarkPhase(Base):
    """A leaderboard: one (task, phase) of a benchmark version."""

    __tablename__ = "benchmark_phases"
    __table_args__ = (UniqueConstraint("benchmark_id", "task", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmark_versions.id"))
    task: Mapped[str] = mapped_column(String(100))
    phase: Mapped[str] = mapped_column(String(100))
    #: The splits scored together, as a JSON list.
    splits: Mapped[list[str]] = mapped_column(JSON)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    num_examples: Mapped[int] = mapped_column(Integer, default=0)

    benchmark: Mapped[BenchmarkVersion] = relationship(back_populates="phases")


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        # The same team uploading the same file for the same leaderboard gets the existing row.
        UniqueConstraint("team_id", "benchmark_id", "task", "phase", "file_sha256"),
        Index("ix_submissions_status_updated", "status", "updated_at"),
        # A leaderboard reads the scored rows of one (benchmark, task, phase).
        Index("ix_submissions_board", "benchmark_id", "task", "phase", "status"),
        Index("ix_submissions_team_created", "team_id", "created_at"),
    )

    #: Random, unguessable (uuid4 hex): ids in URLs do not enumerate other teams' work.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmark_versions.id"))
    task: Mapped[str] = mapped_column(String(100))
    phase: Mapped[str] = mapped_column(String(100))

    #: A storage key under a server-made name, never the uploader's.
    file_path: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)  # past 2 GiB on PostgreSQL too
    original_name: Mapped[str] = mapped_column(String(500), default="")
    #: The validated form (``evalserver.metrics.Validated.save``), so workers never re-parse.
    validated_path: Mapped[str | None] = mapped_column(String(500), default=None)

    method_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    paper_url: Mapped[str] = mapped_column(String(500), default="")
    code_url: Mapped[str] = mapped_column(String(500), default="")
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Hidden by the admin: on no leaderboard (its team still sees it).
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False)

    status: Mapped[Status] = mapped_column(
        Enum(Status, native_enum=False, length=20), default=Status.queued
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Last change of status or last (re-)enqueue: the sweeper's clock.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    scorer_name: Mapped[str | None] = mapped_column(String(100), default=None)
    scorer_version: Mapped[str | None] = mapped_column(String(50), default=None)
    worker_host: Mapped[str | None] = mapped_column(String(200), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: ``Result.to_dict()`` without the per-example arrays.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: The per-example arrays (``Result.save``): a storage key.
    arrays_path: Mapped[str | None] = mapped_column(String(500), default=None)
    #: What happened to it (``evalserver.audit``'s log keys): the validation report, the
    #: worker's host and timings, and an error's trace (shown to the admin only).
    log: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    team: Mapped[Team] = relationship(back_populates="submissions")
    benchmark: Mapped[BenchmarkVersion] = relationship()

    @classmethod
    def on_board(cls, benchmark_id: int, task: str, phase: str) -> ColumnElement[bool]:
        """The rows of one leaderboard (benchmark version, task, phase): the one spelling
        of "this board" for every query (index ix_submissions_board)."""
        return and_(cls.benchmark_id == benchmark_id, cls.task == task, cls.phase == phase)


class RescoreStatus(enum.StrEnum):
    """Where a re-score is. ``done``, ``failed`` and ``skipped`` are final."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    skipped = "skipped"  # the submission was no longer scored when a worker took it


class Rescore(Base):
    """One re-score of a scored submission: the job (claimed and finished by guarded
    UPDATEs, like a submission) and, once done, its history entry. The submission keeps its
    current result (and its place on leaderboards) until the new one replaces it, in the
    same transaction that records the old one here."""

    __tablename__ = "rescores"
    __table_args__ = (
        Index("ix_rescores_submission", "submission_id", "requested_at"),
        Index("ix_rescores_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"))
    #: The benchmark version scored against (the submission's).
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmark_versions.id"))
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[RescoreStatus] = mapped_column(
        Enum(RescoreStatus, native_enum=False, length=20), default=RescoreStatus.queued
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    worker_host: Mapped[str | None] = mapped_column(String(200), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: The result it replaced, as the submission held it when the new one was written.
    old_scorer_name: Mapped[str | None] = mapped_column(String(100), default=None)
    old_scorer_version: Mapped[str | None] = mapped_column(String(50), default=None)
    old_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    old_arrays_path: Mapped[str | None] = mapped_column(String(500), default=None)
    new_scorer_version: Mapped[str | None] = mapped_column(String(50), default=None)
    new_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    submission: Mapped[Submission] = relationship()
    benchmark: Mapped[BenchmarkVersion] = relationship()


class AuditEntry(Base):
    """One admin action (API or command line), kept for good: who, when, what, on what."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    #: What it was done to (no foreign keys: the record outlives what it names).
    submission_id: Mapped[str | None] = mapped_column(String(32), default=None)
    team_id: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class AdminToken(Base):
    """The admin token made by ``evalserver admin rotate-token``, as its sha256 only. Once a
    row exists, the newest one is the admin token and ``VL12_ADMIN_TOKEN`` is no longer
    accepted; every request reads it, so a rotation holds at once in every API process."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
