"""HVS tag certificates: the asset-tag certificates the central's Tag CA issued (migration 0009).

A row keeps the certificate (DER) and copies of what it says, for searching: the host's hardware UUID,
the subject, the tags in certificate order, the validity and the SHA-384 of the DER (what the host's TPM NV
index holds once the certificate is deployed). Revocation is a flag on the row, never a deletion: the
verifier reads the revoked digests of a host for every report, so a revoked certificate stays refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow


class TagCertificateRecord(Base):
    __tablename__ = "tag_certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hardware_uuid: Mapped[str] = mapped_column(String(36), index=True)  # lower case, the subject's CN
    subject: Mapped[str] = mapped_column(String(255))  # RFC 4514: CN=<hardware uuid>
    issuer: Mapped[str] = mapped_column(String(1024))
    serial_number: Mapped[str] = mapped_column(String(64))  # hex
    tags: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{"name", "value"}], certificate order
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    sha384: Mapped[str] = mapped_column(String(96), unique=True)  # hex SHA-384 of the DER
    der: Mapped[bytes] = mapped_column(LargeBinary)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(255))
