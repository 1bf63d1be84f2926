"""The report job queue processed by ``secl-central worker`` (asynchronous attestation, refresh).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "report_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claim_token", sa.String(36), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column(
            "report_id", sa.String(36), sa.ForeignKey("reports.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("reused", sa.Boolean, nullable=False),
        sa.Column("basis_digest", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_report_jobs_host_id", "report_jobs", ["host_id"])
    op.create_index("ix_report_jobs_created_at", "report_jobs", ["created_at"])
    op.create_index("ix_report_jobs_claim", "report_jobs", ["status", "available_at"])
    op.create_index(
        "uq_report_jobs_active_host", "report_jobs", ["host_id"], unique=True,
        postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_report_jobs_active_host", table_name="report_jobs")
    op.drop_index("ix_report_jobs_claim", table_name="report_jobs")
    op.drop_index("ix_report_jobs_created_at", table_name="report_jobs")
    op.drop_index("ix_report_jobs_host_id", table_name="report_jobs")
    op.drop_table("report_jobs")
