"""Authorizing a key transfer on a real swtpm: the wrapped key opens in the host's TPM, and each forged,
stale or mismatched piece of evidence is refused with its own code."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from secl.central.kbs.transfer import TransferEvidence, TrustAnchors, authorize_transfer
from secl.central.kbs.transferpolicy import TransferPolicy, TransferRefused, parse_usage_tags
from secl.core.attestation import AttestationResult, sign_attestation_result
from secl.core.certifiedkey import KeyUsage, build_certified_key_certificate, verify_certified_key
from secl.core.keywrap import wrap_key
from secl.core.tpm import load_ak_public
from secl.host.certifiedkeys import certification_request
from secl.host.tpm import TPMAdapter, TPMKey
from tests.tpmkeys import decrypt_in_tpm, issue_certificate, make_ca

HOST_UUID = "4c4c4544-0042-4d10-8058-b3c04f4e3732"


@dataclass(frozen=True)
class Host:
    """A host with a TPM: its AIK and binding key, their certificates from a Privacy CA."""

    tpm: TPMAdapter
    binding: TPMKey
    aik_der: bytes
    binding_der: bytes


@dataclass(frozen=True)
class Central:
    """The attesting central's report signer and Privacy CA."""

    privacy_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    signer_key: ec.EllipticCurvePrivateKey
    signer_cert: x509.Certificate

    @property
    def anchors(self) -> TrustAnchors:
        return TrustAnchors([self.signer_cert], [self.privacy_ca[0]])

    def sign(self, host: Host, **changes: object) -> str:
        now = int(time.time())
        fields: dict[str, object] = {
            "issuer": "central.example", "subject": HOST_UUID, "host_name": "host1", "issued_at": now - 5,
            "expires_at": now + 3600, "trusted": True, "parts": {"PLATFORM": True, "OS": True},
            "aik_certificate_sha384": hashlib.sha384(host.aik_der).hexdigest(), "report_id": "r1",
            "evidence_digest": "00" * 32, "tags": {"country": "DE"},
            "binding_key_certificate_sha384": hashlib.sha384(host.binding_der).hexdigest(),
        }  # fmt: skip
        fields.update(changes)
        kid = self.signer_cert.fingerprint(hashes.SHA256()).hex()
        return sign_attestation_result(AttestationResult(**fields), self.signer_key, kid)  # type: ignore[arg-type]


def _central() -> Central:
    signer_ca = make_ca("report signer CA")
    signer_key = ec.generate_private_key(ec.SECP256R1())
    return Central(
        make_ca("Privacy CA"), signer_key, issue_certificate(signer_ca, signer_key.public_key(), "reports")
    )


def _host(tpm: TPMAdapter, central: Central) -> Host:
    ak = tpm.create_ak()
    aik_cert = issue_certificate(central.privacy_ca, load_ak_public(ak.public).key, "AIK")
    binding = tpm.create_key("rsa")
    certified = verify_certified_key(
        certification_request(tpm, binding, ak), KeyUsage.BINDING, load_ak_public(ak.public)
    )
    binding_cert = build_certified_key_certificate(certified, *central.privacy_ca, days=30)
    return Host(tpm, binding, aik_cert.public_bytes(Encoding.DER), binding_cert.public_bytes(Encoding.DER))


@pytest.fixture
def tpm(swtpm_tcti: str) -> Iterator[TPMAdapter]:
    with TPMAdapter(swtpm_tcti) as adapter:
        yield adapter


def _evidence(host: Host, token: str) -> TransferEvidence:
    return TransferEvidence(token, host.aik_der, host.binding_der)


def _refused(evidence: TransferEvidence, anchors: TrustAnchors, policy: TransferPolicy | None = None) -> str:
    with pytest.raises(TransferRefused) as refused:
        authorize_transfer(evidence, anchors, policy or TransferPolicy())
    return refused.value.code


@pytest.mark.swtpm
def test_an_authorized_transfer_unwraps_in_the_hosts_tpm_to_exactly_the_key(tpm: TPMAdapter):
    central = _central()
    host = _host(tpm, central)
    policy = TransferPolicy(required_tags=parse_usage_tags("country:DE"))
    authorized = authorize_transfer(_evidence(host, central.sign(host)), central.anchors, policy)
    assert authorized.result.subject == HOST_UUID
    key = os.urandom(32)
    assert decrypt_in_tpm(tpm, host.binding, wrap_key(authorized.binding_key, key)) == key


@pytest.mark.swtpm
def test_each_bad_piece_of_evidence_is_refused_with_its_own_code(tpm: TPMAdapter):
    central = _central()
    host = _host(tpm, central)
    good = _evidence(host, central.sign(host))
    anchors = central.anchors
    # The report: untrusted, stale, tags, signer unknown, tampered, expired.
    assert _refused(_evidence(host, central.sign(host, trusted=False)), anchors) == "host-untrusted"
    old = int(time.time()) - 600
    assert _refused(_evidence(host, central.sign(host, issued_at=old)), anchors) == "report-too-old"
    tags = TransferPolicy(required_tags=parse_usage_tags("country:US"))
    assert _refused(good, anchors, tags) == "asset-tag-mismatch"
    other = _central()
    assert _refused(good, other.anchors) == "report-signer-unknown"
    head, body, signature = good.attestation_jwt.split(".")
    tampered = replace(good, attestation_jwt=f"{head}.{body[:-2]}AA.{signature}")
    assert _refused(tampered, anchors) in ("attestation-signature-invalid", "attestation-malformed")
    now = int(time.time())
    expired = central.sign(host, issued_at=now - 7200, expires_at=now - 3600)
    assert (
        _refused(_evidence(host, expired), anchors, TransferPolicy(max_report_age_seconds=None))
        == "attestation-expired"
    )
    assert _refused(replace(good, attestation_jwt="not-a-jwt"), anchors) == "attestation-malformed"
    # The AIK: not the report's, or from a Privacy CA nobody registered.
    assert (
        _refused(_evidence(host, central.sign(host, aik_certificate_sha384="ab" * 48)), anchors)
        == "aik-not-in-report"
    )
    foreign_ca = TrustAnchors([central.signer_cert], [make_ca("another Privacy CA")[0]])
    assert _refused(good, foreign_ca) == "aik-not-certified"
    # The binding key: none in the report, another host's, or certified by another AIK.
    assert (
        _refused(_evidence(host, central.sign(host, binding_key_certificate_sha384=None)), anchors)
        == "binding-key-not-in-report"
    )
    second_ak = tpm.create_ak("ecc")
    stranger_aik = issue_certificate(
        central.privacy_ca, load_ak_public(second_ak.public).key, "AIK 2"
    ).public_bytes(Encoding.DER)
    swapped = Host(tpm, host.binding, stranger_aik, host.binding_der)
    assert _refused(_evidence(swapped, central.sign(swapped)), anchors) == "certify-signature-invalid"
    assert _refused(replace(good, binding_key_certificate=b"junk"), anchors) == "binding-key-malformed"
    # Everything above was refused for its own reason: the untouched evidence still passes.
    authorize_transfer(good, anchors, TransferPolicy())


@pytest.mark.swtpm
def test_an_expired_signer_or_privacy_ca_certificate_is_refused(tpm: TPMAdapter):
    central = _central()
    host = _host(tpm, central)
    good = _evidence(host, central.sign(host))
    later = datetime.now(UTC) + timedelta(days=40)
    with pytest.raises(TransferRefused) as refused:
        authorize_transfer(good, central.anchors, TransferPolicy(max_report_age_seconds=None), now=later)
    assert refused.value.code == "report-signer-expired"
