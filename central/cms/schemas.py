"""Request and response shapes of /cms/v1 (pydantic); they also generate the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from secl.central.cms.enrollment import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MAX_USES, normalize_host
from secl.central.schemas import Strict

Kind = Literal["tls", "tls-server", "tls-client"]
# What an enrollment token may allow: certificate kinds, and "aik" (enroll the host's AIK).
EnrollmentKind = Literal["tls", "tls-server", "tls-client", "aik"]


class CACertificateOut(BaseModel):
    subject: str
    fingerprint_sha384: str
    not_after: datetime
    pem: str


class CACertificatesOut(BaseModel):
    """The CA bundle: ``pem`` is every certificate concatenated (what a TLS client loads)."""

    fingerprint_sha384: str  # of the root CA, the value hosts pin when they join
    pem: str
    certificates: list[CACertificateOut]


def _host_kinds() -> list[EnrollmentKind]:
    return ["tls", "aik"]  # what a joining host needs


class EnrollmentTokenCreate(Strict):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    kinds: list[EnrollmentKind] = Field(default_factory=_host_kinds, min_length=1, max_length=4)
    ttl_seconds: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS
    max_uses: Annotated[int, Field(ge=1, le=MAX_USES)] = 1

    @field_validator("host")
    @classmethod
    def _host_is_a_name_or_address(cls, value: str) -> str:
        return normalize_host(value)

    @field_validator("kinds")
    @classmethod
    def _kinds_once(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class EnrollmentTokenOut(BaseModel):
    """An enrollment token as listed: never its value (only its hash is stored)."""

    id: str
    host: str
    kinds: list[str]
    created_at: datetime
    expires_at: datetime
    created_by: str
    uses: int
    max_uses: int
    state: Literal["active", "expired", "used-up"]


class EnrollmentTokenCreated(EnrollmentTokenOut):
    token: str  # shown once, here; the central keeps only its SHA-256


class EnrollmentTokenSearch(Strict):
    host: Annotated[str, Field(max_length=253)] | None = None


class CertificateRequest(Strict):
    csr: Annotated[str, Field(min_length=1, max_length=64 * 1024)]
    kind: Kind = "tls"


class CertificateIssued(BaseModel):
    certificate: str
    ca_certificates: str
    serial: str
    subject: str
    kind: str
    fingerprint_sha384: str
    not_after: datetime


class IssuedCertificateOut(BaseModel):
    serial: str
    subject: str
    kind: str
    issued_at: datetime
    not_after: datetime
    fingerprint_sha384: str
    enrollment_token_id: str | None


class CertificateSearch(Strict):
    kind: Kind | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
