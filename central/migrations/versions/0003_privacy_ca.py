"""HVS Privacy CA: endorsement CAs held in the database, and pending AIK challenges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endorsement_cas",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "aik_challenges",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("aik_public", sa.LargeBinary, nullable=False),
        sa.Column("aik_name", sa.String(140), nullable=False),
        sa.Column("ek_certificate_sha256", sa.String(64), nullable=False),
        sa.Column("host_name", sa.String(255), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
    )
    op.create_index("ix_aik_challenges_expires_at", "aik_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_aik_challenges_expires_at", table_name="aik_challenges")
    op.drop_table("aik_challenges")
    op.drop_table("endorsement_cas")
