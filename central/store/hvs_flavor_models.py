"""HVS tables for attestation inputs: hosts, flavors, flavor groups, their links, and flavor templates.

Same ``Base`` and metadata as :mod:`secl.central.store.models`; migration 0004 creates them (and the default
flavor groups). A flavor is stored as the JSON text it was uploaded as (member order kept, so a SecL
signature over "the document as read" can still be checked) next to our signature over it; ``flavor_part``,
``label`` and ``description`` are copies made for searching, never trusted: every use re-parses the stored
text and verifies the signature.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from secl.central.store.models import Base, UTCDateTime, new_id, utcnow

#: Host status values; the verifier updates the column, the API only shows it.
HOST_STATUSES = ("unknown", "connected", "unreachable", "unauthorized", "untrusted-tls", "error")

host_flavorgroups = Table(
    "host_flavorgroups",
    Base.metadata,
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    Column("flavorgroup_id", String(36), ForeignKey("flavorgroups.id", ondelete="CASCADE"), primary_key=True),
)

flavorgroup_flavors = Table(
    "flavorgroup_flavors",
    Base.metadata,
    Column("flavorgroup_id", String(36), ForeignKey("flavorgroups.id", ondelete="CASCADE"), primary_key=True),
    Column("flavor_id", String(36), ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True),
)


class Host(Base):
    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    connection_string: Mapped[str] = mapped_column(String(1024))
    description: Mapped[str] = mapped_column(Text, default="")
    # Filled by the verifier from the host's SMBIOS (via the trust agent); null until then.
    hardware_uuid: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="unknown")
    status_detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FlavorGroup(Base):
    __tablename__ = "flavorgroups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # [{"flavor_part", "match_policy": {"match_type", "required"}}], SecL's shape.
    match_policies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StoredFlavor(Base):
    __tablename__ = "flavors"
    __table_args__ = (UniqueConstraint("flavor_part", "label", name="uq_flavors_part_label"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # meta.id
    flavor_part: Mapped[str] = mapped_column(String(16), index=True)
    label: Mapped[str] = mapped_column(String(512))
    description: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # meta.description, for search
    # meta.description.hardware_uuid (lower case) of HOST_UNIQUE and ASSET_TAG flavors: a report looks up
    # its host's own flavors by this index instead of reading every host's.
    hardware_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    document: Mapped[str] = mapped_column(Text)  # the flavor JSON, as uploaded (meta.id filled in)
    signature: Mapped[str] = mapped_column(Text)  # ours: flavorsign.SIGNATURE_SCHEME
    signature_scheme: Mapped[str] = mapped_column(String(32))
    # The signature SecL's HVS made, kept as it came, and whether it could be checked at upload.
    secl_signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    secl_signature_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    secl_signature_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(255))


class FlavorTemplate(Base):
    __tablename__ = "flavor_templates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    label: Mapped[str] = mapped_column(String(255), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)  # {id, label, condition, flavor_parts}
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
