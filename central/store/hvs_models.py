"""HVS tables: the endorsement CAs held in the database and the Privacy CA's pending AIK challenges.

Kept apart from :mod:`secl.central.store.models` (same ``Base``, same metadata); migration 0003 creates them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow


class EndorsementCA(Base):
    """A TPM vendor's EK CA certificate trusted for EK validation, shared by every central instance.

    The trust store is these rows plus the PEM bundle file ``keys/endorsement-cas.pem``.
    """

    __tablename__ = "endorsement_cas"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # SHA-256 of the certificate's DER, as the tolerant loader computes it (after trimming NV padding).
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(1024))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))


class AIKChallenge(Base):
    """One MakeCredential challenge: only the SHA-256 of its secret is kept, never the secret.

    ``used`` is set by an atomic ``UPDATE ... WHERE used = false`` before the secret is compared, so a
    challenge is redeemed (or burnt by a wrong guess) at most once, whichever central instance answers.
    """

    __tablename__ = "aik_challenges"
    __table_args__ = (Index("ix_aik_challenges_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    aik_public: Mapped[bytes] = mapped_column(LargeBinary)  # marshalled TPM2B_PUBLIC
    aik_name: Mapped[str] = mapped_column(String(140))  # hex TPM name (nameAlg || digest)
    ek_certificate_sha256: Mapped[str] = mapped_column(String(64))
    host_name: Mapped[str] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when the challenge is redeemed: the serial (hex) of the AIK certificate it produced.
    certificate_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TpmEndorsement(Base):
    """An EK certificate registered by an operator (SecL's tpm-endorsements): the Privacy CA accepts it
    without a vendor CA chain, and with ``require_ek_registration`` only registered EKs are accepted.
    A revoked registration refuses that EK even when its chain is good."""

    __tablename__ = "tpm_endorsements"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # SHA-256 of the certificate's DER as the tolerant loader computes it (the Privacy CA's lookup key).
    certificate_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    hardware_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    issuer: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(1024))
    pem: Mapped[str] = mapped_column(Text)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
