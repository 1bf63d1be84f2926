"""Request and response shapes of /kbs/v1 (pydantic): SecL's key fields, transfer policies, trust stores."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from secl.central.kbs.transferpolicy import FLAVOR_PARTS
from secl.central.schemas import Strict

Label = Annotated[str, Field(max_length=255)]
Usage = Annotated[str, Field(max_length=1024)]
TagName = Annotated[str, Field(min_length=1, max_length=64)]
TagValue = Annotated[str, Field(min_length=1, max_length=256)]
Pem = Annotated[str, Field(min_length=1, max_length=64 * 1024)]


class KeyInformation(Strict):
    """SecL's ``key_information``: what kind of key, and, to register an existing key, its material."""

    id: str | None = None  # ignored on input (SecL echoes it in answers)
    algorithm: Literal["AES", "RSA", "EC"]
    key_length: int | None = None
    curve_type: Annotated[str, Field(max_length=32)] | None = None
    # To register a key instead of creating one: AES as base64 of the raw key, RSA/EC as a PEM private key.
    key_string: Annotated[str, Field(max_length=16 * 1024)] | None = None
    kmip_key_id: Annotated[str, Field(max_length=255)] | None = None  # answers only


class KeyCreate(Strict):
    key_information: KeyInformation
    transfer_policy_id: Annotated[str, Field(max_length=36)] | None = None
    label: Label = ""
    usage: Usage = ""


class KeyInformationOut(BaseModel):
    id: str
    algorithm: str
    key_length: int | None = None
    curve_type: str | None = None
    kmip_key_id: str | None = None


class KeyOut(BaseModel):
    """SecL's KeyResponse (never the material)."""

    key_information: KeyInformationOut
    transfer_policy_id: str
    transfer_link: str
    created_at: datetime
    label: str = ""
    usage: str = ""


class KeySearch(Strict):
    label: Label | None = None
    algorithm: Literal["AES", "RSA", "EC"] | None = None


class TransferPolicyCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    require_trusted: bool = True
    required_flavor_parts: list[str] = Field(default_factory=list, max_length=5)
    required_tags: dict[TagName, list[TagValue]] = Field(default_factory=dict, max_length=64)
    # SecL's usage string ("country:US,state:CA"); merged into required_tags.
    usage: Usage = ""
    max_report_age_seconds: Annotated[int, Field(ge=1, le=30 * 86400)] | None = 300
    hardware_uuids: list[Annotated[str, Field(min_length=36, max_length=36)]] | None = Field(
        default=None, max_length=10_000
    )

    @field_validator("required_flavor_parts")
    @classmethod
    def _known_parts(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FLAVOR_PARTS))
        if unknown:
            raise ValueError(f"unknown flavor part(s) {', '.join(unknown)}; known: {', '.join(FLAVOR_PARTS)}")
        return value


class TransferPolicyOut(BaseModel):
    id: str
    name: str
    require_trusted: bool
    required_flavor_parts: list[str]
    required_tags: dict[str, list[str]]
    usage: str
    max_report_age_seconds: int | None
    hardware_uuids: list[str] | None
    created_at: datetime
    created_by: str


class NameSearch(Strict):
    name: Annotated[str, Field(max_length=255)] | None = None


class TrustedCertificateCreate(Strict):
    certificate: Pem


class TrustedCertificateOut(BaseModel):
    id: str
    subject: str
    issuer: str
    sha256: str
    not_after: datetime
    created_at: datetime
    created_by: str


class KeyTransferRequest(Strict):
    """A host's evidence: its attestation result (the JWT a central signed) and the AIK and binding-key
    certificates it names (PEM, or base64 of the DER)."""

    attestation_result: Annotated[str, Field(min_length=1, max_length=64 * 1024)]
    aik_certificate: Pem
    binding_key_certificate: Pem


class KeyTransferOut(BaseModel):
    """SecL's KeyTransferAttributes: ``payload`` is the key wrapped with RSA-OAEP-SHA256, label ``TPM2\\0``."""

    id: str
    payload: str
    algorithm: str
    key_length: int | None = None
    created_at: datetime
