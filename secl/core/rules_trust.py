"""Certificate and signature rules: AikCertificateTrusted, FlavorTrusted (the asset-tag rules are in rules_assettag).

Certificate checks take the evaluation time explicitly (``at``): the core reads no clock, reports can be
re-evaluated for a past instant, and tests can use recorded evidence whose certificates have since expired.
Chains are built by signature (``verify_directly_issued_by``) up to a trust anchor, with every certificate
on the path checked for validity at ``at``.

Signature checks go through the verifier's :class:`VerificationMemo` when there is one. Its keys hash the
certificates' DER (and, for a flavor, the whole document), which costs more than the rest of a warm report's
certificate checks; so a key is computed once and kept on the immutable, shared object the check is about
(the signed flavor's or the host manifest's ``derived``), next to the certificates it was computed for. The
checks themselves, validity at ``at`` included, run on every report.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
from secl.core.verifymemo import VerificationMemo, certificate_key, flavor_signature_key

__all__ = [
    "AikCertificateTrusted",
    "FlavorTrusted",
    "chains_to",
]

_MAX_DEPTH = 6


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


# Where memo keys are kept: the ``derived`` map of an immutable object shared across reports.
KeyCache = MutableMapping[Any, Any]


def _cached_key(
    keys: KeyCache | None, what: str, certs: tuple[x509.Certificate, ...], compute: Callable[[], bytes]
) -> bytes:
    """``compute()``, the memo key of check ``what`` on ``certs`` (and the object owning ``keys``), kept there.

    Found by the certificates' signatures (hashing a certificate walks all of it) and used only for the same
    certificates: the same objects, as the verifier's anchors are report after report, or equal ones. The
    key is a pure function of them, so two threads storing it at once store the same thing.
    """
    if keys is None:
        return compute()
    slot = (what, *[c.signature for c in certs])
    found = keys.get(slot)
    if found is not None and found[0] == certs:  # a tuple compares items by identity first
        key: bytes = found[1]
        return key
    key = compute()
    keys[slot] = (certs, key)
    return key


def chains_to(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    at: datetime,
    intermediates: Sequence[x509.Certificate] = (),
    memo: VerificationMemo | None = None,
    *,
    keys: KeyCache | None = None,
) -> bool:
    """True if ``cert`` is signed, through valid ``intermediates``, by one of ``anchors``, all valid at ``at``.

    ``keys``: where to keep the memo's keys, on an object that is shared across reports (see above).
    """
    current = cert
    for _ in range(_MAX_DEPTH):
        for anchor in anchors:
            if _issued_by(current, anchor, memo, keys) and _valid_at(anchor, at):
                return True
        parent = next(
            (
                c
                for c in intermediates
                if c != current and _issued_by(current, c, memo, keys) and _valid_at(c, at)
            ),
            None,
        )
        if parent is None:
            return False
        current = parent
    return False


def _issued_by(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    memo: VerificationMemo | None = None,
    keys: KeyCache | None = None,
) -> bool:
    try:
        if memo is None:
            cert.verify_directly_issued_by(issuer)
        else:
            key = _cached_key(keys, "issued-by", (cert, issuer), lambda: certificate_key(cert, issuer))
            memo.check(key, lambda: cert.verify_directly_issued_by(issuer))
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
            aik, error = _aik_certificate(manifest)
            if aik is None:
                fault = Fault(
                    FaultName.AIK_CERTIFICATE_NOT_TRUSTED, f"AIK certificate cannot be parsed: {error}"
                )
            else:
                fault = _validity_fault(
                    aik,
                    self.at,
                    FaultName.AIK_CERTIFICATE_EXPIRED,
                    FaultName.AIK_CERTIFICATE_NOT_YET_VALID,
                    "AIK certificate",
                )
                if fault is None and not chains_to(
                    aik, self.privacy_cas, self.at, memo=self.memo, keys=manifest.derived
                ):
                    fault = Fault(
                        FaultName.AIK_CERTIFICATE_NOT_TRUSTED,
                        f"AIK certificate (issuer '{aik.issuer.rfc4514_string()}') is not signed by any trusted CA",
                    )
        return RuleResult(self.name, (self.marker,), () if fault is None else (fault,))


def _aik_certificate(manifest: HostManifest) -> tuple[x509.Certificate | None, str]:
    """The manifest's AIK certificate, or why it cannot be parsed; parsed once per manifest object."""
    found: tuple[x509.Certificate | None, str] | None = manifest.derived.get("aik-certificate")
    if found is None:
        try:
            found = (x509.load_der_x509_certificate(manifest.aik_certificate or b""), "")
        except ValueError as exc:
            found = (None, str(exc))
        manifest.derived["aik-certificate"] = found
    return found


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
            self.signing_cert, self.ca_certs, self.at, self.intermediates, self.memo, keys=self.signed.derived
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
                self._verify_signature(self.signing_cert)
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

    def _verify_signature(self, signer: x509.Certificate) -> None:
        """verify_flavor_signature through the memo, under the memo key verify_flavor_signature would use.

        That key serializes the whole flavor, so it is kept on the signed flavor (per signer certificate).
        """
        signed = self.signed
        if self.memo is None:
            verify_flavor_signature(signed, signer)
            return
        key = _cached_key(
            signed.derived,
            "signature",
            (signer,),
            lambda: flavor_signature_key(signed.flavor.to_json(), signed.signature, signer),
        )
        self.memo.check(key, lambda: verify_flavor_signature(signed, signer))
