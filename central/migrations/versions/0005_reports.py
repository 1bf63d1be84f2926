"""HVS trust reports (the verifier's output, with the signed attestation-result JWT).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("trust_report", sa.JSON, nullable=False),
        sa.Column("flavors_trust", sa.JSON, nullable=False),
        sa.Column("host_manifest", sa.JSON, nullable=False),
        sa.Column("evidence_digest", sa.String(64), nullable=False),
        sa.Column("jwt", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_reports_host_created", "reports", ["host_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_reports_host_created", table_name="reports")
    op.drop_table("reports")
