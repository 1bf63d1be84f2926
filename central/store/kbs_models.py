"""The key broker's tables (migration 0012): keys, transfer policies, and the trust stores of other
centrals (report signers, Privacy CAs). A key row never holds material, only its store's reference."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow

#: The policy every key gets unless it names another (created by migration 0012; it cannot be deleted).
DEFAULT_POLICY_ID = "00000000-0000-4000-8000-00000000d3f1"


class TransferPolicyRecord(Base):
    __tablename__ = "kbs_transfer_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    require_trusted: Mapped[bool] = mapped_column(Boolean, default=True)
    required_flavor_parts: Mapped[list[str]] = mapped_column(JSON, default=list)
    required_tags: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)  # name -> allowed values
    max_report_age_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hardware_uuids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))


class KeyRecord(Base):
    __tablename__ = "kbs_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    algorithm: Mapped[str] = mapped_column(String(8), index=True)  # AES | RSA | EC
    key_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    curve_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    label: Mapped[str] = mapped_column(String(255), default="", index=True)
    usage: Mapped[str] = mapped_column(String(1024), default="")
    transfer_policy_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("kbs_transfer_policies.id", ondelete="RESTRICT")
    )
    store: Mapped[str] = mapped_column(String(16))  # sealed | kmip
    reference: Mapped[str] = mapped_column(Text)  # the sealed blob, or the KMIP unique identifier
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(255))


class TrustedCertificate(Base):
    """A certificate of another central this broker trusts: a report signer (SecL's saml-certificates) or
    a Privacy CA (SecL's tpm-identity-certificates). This central's own are trusted without a row."""

    __tablename__ = "kbs_trusted_certificates"
    __table_args__ = (UniqueConstraint("kind", "sha256", name="uq_kbs_trusted_certificates_kind_sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # report-signer | privacy-ca
    subject: Mapped[str] = mapped_column(String(1024))
    issuer: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))  # hex thumbprint of the DER
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))


class HostKeyCertificate(Base):
    """A host's certified binding or signing key (issued by this central's Privacy CA), one per usage:
    re-certifying replaces it. Its SHA-384 goes into the host's manifest, reports and attestation results."""

    __tablename__ = "host_key_certificates"
    __table_args__ = (UniqueConstraint("host_id", "usage", name="uq_host_key_certificates_host_usage"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    usage: Mapped[str] = mapped_column(String(16))  # binding | signing
    der: Mapped[bytes] = mapped_column(LargeBinary)
    sha384: Mapped[str] = mapped_column(String(96), unique=True)
    key_name: Mapped[str] = mapped_column(String(140))  # hex TPM name of the key
    aik_certificate_sha384: Mapped[str] = mapped_column(String(96))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
