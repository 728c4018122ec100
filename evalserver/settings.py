"""Server settings, read from the environment (``VL12_...``) so that the same code runs the
embedded default and a production deployment: only URLs change.

The embedded default needs no other server: SQLite (WAL) for the database and kombu's
SQLAlchemy transport on a second SQLite file for the broker, both under the data dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ClientSettings", "Settings", "default_data_dir"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/vl12-server`` (``~/.local/share/vl12-server``): a per-user place that
    survives reboots, unlike a temp dir, and is not the current folder (a server started
    from two folders must not silently make two databases)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vl12-server"


class Settings(BaseSettings):
    """Settings of the API, the workers and the sweeper (all read the same ones)."""

    model_config = SettingsConfigDict(env_prefix="VL12_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    #: ``sqlite:///<data_dir>/vl12.db`` when unset.
    database_url: str | None = None
    #: ``sqla+sqlite:///<data_dir>/broker.db`` when unset.
    broker_url: str | None = None
    admin_token: SecretStr | None = None
    #: A scoring run longer than this fails with a message saying so (enforced by the
    #: worker's prefork pool, a hard kill score_kill_grace_s later). Keep their sum below
    #: running_deadline_s.
    score_time_limit_s: float = 600.0
    #: A run still going this long after the soft time limit (a scorer stuck in C code) is
    #: killed by the pool; its row still ends with the time limit's message.
    score_kill_grace_s: float = 30.0
    #: Per-task limits that replace ``score_time_limit_s`` for those tasks, as JSON
    #: (``VL12_SCORE_TIME_LIMITS='{"vqa2": 1200, "nlvr2": 60}'``): a task whose full phase
    #: takes minutes need not set the limit of every other task that high.
    score_time_limits: dict[str, float] = Field(default_factory=dict)

    #: The sweeper looks for stuck rows this often.
    sweep_interval_s: float = 30.0
    #: A row still ``queued`` this long after its last enqueue is enqueued again.
    queued_deadline_s: float = 300.0
    #: A row still ``running`` this long after it started is presumed lost (dead worker).
    running_deadline_s: float = 900.0
    #: Attempts before the sweeper gives up on a row and fails it with a message.
    max_attempts: int = 3

    #: Largest upload accepted, as sent (compressed or not): 413 past it, counted while the
    #: body streams in. Also the validator's ``Limits.max_bytes``.
    max_upload_bytes: int = 1 << 30
    #: Processes of the API's validation pool (uploads are parsed there, not on the event
    #: loop; each keeps the ground truth it loaded).
    validation_processes: int = 2
    #: Bootstrap resamples of every scored submission's 95% interval and paired test
    #: (``evalserver.stats``); 0 turns the statistics off.
    bootstrap_resamples: int = Field(default=1000, ge=0, le=100_000)

    #: Where uploads, validated forms, per-example arrays and benchmark files live
    #: (``evalserver.storage``): unset, the data dir itself; ``file:///path`` a folder (a
    #: shared file system for several hosts); ``s3://bucket/prefix`` an S3-compatible store.
    storage_url: str | None = None
    #: S3 endpoint (MinIO, Ceph...; unset: AWS), region and credentials (unset: boto3's
    #: usual ``AWS_*`` variables and files).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    #: Days a submission's uploaded file is kept once the submission is final
    #: (``evalserver storage cleanup`` deletes older ones; results and validated forms are
    #: kept). Unset: kept for ever.
    upload_retention_days: float | None = None

    #: Largest content of a gzip upload once decompressed (a gzip bomb is refused with a
    #: message naming this limit); also bounded by 200x the stored size.
    max_decompressed_bytes: int = 2 << 30
    #: Memory one validation may add to its process (``RLIMIT_AS``, MiB; 0: none): a file
    #: that needs more is refused (413) naming the limit; the API process is never at risk.
    validation_memory_mb: int = 6144
    #: Longest validation of one file (s); past it the file is refused (413) naming the
    #: limit and the validation process is replaced.
    validation_time_limit_s: float = 300.0

    #: Per team: submissions per (benchmark version, task, phase) within any 24 hours, and
    #: in total (0: no limit). Only ``queued``, ``running`` and ``scored`` rows count:
    #: rejected files are never stored, failed and cancelled runs are given back.
    quota_per_day: int = 0
    quota_total: int = 0
    #: Per team: submissions ``queued`` or ``running`` at once, all boards together (0: no
    #: limit). Past it: 429 with ``Retry-After``.
    max_concurrent: int = 16
    #: Memory one scoring run may add to its worker process (``RLIMIT_AS``, MiB; 0: none):
    #: past it the row fails with "memory limit of N MB exceeded".
    score_memory_mb: int = 16384

    @field_validator("score_time_limits")
    @classmethod
    def _known_tasks(cls, limits: dict[str, float]) -> dict[str, float]:
        from unify import tasks  # the task names: one declaration (unify.tasks)

        unknown = sorted(set(limits) - set(tasks.task_names()))
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; the tasks are "
                             f"{', '.join(tasks.task_names())}")
        bad = sorted(name for name, value in limits.items() if not value > 0)
        if bad:
            raise ValueError(f"the limit of {', '.join(bad)} must be a positive number of s")
        return limits

    def score_time_limit_for(self, task: str) -> tuple[float, str]:
        """The scoring time limit of ``task`` and the setting it comes from."""
        if task in self.score_time_limits:
            return self.score_time_limits[task], f"VL12_SCORE_TIME_LIMITS[{task}]"
        return self.score_time_limit_s, "VL12_SCORE_TIME_LIMIT_S"

    @property
    def score_time_limit_max_s(self) -> float:
        """The pool's (Celery's) soft limit for every scoring message: the largest task
        limit; a task with a smaller one is stopped by its own timer (``TimeLimit``)."""
        return max([self.score_time_limit_s, *self.score_time_limits.values()])

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'vl12.db'}"

    @property
    def broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def benchmarks_dir(self) -> Path:
        return self.data_dir / "benchmarks"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"


class ClientSettings(BaseSettings):
    """The command-line client's settings: where the server is and the team's token."""

    model_config = SettingsConfigDict(env_prefix="VL12_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    token: SecretStr | None = None
