"""The workload service: images, image flavors and their links, the wrapped-key cache, VM trust reports.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wls_flavors",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("label", sa.String(255), nullable=False, unique=True),
        sa.Column("key_url", sa.String(2048), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "wls_images",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "wls_image_flavors",
        sa.Column(
            "image_id", sa.String(36), sa.ForeignKey("wls_images.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "flavor_id", sa.String(36), sa.ForeignKey("wls_flavors.id", ondelete="RESTRICT"), primary_key=True
        ),
    )
    op.create_index("ix_wls_image_flavors_flavor_id", "wls_image_flavors", ["flavor_id"])
    op.create_table(
        "wls_key_cache",
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_url", sa.String(2048), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("report_created_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "wls_reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("hardware_uuid", sa.String(36), nullable=False),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_wls_reports_host_id", "wls_reports", ["host_id"])
    op.create_index("ix_wls_reports_hardware_uuid", "wls_reports", ["hardware_uuid"])
    op.create_index("ix_wls_reports_created_at", "wls_reports", ["created_at"])
    op.create_index("ix_wls_reports_instance_created", "wls_reports", ["instance_id", "created_at"])


def downgrade() -> None:
    op.drop_table("wls_reports")
    op.drop_table("wls_key_cache")
    op.drop_table("wls_image_flavors")
    op.drop_table("wls_images")
    op.drop_table("wls_flavors")
