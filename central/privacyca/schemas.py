"""Request and response shapes of /hvs/v2/privacyca (pydantic): AIK certification and the Privacy CA."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from secl.central.schemas import Strict


def _is_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (standard alphabet, with padding)") from None
    return value


_B64_PATTERN = r"^[A-Za-z0-9+/]+={0,2}$"


def _b64_limit(max_bytes: int) -> int:
    return 4 * ((max_bytes + 2) // 3)


# Standard base64 with padding. A TPM2B_PUBLIC is a few hundred bytes (RSA-4096: about 600); an EK
# certificate a few kilobytes, more when an NV read returns the whole padded index.
TPMPublicB64 = Annotated[
    str, Field(min_length=4, max_length=_b64_limit(2048), pattern=_B64_PATTERN), AfterValidator(_is_base64)
]
CertificateB64 = Annotated[
    str,
    Field(min_length=4, max_length=_b64_limit(16 * 1024), pattern=_B64_PATTERN),
    AfterValidator(_is_base64),
]
SecretB64 = Annotated[
    str, Field(min_length=4, max_length=_b64_limit(64), pattern=_B64_PATTERN), AfterValidator(_is_base64)
]


class IdentityChallengeRequest(Strict):
    ek_certificate: CertificateB64
    ek_public: TPMPublicB64
    aik_public: TPMPublicB64
    host_name: Annotated[str, Field(min_length=1, max_length=255)]


class IdentityChallenge(BaseModel):
    """What ActivateCredential needs: marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, base64."""

    challenge_id: str
    credential_blob: str
    encrypted_secret: str
    expires_at: datetime


class IdentityChallengeResponse(Strict):
    challenge_id: Annotated[str, Field(min_length=1, max_length=64)]
    secret: SecretB64


class AIKCertificateIssued(BaseModel):
    aik_certificate: str  # PEM
    privacy_ca: str  # PEM: the Privacy CA, then the root CA
    serial: str
    subject: str
    not_after: datetime


class PrivacyCAOut(BaseModel):
    certificate: str  # PEM of the Privacy CA alone
    chain: str  # PEM: the Privacy CA, then the root CA
    subject: str
    fingerprint_sha384: str
    not_after: datetime


# A TPMS_ATTEST of a certification is under 200 bytes, its RSA signature under 600, a TPM name under 70
# (SecL's agents pad theirs); the limits only stop absurd bodies.
AttestB64 = Annotated[
    str, Field(min_length=4, max_length=_b64_limit(1024), pattern=_B64_PATTERN), AfterValidator(_is_base64)
]


class RegisterKeyInfo(Strict):
    """SecL's RegisterKeyInfo: a TPM key, its TPM2_Certify by the host's AIK, and the AIK certificate (base64)."""

    public_key_modulus: TPMPublicB64  # the key's TPM2B_PUBLIC, as SecL's agents send it
    tpm_certify_key: AttestB64  # TPMS_ATTEST
    tpm_certify_key_signature: AttestB64  # TPMT_SIGNATURE
    aik_der_certificate: CertificateB64
    name_digest: AttestB64
    tpm_version: Annotated[str, Field(max_length=16)] = "2.0"
    operating_system: Annotated[str, Field(max_length=64)] = "linux"


class BindingKeyCertificate(BaseModel):
    binding_key_der_certificate: str  # base64 DER, SecL's field name


class SigningKeyCertificate(BaseModel):
    signing_key_der_certificate: str
