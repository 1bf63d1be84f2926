"""Host manifests stored once: reports reference them by digest.

A report used to carry its whole host manifest (~50 KB for a server's UEFI log); a host re-attested
hourly without a change stored the same document again every time. Now ``host_manifests`` holds each
distinct document once, keyed by the SHA-256 of its JSON with sorted keys, and ``reports`` points at it.
Existing reports are moved over (identical manifests collapse into one row).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from secl.central.store.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _digest(document: object) -> str:
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def upgrade() -> None:
    op.create_table(
        "host_manifests",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("host_manifest_digest", sa.String(64), nullable=True))
    connection = op.get_bind()
    reports = sa.table("reports", sa.column("id", sa.String), sa.column("host_manifest", sa.JSON),
                       sa.column("host_manifest_digest", sa.String))  # fmt: skip
    manifests = sa.table("host_manifests", sa.column("digest", sa.String), sa.column("document", sa.JSON),
                         sa.column("created_at", UTCDateTime()))  # fmt: skip
    stored: set[str] = set()
    for report_id, raw in connection.execute(sa.select(reports.c.id, reports.c.host_manifest)).all():
        document = json.loads(raw) if isinstance(raw, str) else raw  # some drivers hand JSON back as text
        digest = _digest(document)
        if digest not in stored:
            connection.execute(
                manifests.insert().values(digest=digest, document=document, created_at=datetime.now(UTC))
            )
            stored.add(digest)
        connection.execute(
            reports.update().where(reports.c.id == report_id).values(host_manifest_digest=digest)
        )
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("host_manifest")
        batch.alter_column("host_manifest_digest", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key(
            "fk_reports_host_manifest_digest", "host_manifests", ["host_manifest_digest"], ["digest"]
        )
        batch.create_index("ix_reports_host_manifest_digest", ["host_manifest_digest"])


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("host_manifest", sa.JSON, nullable=True))
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "UPDATE reports SET host_manifest = (SELECT document FROM host_manifests"
            " WHERE host_manifests.digest = reports.host_manifest_digest)"
        )
    )
    with op.batch_alter_table("reports") as batch:
        batch.drop_index("ix_reports_host_manifest_digest")
        batch.drop_constraint("fk_reports_host_manifest_digest", type_="foreignkey")
        batch.drop_column("host_manifest_digest")
        batch.alter_column("host_manifest", existing_type=sa.JSON, nullable=False)
    op.drop_table("host_manifests")
