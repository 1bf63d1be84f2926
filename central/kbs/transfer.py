"""Deciding a key transfer: is this the TPM of a host that a trusted report signer just found trustworthy?

A host asks for a key with three things: its attestation result (the JWT a central signed), its AIK
certificate and its binding-key certificate. :func:`authorize_transfer` checks, in order, and refuses at
the first failure with a code of its own:

1. the JWT is signed by a report signer this broker trusts (its ``kid`` names the signer's certificate),
   the signer's certificate is valid now, and the JWT is within its validity window;
2. the AIK certificate is the one the report names (SHA-384) and was issued by a trusted Privacy CA;
3. the binding-key certificate is the one the report names, was issued by a trusted Privacy CA, and the
   TPM statement inside it was signed by that AIK about a non-migratable decrypt-only key;
4. the key's transfer policy accepts the result (trust, flavor parts, tags, report age, hosts).

Only then is the key wrapped to the binding key (:func:`secl.core.keywrap.wrap_key`). Nothing here reads
the database or the network: trust anchors and policies are passed in, so the same checks serve a
broker in the attesting central and one in an image owner's own central.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from secl.central.kbs.transferpolicy import TransferPolicy, TransferRefused, decide_transfer
from secl.core.attestation import AttestationError, AttestationResult, verify_attestation_result
from secl.core.certifiedkey import (
    CertifiedKeyError,
    KeyUsage,
    read_certified_key_certificate,
    verify_certified_key_certificate,
)
from secl.core.errors import EvidenceError
from secl.core.tpm import load_ak_public
from secl.core.verifymemo import VerificationMemo, certificate_key

#: Clock skew tolerated between the central that signed a report and this broker.
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class TransferEvidence:
    """What a host presents, all of it unverified until :func:`authorize_transfer` returns."""

    attestation_jwt: str
    aik_certificate: bytes  # DER or PEM
    binding_key_certificate: bytes  # DER or PEM


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """The report signers whose results this broker accepts, and the Privacy CAs whose AIK and binding-key
    certificates it accepts: this central's own, plus those registered for other centrals."""

    report_signers: Sequence[x509.Certificate]
    privacy_cas: Sequence[x509.Certificate]


@dataclass(frozen=True, slots=True)
class AuthorizedTransfer:
    result: AttestationResult
    binding_key: rsa.RSAPublicKey
    binding_key_certificate_sha384: str
    signer_subject: str


def authorize_transfer(
    evidence: TransferEvidence,
    anchors: TrustAnchors,
    policy: TransferPolicy,
    *,
    now: datetime | None = None,
    memo: VerificationMemo | None = None,
) -> AuthorizedTransfer:
    """Check everything a key transfer depends on; raise :class:`TransferRefused` with the failing rule.

    ``memo`` remembers certificate signatures that verified (a host presents the same AIK and binding-key
    certificates on every transfer, and those checks were two thirds of a release); validity, names and
    the TPM statement are checked on every call.
    """
    now = now or datetime.now(UTC)
    signer = _report_signer(evidence.attestation_jwt, anchors, now)
    try:
        result = verify_attestation_result(evidence.attestation_jwt, signer, now=now, leeway=LEEWAY_SECONDS)
    except AttestationError as exc:
        raise TransferRefused(
            f"the attestation result does not verify: {exc.message}", code=exc.code
        ) from None
    aik_certificate = _certificate(evidence.aik_certificate, "AIK")
    if _sha384(aik_certificate) != result.aik_certificate_sha384.lower():
        raise TransferRefused(
            "the AIK certificate is not the one the attestation result names", code="aik-not-in-report"
        )
    _require_issued_by_privacy_ca(aik_certificate, anchors, now, "AIK", memo)
    binding = _certificate(evidence.binding_key_certificate, "binding-key")
    binding_sha384 = _sha384(binding)
    if not result.binding_key_certificate_sha384:
        raise TransferRefused(
            "the attestation result names no binding key: certify the host's binding key, then attest it again",
            code="binding-key-not-in-report",
        )
    if binding_sha384 != result.binding_key_certificate_sha384.lower():
        raise TransferRefused(
            "the binding-key certificate is not the one the attestation result names",
            code="binding-key-not-in-report",
        )
    _require_issued_by_privacy_ca(binding, anchors, now, "binding-key", memo)
    try:
        aik = load_ak_public(aik_certificate.public_bytes(Encoding.PEM))
        certified = verify_certified_key_certificate(
            read_certified_key_certificate(binding.public_bytes(Encoding.PEM)), KeyUsage.BINDING, aik
        )
    except CertifiedKeyError as exc:
        raise TransferRefused(f"the binding key does not hold: {exc.message}", code=exc.code) from None
    except EvidenceError as exc:
        raise TransferRefused(
            f"the AIK certificate cannot be used: {exc.message}", code="aik-malformed"
        ) from None
    decide_transfer(policy, result, now=int(now.timestamp()))
    return AuthorizedTransfer(result, certified.public_key, binding_sha384, signer.subject.rfc4514_string())


def _report_signer(token: str, anchors: TrustAnchors, now: datetime) -> x509.Certificate:
    kid = _unverified_kid(token)
    for certificate in anchors.report_signers:
        if isinstance(kid, str) and certificate.fingerprint(hashes.SHA256()).hex() == kid.lower():
            _require_valid_at(certificate, now, "report signer", code="report-signer-expired")
            return certificate
    raise TransferRefused(
        "the attestation result is signed by a report signer this key broker does not trust (register its "
        "certificate under /kbs/v1/saml-certificates)",
        code="report-signer-unknown",
    )


def _unverified_kid(token: str) -> object:
    """The ``kid`` of a JWT's header, read without PyJWT: only to pick the signer, whose key
    :func:`verify_attestation_result` then checks the whole token with. PyJWT's header reader checks the
    alphabet of all three segments character by character in Python, which was a fifth of a release and
    is repeated anyway when the token is verified."""
    head, sep, _ = token.partition(".")
    try:
        if not sep:
            raise ValueError("no header segment")
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TransferRefused("the attestation result is not a JWT", code="attestation-malformed") from None
    if not isinstance(header, dict):
        raise TransferRefused("the attestation result is not a JWT", code="attestation-malformed")
    return header.get("kid")


def issued_by(certificate: x509.Certificate, ca: x509.Certificate, memo: VerificationMemo | None) -> bool:
    """Whether ``ca`` signed ``certificate`` (a success remembered in ``memo`` by both exact DERs)."""
    try:
        if memo is None:
            certificate.verify_directly_issued_by(ca)
        else:
            memo.check(certificate_key(certificate, ca), lambda: certificate.verify_directly_issued_by(ca))
    except (InvalidSignature, ValueError, TypeError):  # a namesake CA, or one of another key type
        return False
    return True


def _require_issued_by_privacy_ca(
    certificate: x509.Certificate,
    anchors: TrustAnchors,
    now: datetime,
    what: str,
    memo: VerificationMemo | None,
) -> None:
    for ca in anchors.privacy_cas:
        if certificate.issuer != ca.subject or not issued_by(certificate, ca, memo):
            continue
        _require_valid_at(ca, now, "Privacy CA", code=f"{what.lower()}-certificate-expired")
        _require_valid_at(certificate, now, f"{what} certificate", code=f"{what.lower()}-certificate-expired")
        return
    raise TransferRefused(
        f"the {what} certificate was not issued by a Privacy CA this key broker trusts (register it under "
        "/kbs/v1/tpm-identity-certificates)",
        code=f"{what.lower()}-not-certified",
    )


def _require_valid_at(certificate: x509.Certificate, now: datetime, what: str, *, code: str) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise TransferRefused(
            f"the {what} certificate {certificate.subject.rfc4514_string()} is not valid now "
            f"({certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d})",
            code=code,
        )


def _certificate(data: bytes, what: str) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise TransferRefused(
            f"the {what} certificate is not an X.509 certificate", code=f"{what.lower()}-malformed"
        ) from None


def _sha384(certificate: x509.Certificate) -> str:
    return hashlib.sha384(certificate.public_bytes(Encoding.DER)).hexdigest()
