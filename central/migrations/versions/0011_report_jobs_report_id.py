"""An index on report_jobs.report_id.

The worker decides whether a host's newest report can be re-used by reading the job that made it (its
basis digest). Without an index that read went through every finished job, one more for each report the
central ever made.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_report_jobs_report_id", "report_jobs", ["report_id"])


def downgrade() -> None:
    op.drop_index("ix_report_jobs_report_id", table_name="report_jobs")
