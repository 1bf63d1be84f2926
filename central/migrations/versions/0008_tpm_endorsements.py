"""Registered EK certificates (SecL's tpm-endorsements) for the Privacy CA.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tpm_endorsements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("certificate_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("hardware_uuid", sa.String(36), nullable=True),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("comment", sa.String(1024), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_tpm_endorsements_hardware_uuid", "tpm_endorsements", ["hardware_uuid"])


def downgrade() -> None:
    op.drop_index("ix_tpm_endorsements_hardware_uuid", "tpm_endorsements")
    op.drop_table("tpm_endorsements")
