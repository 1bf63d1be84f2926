"""Asset tags: the tag certificates the Tag CA issued, and the verified tags of each report.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_certificates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("hardware_uuid", sa.String(36), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("serial_number", sa.String(64), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("sha384", sa.String(96), nullable=False, unique=True),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_tag_certificates_hardware_uuid", "tag_certificates", ["hardware_uuid"])
    op.create_index("ix_tag_certificates_created_at", "tag_certificates", ["created_at"])
    # Reports made before asset tags carry none.
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("tags")
    op.drop_index("ix_tag_certificates_created_at", table_name="tag_certificates")
    op.drop_index("ix_tag_certificates_hardware_uuid", table_name="tag_certificates")
    op.drop_table("tag_certificates")
