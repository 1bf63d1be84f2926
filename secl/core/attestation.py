"""The signed attestation result handed to relying parties: a JWT (JWS, ES256), not SAML (DESIGN §3).

Header: ``{"alg": "ES256", "kid": <report-signing key id>, "typ": "secl-attestation+jwt"}``; the ``typ``
is the format's version marker, so a later format gets a new ``typ`` and an old verifier refuses it
instead of misreading it. Claims:

``iss`` (the central), ``sub`` (the host's hardware UUID), ``host_name``, ``iat``/``exp`` (seconds),
optional ``nonce`` (the relying party's, echoed), ``trusted`` (overall), ``parts`` ({flavor part: bool}),
``tags`` ({asset tag name: value}), ``aik_certificate_sha384`` and optional
``binding_key_certificate_sha384`` (hex SHA-384 of the DER certificates, so a relying party can bind the
result to the keys it sees), ``report_id`` (the stored trust report) and ``evidence_digest`` (hex
SHA-256 of the quoted PCR digest ‖ SHA-256 of the event log: equal digests mean unchanged evidence, which
the verifier uses to re-sign a cached report).

Verification pins ES256 before it looks at the signature (``alg: none`` and HMAC-with-the-public-key
tokens never reach a verifier), then checks the signature, ``typ``, the validity window at ``now`` and
the nonce in constant time, and raises :class:`AttestationError` with a distinct ``code`` per failure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from secl.core.errors import EvidenceError
from secl.core.pcrevents import EMPTY, freeze

__all__ = [
    "ALGORITHM",
    "TOKEN_TYPE",
    "AttestationError",
    "AttestationResult",
    "certificate_sha384",
    "evidence_digest",
    "evidence_digest_from_log_sha256",
    "sign_attestation_result",
    "verify_attestation_result",
]

TOKEN_TYPE = "secl-attestation+jwt"
ALGORITHM = "ES256"
_REQUIRED = ("iss", "sub", "host_name", "iat", "exp", "trusted", "parts", "tags", "aik_certificate_sha384",
             "report_id", "evidence_digest")  # fmt: skip


class AttestationError(EvidenceError):
    """An attestation result token is malformed, forged, expired, or for another request."""

    code = "attestation-invalid"


def evidence_digest(quoted_pcr_digest: bytes, event_log: bytes) -> str:
    """Hex SHA-256(quoted PCR digest ‖ SHA-256(event log)): the identity of one host's evidence."""
    return evidence_digest_from_log_sha256(quoted_pcr_digest, hashlib.sha256(event_log).digest())


def evidence_digest_from_log_sha256(quoted_pcr_digest: bytes, event_log_sha256: bytes) -> str:
    """:func:`evidence_digest` for a caller that has hashed the event log already."""
    return hashlib.sha256(quoted_pcr_digest + event_log_sha256).hexdigest()


def certificate_sha384(der: bytes) -> str:
    """Hex SHA-384 of a DER certificate (the AIK's or the binding key's)."""
    return hashlib.sha384(der).hexdigest()


@dataclass(frozen=True)
class AttestationResult:
    """The claims of one attestation result. Times are whole seconds since the epoch (JWT NumericDate)."""

    issuer: str
    subject: str  # the host's hardware UUID
    host_name: str
    issued_at: int
    expires_at: int
    trusted: bool
    parts: Mapping[str, bool]
    aik_certificate_sha384: str
    report_id: str
    evidence_digest: str
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    nonce: str | None = None
    binding_key_certificate_sha384: str | None = None

    def to_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "host_name": self.host_name,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "trusted": self.trusted,
            "parts": dict(self.parts),
            "tags": dict(self.tags),
            "aik_certificate_sha384": self.aik_certificate_sha384,
            "report_id": self.report_id,
            "evidence_digest": self.evidence_digest,
        }
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        if self.binding_key_certificate_sha384 is not None:
            claims["binding_key_certificate_sha384"] = self.binding_key_certificate_sha384
        return claims

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> AttestationResult:
        """Check the claim types (a signed token can still carry nonsense from a buggy signer)."""
        missing = [name for name in _REQUIRED if name not in claims]
        if missing:
            raise AttestationError(
                f"attestation result lacks claims {missing}", code="attestation-claims-invalid"
            )
        strings = ("iss", "sub", "host_name", "aik_certificate_sha384", "report_id", "evidence_digest")
        ints = ("iat", "exp")
        if (
            not all(isinstance(claims[k], str) for k in strings)
            or not all(isinstance(claims[k], int) and not isinstance(claims[k], bool) for k in ints)
            or not isinstance(claims["trusted"], bool)
            or not _map_of(claims["parts"], bool)
            or not _map_of(claims["tags"], str)
            or not isinstance(claims.get("nonce", ""), str)
            or not isinstance(claims.get("binding_key_certificate_sha384", ""), str)
        ):
            raise AttestationError(
                "attestation result claims have the wrong types", code="attestation-claims-invalid"
            )
        return cls(
            issuer=claims["iss"],
            subject=claims["sub"],
            host_name=claims["host_name"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            trusted=claims["trusted"],
            parts=freeze(dict(claims["parts"])),
            aik_certificate_sha384=claims["aik_certificate_sha384"],
            report_id=claims["report_id"],
            evidence_digest=claims["evidence_digest"],
            tags=freeze(dict(claims["tags"])),
            nonce=claims.get("nonce"),
            binding_key_certificate_sha384=claims.get("binding_key_certificate_sha384"),
        )


def _map_of(value: object, kind: type) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, kind) for k, v in value.items()
    )


def _p256(key: object, what: str) -> None:
    if not isinstance(key.curve if hasattr(key, "curve") else None, ec.SECP256R1):
        raise AttestationError(f"ES256 needs a P-256 {what} key", code="attestation-key-invalid")


def sign_attestation_result(
    result: AttestationResult, private_key: ec.EllipticCurvePrivateKey, kid: str
) -> str:
    """Sign ``result`` with the central's report-signing key (P-256); ``kid`` names that key."""
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise AttestationError("ES256 needs an EC private key", code="attestation-key-invalid")
    _p256(private_key, "private")
    if not isinstance(kid, str) or not kid:
        raise AttestationError("the key id (kid) must be a non-empty string", code="attestation-key-invalid")
    if result.expires_at <= result.issued_at:
        raise AttestationError("a result must expire after it is issued", code="attestation-claims-invalid")
    headers = {"kid": kid, "typ": TOKEN_TYPE}
    return jwt.encode(result.to_claims(), private_key, algorithm=ALGORITHM, headers=headers)


def verify_attestation_result(
    token: str,
    public_key_or_cert: ec.EllipticCurvePublicKey | x509.Certificate,
    *,
    expected_nonce: str | None = None,
    now: datetime | None = None,
    leeway: int = 0,
) -> AttestationResult:
    """Verify a result token and return its claims, or raise :class:`AttestationError`.

    ``public_key_or_cert`` is the report-signing key (or its certificate, whose chain the caller has
    checked). With ``expected_nonce`` the token must carry exactly that nonce. ``now`` defaults to the
    current time; ``leeway`` (seconds) tolerates clock skew in both directions.
    """
    key = (
        public_key_or_cert.public_key()
        if isinstance(public_key_or_cert, x509.Certificate)
        else public_key_or_cert
    )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError("ES256 needs an EC public key", code="attestation-key-invalid")
    _p256(key, "public")
    if not isinstance(token, str):
        raise AttestationError("an attestation result is a compact JWS string", code="attestation-malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise AttestationError(f"not a JWS: {exc}", code="attestation-malformed") from None
    # Pinned before the signature is looked at: the token must not choose how it is verified.
    if header.get("alg") != ALGORITHM:
        raise AttestationError(
            f"algorithm {header.get('alg')!r} is not {ALGORITHM}", code="attestation-algorithm-rejected"
        )
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            # Times are checked below against the caller's ``now``; PyJWT only knows the wall clock.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise AttestationError("signature does not verify", code="attestation-signature-invalid") from None
    except jwt.PyJWTError as exc:
        raise AttestationError(f"malformed token: {exc}", code="attestation-malformed") from None
    if header.get("typ") != TOKEN_TYPE:
        raise AttestationError(
            f"token type {header.get('typ')!r} is not {TOKEN_TYPE}", code="attestation-type-mismatch"
        )
    result = AttestationResult.from_claims(claims)
    instant = int((now or datetime.now(UTC)).timestamp())
    if result.expires_at + leeway <= instant:
        raise AttestationError(f"expired at {result.expires_at} (now {instant})", code="attestation-expired")
    if result.issued_at - leeway > instant:
        raise AttestationError(
            f"issued in the future ({result.issued_at}, now {instant})", code="attestation-not-yet-valid"
        )
    if expected_nonce is not None:
        # Constant time: the nonce is the relying party's freshness secret until it sees the result.
        given = (result.nonce or "").encode()
        if result.nonce is None or not hmac.compare_digest(given, expected_nonce.encode()):
            raise AttestationError(
                "nonce differs from the relying party's", code="attestation-nonce-mismatch"
            )
    return result
