"""The workload service's tables (migration 0013): images, image flavors and their links, the wrapped keys
it caches per host and key, and the VM trust reports hosts file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow


class ImageFlavorRecord(Base):
    """SecL's image flavor, stored as the exact text the central signed (so the signature checks the
    bytes served, not a re-serialization)."""

    __tablename__ = "wls_flavors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the flavor's meta.id
    label: Mapped[str] = mapped_column(String(255), unique=True)
    key_url: Mapped[str] = mapped_column(String(2048), default="")
    document: Mapped[str] = mapped_column(Text)  # {"meta", "encryption_required", ...} as JSON text
    signature: Mapped[str] = mapped_column(Text)  # base64, secl.core.flavorsign's scheme
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))


class ImageRecord(Base):
    __tablename__ = "wls_images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the image's UUID, chosen by its owner
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))


class ImageFlavorLink(Base):
    __tablename__ = "wls_image_flavors"

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wls_images.id", ondelete="CASCADE"), primary_key=True
    )
    flavor_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("wls_flavors.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class CachedKey(Base):
    """A key wrapped to a host's binding key (useless without that TPM, so not secret), with the report
    whose verdict released it: reused only while that report is young enough for the key's policy."""

    __tablename__ = "wls_key_cache"

    host_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    key_url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    report_id: Mapped[str] = mapped_column(String(36))
    report_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VmReport(Base):
    """SecL's instance trust report as the host's TPM signing key signed it (``data``, ``hash_alg``,
    ``signature`` kept verbatim), with the fields searched on."""

    __tablename__ = "wls_reports"
    __table_args__ = (Index("ix_wls_reports_instance_created", "instance_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    hardware_uuid: Mapped[str] = mapped_column(String(36), index=True)
    image_id: Mapped[str] = mapped_column(String(64), default="")
    trusted: Mapped[bool] = mapped_column(Boolean)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(255))
