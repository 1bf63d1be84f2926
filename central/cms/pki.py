"""The central's certificate authority: key and certificate creation, and CSR signing.

Pure functions over cryptography objects (no files): :mod:`secl.central.setup` stores what they make, the
CMS views call :func:`sign_csr` for enrolled hosts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CertificateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: What an enrollment token may ask for, and what each kind of certificate may do.
KINDS = {
    "tls-server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "tls-client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "tls": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


@dataclass(frozen=True)
class Issuer:
    certificate: x509.Certificate
    key: CertificateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secl"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _signing_hash(key: CertificateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def create_root_ca(common_name: str = "secl Root CA", days: int = 3650) -> Issuer:
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.now(UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return Issuer(cert, key)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    issuer: Issuer, subject: x509.Name, public_key: CertificatePublicKeyTypes, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=days), issuer.certificate.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )


def create_sub_ca(issuer: Issuer, common_name: str, days: int = 3650) -> Issuer:
    """A CA below the root (Privacy CA, Tag CA): it signs leaf certificates only."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        _builder(issuer, _name(common_name), key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(issuer.key, _signing_hash(issuer.key))
    )
    return Issuer(cert, key)


def create_signing_certificate(
    issuer: Issuer, common_name: str, curve: ec.EllipticCurve, days: int = 1825
) -> Issuer:
    """A key and certificate that sign documents (flavors, reports), never certificates."""
    key = ec.generate_private_key(curve)
    cert = (
        _builder(issuer, _name(common_name), key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .sign(issuer.key, _signing_hash(issuer.key))
    )
    return Issuer(cert, key)


def subject_alternative_names(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def create_tls_certificate(issuer: Issuer, hostnames: list[str], days: int) -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(issuer, _name(hostnames[0]), key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage(KINDS["tls"]), critical=False)
        .add_extension(subject_alternative_names(hostnames), critical=False)
        .sign(issuer.key, _signing_hash(issuer.key))
    )
    return Issuer(cert, key)


def sign_csr(
    issuer: Issuer, csr: x509.CertificateSigningRequest, *, common_name: str, kind: str, days: int
) -> x509.Certificate:
    """Issue a leaf certificate for a CSR whose signature and names the caller has already checked."""
    return (
        _builder(issuer, _name(common_name), csr.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage(KINDS[kind]), critical=False)
        .add_extension(subject_alternative_names([common_name]), critical=False)
        .sign(issuer.key, _signing_hash(issuer.key))
    )


def fingerprint_sha384(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA384()).hex()
