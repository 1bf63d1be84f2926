"""Request and response shapes of /hvs/v2/tag-certificates and the tag RPCs (pydantic, SecL's JSON names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from secl.central.schemas import Strict, UUIDStr
from secl.central.tags.store import DEFAULT_VALIDITY_DAYS

# The core checks the limits in UTF-8 bytes with named codes; these only bound what is parsed at all.
_Text = Annotated[str, Field(max_length=1024)]


class TagIn(Strict):
    name: _Text
    value: _Text


class TagCertificateCreate(Strict):
    """SecL's TagCertificateCreateCriteria, plus the validity (days from now)."""

    hardware_uuid: UUIDStr
    selection_content: Annotated[list[TagIn], Field(max_length=1024)]
    validity_days: Annotated[int, Field(ge=1, le=3650)] = DEFAULT_VALIDITY_DAYS


class TagOut(BaseModel):
    name: str
    value: str


class TagCertificateOut(BaseModel):
    id: str
    hardware_uuid: str
    subject: str
    issuer: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    selection_content: list[TagOut]
    sha384: str  # hex: what the host's TPM holds once deployed
    certificate: str  # base64 DER, SecL's field
    revoked: bool
    revoked_at: datetime | None
    revoked_by: str | None
    created_at: datetime
    created_by: str


class TagCertificateCollection(BaseModel):
    tag_certificates: list[TagCertificateOut]


class TagCertificateSearch(Strict):
    id: UUIDStr | None = None
    hardwareUuid: UUIDStr | None = None
    subjectEqualTo: Annotated[str, Field(max_length=255)] | None = None
    subjectContains: Annotated[str, Field(max_length=255)] | None = None
    validOn: datetime | None = None
    revoked: bool | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class DeployTagCertificate(Strict):
    certificate_id: UUIDStr
    host_id: UUIDStr | None = None  # default: the registered host with the certificate's hardware UUID


class DeployOut(BaseModel):
    certificate_id: str
    host_id: str
    host_name: str
    hardware_uuid: str
    flavor_id: str
    replaced_flavor_ids: list[str]
    report_id: str | None  # the report made right after deploying; null when attesting failed
    trusted: bool | None
    tags: dict[str, str]  # what that report verified
    attestation_error: dict[str, Any] | None  # {code, message} when attesting failed


class ClearTag(Strict):
    host_id: UUIDStr


class ClearTagOut(BaseModel):
    host_id: str
    host_name: str
    hardware_uuid: str | None
    removed_flavor_ids: list[str]  # the host's ASSET_TAG flavors, deleted
    report_id: str | None  # the report made right after clearing; null when attesting failed
    trusted: bool | None
    attestation_error: dict[str, Any] | None
