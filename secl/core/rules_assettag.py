"""The ASSET_TAG rules: TagCertificateTrusted and AssetTagMatches, with SecL's fault names and order.

Both are built from the ASSET_TAG flavor's tag certificate (its DER, :func:`tag_certificate_der`), as
SecL's rule factory does, and take the evaluation time explicitly for the same reasons as the other
certificate rules (``rules_trust``).

- TagCertificateTrusted: TagCertificateMissing when the flavor has no certificate; TagCertificateNotTrusted
  when it cannot be read, no trusted Tag CA signed it, or it names another host than the manifest's
  ``host_info.hardware_uuid`` (SecL does not check the last; a certificate for another host is never one
  this host may carry); then TagCertificateExpired / TagCertificateNotYetValid
  (:func:`secl.core.assettag.verify_tag_certificate`). Before all that, TagCertificateRevoked (ours, not
  SecL's) when the certificate's SHA-384 is one the verifier was told is revoked.
- AssetTagMatches, in SecL's order: AssetTagMissing when the host reports no tag digest (its NV index is
  empty), AssetTagNotProvisioned when the flavor has no certificate, AssetTagMismatch when the host's
  digest is not the SHA-384 of the flavor's certificate. The rule JSON carries ``expected_tag`` (base64)
  and ``tags`` ({name: value}, the last value of a repeated name winning, as SecL's map does).

The host's digest is only as good as the quote that bound it (SecL's qualifying data
SHA-256(SHA-256(nonce) ‖ digest), :func:`secl.core.quote.secl_qualifying_data`): the verifier must have
checked that quote before it puts the digest into the manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509

from secl.core.assettag import (
    AssetTagError,
    TagCertificate,
    TagVerificationError,
    parse_tag_certificate,
    verify_tag_certificate,
)
from secl.core.flavor import Flavor
from secl.core.hostmanifest import HostManifest
from secl.core.rules import Fault, FaultName, RuleName, RuleResult
from secl.core.verifymemo import VerificationMemo

__all__ = ["AssetTagMatches", "TagCertificateTrusted", "tag_certificate_der"]


def tag_certificate_der(flavor: Flavor) -> bytes | None:
    """The DER of an ASSET_TAG flavor's tag certificate (``external.asset_tag.tag_certificate.encoded``)."""
    try:
        encoded = flavor.external["asset_tag"]["tag_certificate"]["encoded"]  # type: ignore[index]
        return base64.b64decode(encoded, validate=True) or None
    except (KeyError, TypeError, binascii.Error):
        return None


def _host_uuid(manifest: HostManifest) -> str | None:
    value = str(manifest.host_info.get("hardware_uuid") or "").strip()
    return value or None


@dataclass(frozen=True)
class TagCertificateTrusted:
    """The flavor's tag certificate is signed by a trusted Tag CA, valid at ``at``, and for this host."""

    tag_certificate: bytes | None
    tag_cas: tuple[x509.Certificate, ...]
    marker: str
    at: datetime
    name: str = RuleName.TAG_CERTIFICATE_TRUSTED
    memo: VerificationMemo | None = field(default=None, compare=False)
    # SHA-384 digests of revoked tag certificates: the issuer's own record, so it is checked first.
    revoked: frozenset[bytes] = frozenset()

    def apply(self, manifest: HostManifest) -> RuleResult:
        fault = self._fault(manifest)
        return RuleResult(self.name, (self.marker,), () if fault is None else (fault,))

    def _fault(self, manifest: HostManifest) -> Fault | None:
        if not self.tag_certificate:
            return Fault(
                FaultName.TAG_CERTIFICATE_MISSING,
                "Host trust policy requires tag validation but the flavor has no tag certificate",
            )
        if hashlib.sha384(self.tag_certificate).digest() in self.revoked:
            return Fault(
                FaultName.TAG_CERTIFICATE_REVOKED,
                f"Tag certificate {hashlib.sha384(self.tag_certificate).hexdigest()} has been revoked",
            )
        try:
            verify_tag_certificate(
                self.tag_certificate,
                self.tag_cas,
                at=self.at,
                hardware_uuid=_host_uuid(manifest),
                memo=self.memo,
            )
        except TagVerificationError as exc:
            return Fault(exc.fault_name, f"Tag certificate: {exc.message}")
        except AssetTagError as exc:
            return Fault(
                FaultName.TAG_CERTIFICATE_NOT_TRUSTED, f"Tag certificate cannot be read: {exc.message}"
            )
        return None


@dataclass(frozen=True)
class AssetTagMatches:
    """The tag digest the host reported (from its NV index, bound by the quote) is the SHA-384 of the
    flavor's tag certificate."""

    tag_certificate: bytes | None
    marker: str
    name: str = RuleName.ASSET_TAG_MATCHES

    @cached_property
    def _expected(self) -> bytes | None:
        return hashlib.sha384(self.tag_certificate).digest() if self.tag_certificate else None

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it); the flavor's certificate alone decides it."""
        expected = self._expected
        return {
            "expected_tag": base64.b64encode(expected).decode() if expected else None,
            "tags": self._tags(),
        }

    def apply(self, manifest: HostManifest) -> RuleResult:
        expected = self._expected
        actual = manifest.asset_tag_digest
        fault = None
        if not actual:
            fault = Fault(FaultName.ASSET_TAG_MISSING, "Host report does not include an asset tag digest")
        elif expected is None:
            fault = Fault(
                FaultName.ASSET_TAG_NOT_PROVISIONED, "The flavor has no asset tag certificate to compare with"
            )
        elif not hmac.compare_digest(actual, expected):
            fault = Fault(
                FaultName.ASSET_TAG_MISMATCH,
                "Asset tag digest reported by the host does not match the flavor's tag certificate",
                expected_value=expected.hex(),
                actual_value=actual.hex(),
            )
        return RuleResult(self.name, (self.marker,), () if fault is None else (fault,), expected=self.body)

    def _tags(self) -> dict[str, str]:
        if not self.tag_certificate:
            return {}
        try:
            cert: TagCertificate = parse_tag_certificate(self.tag_certificate)
        except AssetTagError:
            # The digest comparison does not need the tags; TagCertificateTrusted reports the bad certificate.
            return {}
        return dict(cert.tag_map)
