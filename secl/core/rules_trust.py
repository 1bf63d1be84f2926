"""Certificate and signature rules: AikCertificateTrusted, FlavorTrusted (the asset-tag rules are in rules_assettag).

Certificate checks take the evaluation time explicitly (``at``): the core reads no clock, reports can be
re-evaluated for a past instant, and tests can use recorded evidence whose certificates have since expired.
Chains are built by signature (``verify_directly_issued_by``) up to a trust anchor, with every certificate
on the path checked for validity at ``at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from secl.core.flavor import SignedFlavor
from secl.core.flavorsign import (
    SIGNATURE_SCHEME,
    FlavorSignatureError,
    check_secl_signature,
    verify_flavor_signature,
)
from secl.core.hostmanifest import HostManifest
from secl.core.rules import Fault, FaultName, RuleName, RuleResult
from secl.core.verifymemo import VerificationMemo, certificate_key

__all__ = [
    "AikCertificateTrusted",
    "FlavorTrusted",
    "chains_to",
]

_MAX_DEPTH = 6


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def chains_to(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    at: datetime,
    intermediates: Sequence[x509.Certificate] = (),
    memo: VerificationMemo | None = None,
) -> bool:
    """True if ``cert`` is signed, through valid ``intermediates``, by one of ``anchors``, all valid at ``at``."""
    current = cert
    for _ in range(_MAX_DEPTH):
        for anchor in anchors:
            if _issued_by(current, anchor, memo) and _valid_at(anchor, at):
                return True
        parent = next(
            (c for c in intermediates if c != current and _issued_by(current, c, memo) and _valid_at(c, at)),
            None,
        )
        if parent is None:
            return False
        current = parent
    return False


def _issued_by(
    cert: x509.Certificate, issuer: x509.Certificate, memo: VerificationMemo | None = None
) -> bool:
    try:
        if memo is None:
            cert.verify_directly_issued_by(issuer)
        else:
            memo.check(certificate_key(cert, issuer), lambda: cert.verify_directly_issued_by(issuer))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        # Wrong signer, issuer-name mismatch, or a key type that cannot have signed it: not this issuer.
        return False
    return True


def _validity_fault(
    cert: x509.Certificate, at: datetime, expired: str, not_yet: str, what: str
) -> Fault | None:
    if at > cert.not_valid_after_utc:
        return Fault(expired, f"{what} not valid after '{cert.not_valid_after_utc.isoformat()}'")
    if at < cert.not_valid_before_utc:
        return Fault(not_yet, f"{what} not valid before '{cert.not_valid_before_utc.isoformat()}'")
    return None


@dataclass(frozen=True)
class AikCertificateTrusted:
    """The manifest's AIK certificate is valid at ``at`` and issued by one of the Privacy CAs."""

    privacy_cas: tuple[x509.Certificate, ...]
    marker: str
    at: datetime
    name: str = RuleName.AIK_CERTIFICATE_TRUSTED
    memo: VerificationMemo | None = field(default=None, compare=False)

    def apply(self, manifest: HostManifest) -> RuleResult:
        fault = None
        if not manifest.aik_certificate:
            fault = Fault(
                FaultName.AIK_CERTIFICATE_MISSING, "Host report does not include an AIK certificate"
            )
        else:
            try:
                aik = x509.load_der_x509_certificate(manifest.aik_certificate)
            except ValueError as exc:
                aik = None
                fault = Fault(
                    FaultName.AIK_CERTIFICATE_NOT_TRUSTED, f"AIK certificate cannot be parsed: {exc}"
                )
            if aik is not None:
                fault = _validity_fault(
                    aik,
                    self.at,
                    FaultName.AIK_CERTIFICATE_EXPIRED,
                    FaultName.AIK_CERTIFICATE_NOT_YET_VALID,
                    "AIK certificate",
                )
                if fault is None and not chains_to(aik, self.privacy_cas, self.at, memo=self.memo):
                    fault = Fault(
                        FaultName.AIK_CERTIFICATE_NOT_TRUSTED,
                        f"AIK certificate (issuer '{aik.issuer.rfc4514_string()}') is not signed by any trusted CA",
                    )
        return RuleResult(self.name, (self.marker,), () if fault is None else (fault,))


@dataclass(frozen=True)
class FlavorTrusted:
    """The flavor's signature verifies with the flavor-signing certificate, which chains to a flavor CA.

    Our flavors (``signature_scheme`` set) are verified exactly. A flavor still carrying the signature SecL's
    Java HVS made is checked with :func:`check_secl_signature`; when that cannot verify it, the rule reports
    FlavorSignatureVerificationFailed with the reason, rather than trusting or condemning it silently.
    """

    signed: SignedFlavor
    signing_cert: x509.Certificate | None
    ca_certs: tuple[x509.Certificate, ...]
    marker: str
    at: datetime
    intermediates: tuple[x509.Certificate, ...] = field(default=())
    name: str = RuleName.FLAVOR_TRUSTED
    memo: VerificationMemo | None = field(default=None, compare=False)

    def apply(self, manifest: HostManifest) -> RuleResult:
        return RuleResult(self.name, (self.marker,), tuple(self._faults()))

    def _faults(self) -> list[Fault]:
        flavor_id = self.signed.flavor.id
        failed = FaultName.FLAVOR_SIGNATURE_VERIFICATION_FAILED
        if not self.signed.signature:
            return [
                Fault(
                    FaultName.FLAVOR_SIGNATURE_MISSING, f"Signature is missing for flavor with id {flavor_id}"
                )
            ]
        if self.signing_cert is None:
            return [
                Fault(
                    failed,
                    f"Signature verification failed for flavor with id {flavor_id}: no signing certificate",
                )
            ]
        if not _valid_at(self.signing_cert, self.at) or not chains_to(
            self.signing_cert, self.ca_certs, self.at, self.intermediates, self.memo
        ):
            return [
                Fault(
                    failed,
                    f"Signature verification failed for flavor with id {flavor_id}: the flavor-signing certificate "
                    "is not valid or does not chain to a trusted flavor CA",
                )
            ]
        if self.signed.extra.get("signature_scheme") == SIGNATURE_SCHEME:
            try:
                verify_flavor_signature(self.signed, self.signing_cert, memo=self.memo)
            except FlavorSignatureError as exc:
                return [
                    Fault(
                        FaultName.FLAVOR_SIGNATURE_NOT_TRUSTED,
                        f"Signature is not trusted for flavor with id {flavor_id}: {exc.message}",
                    )
                ]
            return []
        check = check_secl_signature(self.signed, self.signing_cert)
        if check.verified:
            return []
        return [Fault(failed, f"SecL signature of flavor {flavor_id} could not be verified: {check.detail}")]
