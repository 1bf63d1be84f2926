"""A Tag CA and the asset-tag certificates it issues, for tests: EC P-384 like the central's, or RSA-3072
with a PrintableString CN like SecL's. Certificates are for ``HOST`` and valid from ``START`` to ``END``
unless a test says otherwise; ``INSIDE`` is a moment in between.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from secl.core.assettag import TagCertificate, TagSelection, create_tag_certificate

HOST = "4c4c4544-0051-3510-8047-b3c04f4e3432"
OTHER_HOST = "80e54342-94f2-e711-906e-001560a04062"
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
INSIDE = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class TagCA:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def issue(self, selection: TagSelection | None = None, **changes) -> TagCertificate:
        values = {
            "ca_certificate": self.certificate,
            "ca_key": self.key,
            "hardware_uuid": HOST,
            "selection": selection or TagSelection.of({"country": "DE", "rack": "R12"}),
            "not_before": START,
            "not_after": END,
            "serial_number": x509.random_serial_number(),
        }
        values.update(changes)
        return create_tag_certificate(**values)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def make_tag_ca(
    kind: str = "ec",
    common_name: str = "secl Tag CA",
    *,
    not_before: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    not_after: dt.datetime = dt.datetime(2040, 1, 1, tzinfo=dt.UTC),
    ca: bool = True,
) -> TagCA:
    """A self-signed Tag CA: EC P-384 like the central's, or RSA-3072 with a PrintableString CN like SecL's."""
    if kind == "ec":
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secl"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip
    else:
        key = rsa.generate_private_key(65537, 3072)
        printable = x509.name._ASN1Type.PrintableString
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name, _type=printable)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    return TagCA(cert, key)
