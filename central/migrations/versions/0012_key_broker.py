"""The key broker: keys (material only by reference), transfer policies with SecL's default, the trust
stores for other centrals, and the certified binding and signing keys of hosts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFAULT_POLICY_ID = "00000000-0000-4000-8000-00000000d3f1"


def upgrade() -> None:
    policies = op.create_table(
        "kbs_transfer_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("require_trusted", sa.Boolean, nullable=False),
        sa.Column("required_flavor_parts", sa.JSON, nullable=False),
        sa.Column("required_tags", sa.JSON, nullable=False),
        sa.Column("max_report_age_seconds", sa.Integer, nullable=True),
        sa.Column("hardware_uuids", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "kbs_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("key_length", sa.Integer, nullable=True),
        sa.Column("curve_type", sa.String(32), nullable=True),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("usage", sa.String(1024), nullable=False),
        sa.Column(
            "transfer_policy_id",
            sa.String(36),
            sa.ForeignKey("kbs_transfer_policies.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("store", sa.String(16), nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_kbs_keys_algorithm", "kbs_keys", ["algorithm"])
    op.create_index("ix_kbs_keys_label", "kbs_keys", ["label"])
    op.create_index("ix_kbs_keys_created_at", "kbs_keys", ["created_at"])
    op.create_table(
        "kbs_trusted_certificates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("kind", "sha256", name="uq_kbs_trusted_certificates_kind_sha256"),
    )
    op.create_index("ix_kbs_trusted_certificates_kind", "kbs_trusted_certificates", ["kind"])
    op.create_table(
        "host_key_certificates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("usage", sa.String(16), nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("sha384", sa.String(96), nullable=False, unique=True),
        sa.Column("key_name", sa.String(140), nullable=False),
        sa.Column("aik_certificate_sha384", sa.String(96), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("host_id", "usage", name="uq_host_key_certificates_host_usage"),
    )
    op.create_index("ix_host_key_certificates_host_id", "host_key_certificates", ["host_id"])
    # SecL's default: a key goes to a host trusted now (its report at most 5 minutes old here; SecL does
    # not look at the report's age).
    op.bulk_insert(
        policies,
        [
            {
                "id": DEFAULT_POLICY_ID,
                "name": "require-trust-or-authorization",
                "require_trusted": True,
                "required_flavor_parts": [],
                "required_tags": {},
                "max_report_age_seconds": 300,
                "hardware_uuids": None,
                "created_at": datetime.now(UTC),
                "created_by": "secl-central",
            }
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_host_key_certificates_host_id", table_name="host_key_certificates")
    op.drop_table("host_key_certificates")
    op.drop_index("ix_kbs_trusted_certificates_kind", table_name="kbs_trusted_certificates")
    op.drop_table("kbs_trusted_certificates")
    op.drop_index("ix_kbs_keys_created_at", table_name="kbs_keys")
    op.drop_index("ix_kbs_keys_label", table_name="kbs_keys")
    op.drop_index("ix_kbs_keys_algorithm", table_name="kbs_keys")
    op.drop_table("kbs_keys")
    op.drop_table("kbs_transfer_policies")
