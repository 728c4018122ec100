"""The initial schema: teams, benchmark versions and their phases, submissions.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("queued", "running", "scored", "failed", "cancelled")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "benchmark_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("file_path", sa.String(length=500), nullable=False),
        sa.Column("schema_version", sa.String(length=20), nullable=False),
        _when("loaded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benchmark_versions")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_benchmark_versions_fingerprint")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_benchmark_versions_name_version")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_teams_token_hash")),
    )
    op.create_table(
        "benchmark_phases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.String(length=100), nullable=False),
        sa.Column("splits", sa.JSON(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("num_examples", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["benchmark_id"],
            ["benchmark_versions.id"],
            name=op.f("fk_benchmark_phases_benchmark_id_benchmark_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benchmark_phases")),
        sa.UniqueConstraint(
            "benchmark_id",
            "task",
            "phase",
            name=op.f("uq_benchmark_phases_benchmark_id_task_phase"),
        ),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.String(length=100), nullable=False),
        sa.Column("file_path", sa.String(length=500), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("original_name", sa.String(length=500), nullable=False),
        sa.Column("validated_path", sa.String(length=500), nullable=True),
        sa.Column("method_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("paper_url", sa.String(length=500), nullable=False),
        sa.Column("code_url", sa.String(length=500), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("is_baseline", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*STATUSES, name="status", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        sa.Column("scorer_name", sa.String(length=100), nullable=True),
        sa.Column("scorer_version", sa.String(length=50), nullable=True),
        sa.Column("worker_host", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("arrays_path", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["benchmark_id"],
            ["benchmark_versions.id"],
            name=op.f("fk_submissions_benchmark_id_benchmark_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_submissions_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint(
            "team_id",
            "benchmark_id",
            "task",
            "phase",
            "file_sha256",
            name=op.f("uq_submissions_team_id_benchmark_id_task_phase_file_sha256"),
        ),
    )
    op.create_index(
        "ix_submissions_board", "submissions", ["benchmark_id", "task", "phase", "status"]
    )
    op.create_index("ix_submissions_status_updated", "submissions", ["status", "updated_at"])
    op.create_index("ix_submissions_team_created", "submissions", ["team_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_submissions_team_created", table_name="submissions")
    op.drop_index("ix_submissions_status_updated", table_name="submissions")
    op.drop_index("ix_submissions_board", table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("benchmark_phases")
    op.drop_table("teams")
    op.drop_table("benchmark_versions")
