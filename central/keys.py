"""The central's keys at run time: each CA and signer read from the files ``secl-central setup`` made.

:class:`KeyMaterial` reads a key the first time something needs it and keeps it for the life of the
process (a central that never issues a tag certificate never reads the Tag CA's key). Creating keys is
setup's business (:mod:`secl.central.setup`); nothing here writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.cms.pki import Issuer
from secl.central.keyfiles import KeyFiles


def load_issuer(cert_path: Path, key_path: Path) -> Issuer:
    """A certificate and its private key (EC), checked to belong together."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError(f"{key_path} does not hold the key of {cert_path}")
    return Issuer(cert, key)


@dataclass(frozen=True)
class FlavorSigner:
    key: ec.EllipticCurvePrivateKey  # keys/flavor-signing.key
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the signing certificate, then the root CA (FlavorTrusted's anchors)
    # The certificate's DER, part of every verified-flavor memo key (computed once, not per report).
    certificate_der: bytes = b""


@dataclass(frozen=True)
class ReportSigner:
    """The report-signing key (P-256) and its certificate; ``kid`` is the certificate's SHA-256 thumbprint."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    kid: str


@dataclass(frozen=True)
class PrivacyCA:
    issuer: Issuer
    chain: tuple[x509.Certificate, ...]  # the Privacy CA, then the root CA


class KeyMaterial:
    """Every CA and signing key of the central, each read from its key files on first use."""

    def __init__(self, files: KeyFiles) -> None:
        self.files = files

    @cached_property
    def root_ca(self) -> Issuer:
        """The root CA: signs the certificates of enrolled hosts and services (CMS)."""
        return load_issuer(self.files.root_ca_cert, self.files.root_ca_key)

    @cached_property
    def root_ca_certificate(self) -> x509.Certificate:
        """The root CA's certificate alone (what checks a host's certificate needs; the key stays unread)."""
        return x509.load_pem_x509_certificate(self.files.root_ca_cert.read_bytes())

    @cached_property
    def flavor_signer(self) -> FlavorSigner:
        files = self.files
        issuer = load_issuer(files.flavor_signing_cert, files.flavor_signing_key)
        chain = tuple(x509.load_pem_x509_certificates(files.flavor_signing_cert.read_bytes()))
        der = issuer.certificate.public_bytes(serialization.Encoding.DER)
        return FlavorSigner(_ec_key(issuer), issuer.certificate, chain, der)

    @cached_property
    def report_signer(self) -> ReportSigner:
        issuer = load_issuer(self.files.report_signing_cert, self.files.report_signing_key)
        kid = issuer.certificate.fingerprint(hashes.SHA256()).hex()
        return ReportSigner(_ec_key(issuer), issuer.certificate, kid)

    @cached_property
    def privacy_ca(self) -> PrivacyCA:
        """The Privacy CA: certifies AIKs; the verifier trusts the AIK certificates it issued."""
        issuer = load_issuer(self.files.privacy_ca_cert, self.files.privacy_ca_key)
        return PrivacyCA(
            issuer, tuple(x509.load_pem_x509_certificates(self.files.privacy_ca_cert.read_bytes()))
        )

    @cached_property
    def tag_ca(self) -> Issuer:
        """The Tag CA: issues asset-tag certificates (keys/tag-ca.pem, tag-ca.key)."""
        return load_issuer(self.files.tag_ca_cert, self.files.tag_ca_key)

    @property
    def tag_ca_certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.tag_ca.certificate,)


def _ec_key(issuer: Issuer) -> ec.EllipticCurvePrivateKey:
    assert isinstance(issuer.key, ec.EllipticCurvePrivateKey)  # load_issuer accepts nothing else
    return issuer.key
