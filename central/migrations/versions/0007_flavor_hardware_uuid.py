"""Flavors carry their host's hardware UUID in an indexed column.

A report looks up its host's HOST_UNIQUE and ASSET_TAG flavors by this column; before, it read every
flavor of the host_unique group (every host's) and filtered in Python, which grows with the fleet.
Existing rows are filled from ``meta.description.hardware_uuid``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flavors") as batch:
        batch.add_column(sa.Column("hardware_uuid", sa.String(36), nullable=True))
        batch.create_index("ix_flavors_hardware_uuid", ["hardware_uuid"])
    connection = op.get_bind()
    flavors = sa.table("flavors", sa.column("id", sa.String), sa.column("description", sa.JSON),
                       sa.column("hardware_uuid", sa.String))  # fmt: skip
    for flavor_id, stored in connection.execute(sa.select(flavors.c.id, flavors.c.description)):
        description = json.loads(stored) if isinstance(stored, str) else stored  # some drivers give text
        value = (description or {}).get("hardware_uuid")
        if value is not None and str(value).strip():
            connection.execute(
                flavors.update()
                .where(flavors.c.id == flavor_id)
                .values(hardware_uuid=str(value).strip().lower())
            )


def downgrade() -> None:
    with op.batch_alter_table("flavors") as batch:
        batch.drop_index("ix_flavors_hardware_uuid")
        batch.drop_column("hardware_uuid")
