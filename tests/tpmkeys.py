"""Test helpers for keys made in a real (swtpm) TPM: any primary key, a certification request, an unwrap.

The trust agent's adapter makes the AIK and the binding key; these helpers make the odd objects tests
need beside them (signing keys, small or ECC keys, a second AIK) through the adapter's own ESAPI context,
since a raw swtpm socket takes one client at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC

from secl.core.keywrap import TPM_OAEP_LABEL
from secl.host.tpm import TPMAdapter, TPMKey

TPM_BOUND = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
USER_AUTH = TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.NODA


def primary_key(tpm: TPMAdapter, alg: str, attributes: TPMA_OBJECT, unique: bytes = b"") -> TPMKey:
    """A primary key of any template in the owner hierarchy (``unique`` makes a distinct one)."""
    template = TPM2B_PUBLIC.parse(alg=alg, objectAttributes=attributes, nameAlg="sha256")
    if unique:
        template.publicArea.unique.rsa = unique
    handle, public, _, _, _ = tpm._esapi.create_primary(None, template, ESYS_TR.OWNER)
    return TPMKey(handle, public.marshal(), bytes(public.get_name()))


def decrypt_in_tpm(tpm: TPMAdapter, key: TPMKey, wrapped: bytes, label: bytes = TPM_OAEP_LABEL) -> bytes:
    """TPM2_RSA_Decrypt with OAEP-SHA256 and ``label``: what a workload agent does with a wrapped key."""
    return tpm.rsa_decrypt(key, wrapped, label)


def make_ca(name: str, *, days: int = 30) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed P-384 CA (a Privacy CA or a report signer's issuer in tests)."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    return cert, key


def issue_certificate(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    public_key: object,
    name: str,
    *,
    days: int = 30,
) -> x509.Certificate:
    """A leaf certificate for ``public_key`` (an AIK, a report signer) issued by ``issuer``."""
    ca_cert, ca_key = issuer
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
