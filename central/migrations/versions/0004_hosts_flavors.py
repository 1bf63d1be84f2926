"""HVS hosts, flavors, flavor groups (with SecL's four default groups), their links, flavor templates.

The default flavor templates are not inserted here: ``secl-central setup`` calls
``secl.central.hvs.templates.ensure_default_templates``, which also refreshes them when a release ships new
wording, something a migration frozen in time could not do.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _policy(part: str, match_type: str, required: str) -> dict[str, object]:
    return {"flavor_part": part, "match_policy": {"match_type": match_type, "required": required}}


# SecL's defaults (its HVS setup task "create-default-flavorgroup"), frozen as of this revision.
DEFAULT_GROUPS = {
    "automatic": [
        _policy("PLATFORM", "ANY_OF", "REQUIRED"),
        _policy("OS", "ANY_OF", "REQUIRED"),
        _policy("SOFTWARE", "ALL_OF", "REQUIRED_IF_DEFINED"),
        _policy("ASSET_TAG", "LATEST", "REQUIRED_IF_DEFINED"),
        _policy("HOST_UNIQUE", "LATEST", "REQUIRED_IF_DEFINED"),
    ],
    "platform_software": [_policy("SOFTWARE", "ANY_OF", "REQUIRED")],
    "workload_software": [_policy("SOFTWARE", "ANY_OF", "REQUIRED")],
    "host_unique": [],
}


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("connection_string", sa.String(1024), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("hardware_uuid", sa.String(36), nullable=True, unique=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_detail", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    groups = op.create_table(
        "flavorgroups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("match_policies", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "flavors",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("flavor_part", sa.String(16), nullable=False, index=True),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("description", sa.JSON, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("signature_scheme", sa.String(32), nullable=False),
        sa.Column("secl_signature", sa.Text, nullable=True),
        sa.Column("secl_signature_status", sa.String(16), nullable=True),
        sa.Column("secl_signature_detail", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("flavor_part", "label", name="uq_flavors_part_label"),
    )
    op.create_table(
        "host_flavorgroups",
        sa.Column("host_id", sa.String(36), sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "flavorgroup_id", sa.String(36), sa.ForeignKey("flavorgroups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )  # fmt: skip
    op.create_table(
        "flavorgroup_flavors",
        sa.Column(
            "flavorgroup_id", sa.String(36), sa.ForeignKey("flavorgroups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "flavor_id", sa.String(36), sa.ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
        ),
    )  # fmt: skip
    op.create_table(
        "flavor_templates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("label", sa.String(255), nullable=False, unique=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        groups,
        [
            {"id": str(uuid.uuid4()), "name": name, "match_policies": policies, "is_default": True,
             "created_at": now}
            for name, policies in DEFAULT_GROUPS.items()
        ],
    )  # fmt: skip


def downgrade() -> None:
    for table in ("flavor_templates", "flavorgroup_flavors", "host_flavorgroups", "flavors", "flavorgroups",
                  "hosts"):  # fmt: skip
        op.drop_table(table)
