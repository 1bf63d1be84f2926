"""The report job queue (migration 0006): one row per asynchronous attestation of a host.

``secl-central worker`` processes claim rows (PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite: a
conditional ``UPDATE``), attest the host and record the outcome here. A claim carries a lease: a worker
that dies leaves its row ``running`` with an expired lease, and the next claim takes it again. A partial
unique index keeps at most one active (queued or running) job per host, so repeated requests and the
refresh pass of several workers never pile up work for one host.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow

#: queued → running → done | failed; a retryable failure puts the job back to queued (with a delay).
JOB_STATUSES = ("queued", "running", "done", "failed")
ACTIVE = "status IN ('queued', 'running')"


class ReportJob(Base):
    __tablename__ = "report_jobs"
    __table_args__ = (
        Index("ix_report_jobs_claim", "status", "available_at"),
        Index(
            "uq_report_jobs_active_host",
            "host_id",
            unique=True,
            postgresql_where=text(ACTIVE),
            sqlite_where=text(ACTIVE),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(String(16), default="requested")  # requested | refresh
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    # Not claimed before this time (retry backoff).
    available_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    # The current claim: which worker, a token only it knows, and until when the claim holds.
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The outcome: the report made (or re-used), or the error code of the last failure.
    report_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("reports.id", ondelete="SET NULL"), nullable=True, index=True
    )
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of what a report depends on beyond the evidence (flavors, policies, anchors): see reports.basis.
    basis_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
