"""Request and response shapes of /hvs/v2/endorsement-cas and /hvs/v2/tpm-endorsements (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from secl.central.schemas import Strict, UUIDStr


class EndorsementCACreate(Strict):
    certificate: Annotated[str, Field(min_length=1, max_length=64 * 1024)]  # one PEM certificate


class EndorsementCAOut(BaseModel):
    """A trusted EK CA; ``source`` says where it is held (``file``: keys/endorsement-cas.pem, no id)."""

    id: str | None
    source: Literal["database", "file"]
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime | None
    created_by: str | None
    pem: str


_MAX_CERTIFICATE = 64 * 1024
Comment = Annotated[str, Field(max_length=1024)]


class TpmEndorsementCreate(Strict):
    # One EK certificate: PEM, or base64 of its DER as read from the TPM's NV (an NV header is stripped).
    certificate: Annotated[str, Field(min_length=1, max_length=_MAX_CERTIFICATE)]
    hardware_uuid: UUIDStr | None = None
    comment: Comment = ""
    revoked: bool = False


class TpmEndorsementUpdate(Strict):
    hardware_uuid: UUIDStr | None = None
    comment: Comment | None = None
    revoked: bool | None = None


class TpmEndorsementSearch(Strict):
    hardwareUuidEqualTo: UUIDStr | None = None
    issuerContains: Annotated[str, Field(max_length=1024)] | None = None
    commentContains: Comment | None = None
    revokedEqualTo: bool | None = None


class TpmEndorsementOut(BaseModel):
    id: str
    hardware_uuid: str | None
    issuer: str
    subject: str
    certificate_sha256: str
    revoked: bool
    comment: str
    certificate: str  # PEM
    created_at: datetime
    created_by: str
    updated_at: datetime


class TpmEndorsementCollection(BaseModel):
    tpm_endorsements: list[TpmEndorsementOut]
