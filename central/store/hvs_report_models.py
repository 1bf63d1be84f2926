"""HVS trust reports: one row per attestation of a host (migration 0005).

A row keeps SecL's trust-report JSON, the verdict, the validity window, the host manifest the rules read
(by digest: a host re-attested without a change shares one ``host_manifests`` row, ~50 KB, migration 0010),
the digest of the evidence (quoted PCR digest + event log, :func:`secl.core.attestation.evidence_digest`)
and the signed attestation-result JWT handed to relying parties. Rows are never updated: a new attestation
is a new row, so the table is the host's history; ``GET /hvs/v2/reports?latestPerHost=true`` reads the
newest per host.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow


class HostManifestRecord(Base):
    """One distinct host manifest (SecL JSON), stored once however many reports were judged on it.

    Rows are never deleted: the verifier remembers the digests it has seen committed and skips the lookup
    for them (:func:`secl.central.reports.sign.store_host_manifest`). A clean-up of rows that no report
    references must keep that in mind (and take the central's processes down, or tell them).
    """

    __tablename__ = "host_manifests"

    # SHA-256 of the document's JSON with sorted keys (:func:`secl.central.reports.sign.manifest_digest`).
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_host_created", "host_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("hosts.id", ondelete="CASCADE"))
    trusted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # SecL's TrustReport JSON {policy_name, results, trusted} and the per-part map {part: {trust, rules}}.
    trust_report: Mapped[dict[str, Any]] = mapped_column(JSON)
    flavors_trust: Mapped[dict[str, Any]] = mapped_column(JSON)
    host_manifest_digest: Mapped[str] = mapped_column(
        String(64), ForeignKey("host_manifests.digest"), index=True
    )
    manifest_record: Mapped[HostManifestRecord] = relationship(lazy="select")
    evidence_digest: Mapped[str] = mapped_column(String(64))
    jwt: Mapped[str] = mapped_column(Text)
    # The asset tags {name: value} the report verified (its trusted ASSET_TAG flavor's certificate), else {}.
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(255))

    @property
    def host_manifest(self) -> dict[str, Any]:
        """The host manifest this report was judged on."""
        return self.manifest_record.document
