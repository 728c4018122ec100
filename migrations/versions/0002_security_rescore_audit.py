"""Operation: hidden submissions, per-submission logs, re-scores (job and history), the
admin's audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RESCORE_STATUSES = ("queued", "running", "done", "failed", "skipped")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        # Existing rows are not hidden: a server default fills them, then it is dropped so
        # the schema stays the models' (which set the value in Python).
        batch.add_column(
            sa.Column("is_hidden", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("log", sa.JSON(), nullable=True))
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("is_hidden", server_default=None)
    op.create_table(
        "rescores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        _when("requested_at"),
        _when("updated_at"),
        sa.Column(
            "status",
            sa.Enum(*RESCORE_STATUSES, name="rescorestatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        sa.Column("worker_host", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("old_scorer_name", sa.String(length=100), nullable=True),
        sa.Column("old_scorer_version", sa.String(length=50), nullable=True),
        sa.Column("old_result", sa.JSON(), nullable=True),
        sa.Column("old_arrays_path", sa.String(length=500), nullable=True),
        sa.Column("new_scorer_version", sa.String(length=50), nullable=True),
        sa.Column("new_result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["benchmark_id"],
            ["benchmark_versions.id"],
            name=op.f("fk_rescores_benchmark_id_benchmark_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_rescores_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rescores")),
    )
    op.create_index("ix_rescores_submission", "rescores", ["submission_id", "requested_at"])
    op.create_index("ix_rescores_status_updated", "rescores", ["status", "updated_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_rescores_status_updated", table_name="rescores")
    op.drop_index("ix_rescores_submission", table_name="rescores")
    op.drop_table("rescores")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("log")
        batch.drop_column("is_hidden")
