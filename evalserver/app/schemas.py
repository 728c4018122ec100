"""The API's response shapes, separate from the ORM models: a column added to a table is
not published until it is added here, and nothing internal (paths in the data dir, token
hashes, the benchmark file) can leak through a response by accident."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalserver.db.models import (
    AuditEntry,
    BenchmarkVersion,
    Rescore,
    RescoreStatus,
    Status,
    Submission,
)

__all__ = [
    "AuditOut",
    "BenchmarkOut",
    "BenchmarkRef",
    "BoardColumn",
    "HealthOut",
    "LeaderboardOut",
    "LeaderboardRow",
    "PhaseOut",
    "Problem",
    "RejectedOut",
    "RescoreOut",
    "RescoreRequest",
    "RescoresOut",
    "SubmissionChange",
    "SubmissionForm",
    "SubmissionLogOut",
    "SubmissionOut",
    "TaskOut",
]


class BenchmarkRef(BaseModel):
    name: str
    version: int
    fingerprint: str

    @classmethod
    def of(cls, bench: BenchmarkVersion) -> BenchmarkRef:
        return cls(name=bench.name, version=bench.version, fingerprint=bench.fingerprint)


class SubmissionOut(BaseModel):
    id: str
    status: Status
    team: str
    benchmark: BenchmarkRef
    task: str
    phase: str
    method_name: str
    description: str
    paper_url: str
    code_url: str
    public: bool
    baseline: bool
    #: Hidden by the admin: on no leaderboard.
    hidden: bool = False
    file_sha256: str
    file_size: int
    original_name: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scorer_name: str | None
    scorer_version: str | None
    error: str | None
    #: The leaderboard columns (None until scored).
    metrics: dict[str, Any] | None
    #: The whole result summary (``Result.to_dict()``: breakdowns, absent columns ...).
    result: dict[str, Any] | None
    #: True when this upload repeated an earlier one (same team, file and leaderboard).
    duplicate: bool = False

    @classmethod
    def of(cls, row: Submission, duplicate: bool = False) -> SubmissionOut:
        result = row.result
        return cls(
            id=row.id,
            status=row.status,
            team=row.team.name,
            benchmark=BenchmarkRef.of(row.benchmark),
            task=row.task,
            phase=row.phase,
            method_name=row.method_name,
            description=row.description,
            paper_url=row.paper_url,
            code_url=row.code_url,
            public=row.is_public,
            baseline=row.is_baseline,
            hidden=row.is_hidden,
            file_sha256=row.file_sha256,
            file_size=row.file_size,
            original_name=row.original_name,
            attempts=row.attempts,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            scorer_name=row.scorer_name,
            scorer_version=row.scorer_version,
            error=row.error,
            metrics=result.get("metrics") if result else None,
            result=result,
            duplicate=duplicate,
        )


class SubmissionChange(BaseModel):
    """What can change after upload: visibility (its team or the admin), and whether it is
    a baseline (the admin only)."""

    public: bool | None = None
    baseline: bool | None = None
    #: The admin only: take it off every leaderboard (or put it back).
    hidden: bool | None = None


class SubmissionForm(BaseModel):
    """The text fields of an upload's form (the file is the ``file`` part)."""

    model_config = ConfigDict(extra="ignore")

    task: str = Field(max_length=100)
    phase: str | None = Field(
        default=None, max_length=100, description="Default: the task's default phase."
    )
    benchmark: str | None = Field(
        default=None, max_length=200, description="A benchmark name; default: the newest loaded."
    )
    method_name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)
    paper_url: str = Field(default="", max_length=500)
    code_url: str = Field(default="", max_length=500)
    public: bool = True

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # Any text is kept verbatim (escaped where rendered) except NUL, which PostgreSQL
        # cannot store in text: refused here, not a 500 at commit.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("the NUL character (\\x00) is not allowed")
        return value

    @classmethod
    def openapi_body(cls) -> dict[str, Any]:
        """The multipart request body, for the OpenAPI document (the route reads the stream
        itself, so FastAPI cannot derive it)."""
        schema = cls.model_json_schema()
        schema["properties"] = {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The prediction file, in the task's official format (gzip "
                "accepted).",
            },
            **schema["properties"],
        }
        schema["required"] = ["file", *schema.get("required", [])]
        return {
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": schema}},
            }
        }


class Problem(BaseModel):
    text: str
    message: str
    location: str | None = None
    id: str | None = None
    id_field: str | None = None


class RejectedOut(BaseModel):
    """The body of a 422 for a file that failed validation (``detail``)."""

    message: str
    against: str
    total: int
    problems: list[Problem]


class BoardColumn(BaseModel):
    name: str
    higher_is_better: bool
    precision: int
    primary: bool
    description: str = ""


class PhaseOut(BaseModel):
    phase: str
    splits: list[str]
    hidden: bool
    num_examples: int
    default: bool


class TaskOut(BaseModel):
    task: str
    title: str
    primary: str
    columns: list[BoardColumn]
    phases: list[PhaseOut]


class BenchmarkOut(BaseModel):
    name: str
    version: int
    fingerprint: str
    schema_version: str
    loaded_at: datetime
    tasks: list[TaskOut]


class LeaderboardRow(BaseModel):
    rank: int
    team: str
    method_name: str
    #: One value per column of ``columns`` (None: missing, ranked last).
    metrics: dict[str, float | None]
    created_at: datetime
    public: bool
    baseline: bool
    paper_url: str
    code_url: str
    #: Only on the viewer's own rows (and for the admin).
    submission_id: str | None = None
    #: The primary metric's 95% bootstrap interval, the p-value against the leader and the
    #: seen/unseen scores, when the worker computed them (``evalserver.worker.stats``).
    stats: dict[str, Any] | None = None


class LeaderboardOut(BaseModel):
    benchmark: BenchmarkRef
    task: str
    phase: str
    splits: list[str]
    hidden: bool
    columns: list[BoardColumn]
    rows: list[LeaderboardRow]


class Check(BaseModel):
    ok: bool
    detail: str = ""


class WorkersCheck(Check):
    #: Names of the workers that answered a ping; None when the broker cannot broadcast.
    live: list[str] | None = None
    #: Workers that started a submission lately (from the database: any broker).
    recent: list[str] = Field(default_factory=list)


class QueueOut(BaseModel):
    queued: int
    running: int
    oldest_queued_s: float | None = Field(
        default=None, description="Age of the oldest queued submission, in seconds."
    )


class HealthOut(BaseModel):
    status: str
    database: Check
    broker: Check
    workers: WorkersCheck
    queue: QueueOut | None = None


#: Where a failed re-score's error message ends and its trace begins (``worker.rescore``).
TRACE_MARK = "\nTraceback (most recent call last):"


class ScoredAs(BaseModel):
    scorer_name: str | None = None
    scorer_version: str | None
    metrics: dict[str, Any] | None


class RescoreOut(BaseModel):
    """One re-score: who asked, when, against which benchmark version, the result it
    replaced (``old``) and the one it made current (``new``)."""

    id: int
    submission_id: str
    status: RescoreStatus
    requested_by: str
    reason: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    benchmark: BenchmarkRef
    attempts: int
    old: ScoredAs | None
    new: ScoredAs | None
    #: Why it failed or was skipped (the admin sees the trace too).
    error: str | None

    @classmethod
    def of(cls, job: Rescore, admin: bool) -> RescoreOut:
        error = job.error
        if error is not None and not admin:
            error = error.split(TRACE_MARK, 1)[0].rstrip()  # the trace is the admin's
        done = job.status == RescoreStatus.done
        return cls(
            id=job.id,
            submission_id=job.submission_id,
            status=job.status,
            requested_by=job.requested_by,
            reason=job.reason,
            requested_at=job.requested_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            benchmark=BenchmarkRef.of(job.benchmark),
            attempts=job.attempts,
            old=ScoredAs(
                scorer_name=job.old_scorer_name,
                scorer_version=job.old_scorer_version,
                metrics=(job.old_result or {}).get("metrics"),
            )
            if done
            else None,
            new=ScoredAs(
                scorer_name=job.old_scorer_name,
                scorer_version=job.new_scorer_version,
                metrics=(job.new_result or {}).get("metrics"),
            )
            if done
            else None,
            error=error,
        )


class RescoreRequest(BaseModel):
    """Which scored submissions to re-score (all given filters apply)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, max_length=10_000)
    task: str | None = Field(default=None, max_length=100)
    phase: str | None = Field(default=None, max_length=100)
    benchmark: str | None = Field(default=None, max_length=200)
    #: Only those scored by another version than their scorer's current one.
    stale: bool = False
    reason: str = Field(default="requested by the admin", max_length=500)


class RescoresOut(BaseModel):
    #: Re-scores queued by this request.
    queued: list[RescoreOut]
    #: Submissions already being re-scored (their pending re-score).
    pending: list[RescoreOut]


class SubmissionLogOut(BaseModel):
    """A submission's log: its validation report, the worker host and timings of its last
    scoring run, its re-scores; an error's trace for the admin only."""

    id: str
    status: Status
    attempts: int
    error: str | None
    validation: dict[str, Any] | None = None
    worker: dict[str, Any] | None = None
    #: The admin only.
    trace: str | None = None
    #: Admin actions on it (the admin only).
    audit: list[AuditOut] | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    submission_id: str | None
    team_id: int | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            submission_id=entry.submission_id,
            team_id=entry.team_id,
            detail=entry.detail,
        )


SubmissionLogOut.model_rebuild()
