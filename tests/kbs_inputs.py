"""Malformed inputs for the key broker's routes and the certify-host-key routes, and the check every answer
to them must pass: a 4xx with a JSON ``{code, message}`` body, never a 5xx."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

LONG = "x" * 70_000
NUL = "a\x00b"
B64_JUNK = base64.b64encode(b"\x00\x01junk" * 8).decode()


def error_problem(response: Any) -> str | None:
    """Why ``response`` is not a proper refusal (a 4xx with a JSON {code, message}), or None."""
    body = response.get_json(silent=True)
    if not 400 <= response.status_code < 500:
        return f"answered {response.status_code}: {response.get_data(as_text=True)[:300]}"
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not body["code"]:
        return f"answered {response.status_code} without a JSON code: {response.get_data(as_text=True)[:300]}"
    if not isinstance(body.get("message"), str):
        return f"answered {response.status_code} without a message: {body}"
    return None


def certificate_under_name(
    issuer: x509.Name, signer: Any, algorithm: Any = None, *, pss: bool = False
) -> bytes:
    """A DER certificate naming ``issuer`` (a Privacy CA's subject) but signed by another key, of any type."""
    subject_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")]))
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if pss:
        pss_padding = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        certificate = builder.sign(signer, hashes.SHA256(), rsa_padding=pss_padding)
    else:
        certificate = builder.sign(signer, algorithm)
    return certificate.public_bytes(serialization.Encoding.DER)


def impostor_certificates(issuer: x509.Name) -> dict[str, bytes]:
    """Certificates claiming ``issuer`` signed with every key type (a namesake CA)."""
    return {
        "ecdsa": certificate_under_name(issuer, ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()),
        "rsa-pkcs1": certificate_under_name(issuer, rsa.generate_private_key(65537, 2048), hashes.SHA256()),
        "rsa-pss": certificate_under_name(issuer, rsa.generate_private_key(65537, 2048), pss=True),
        "dsa": certificate_under_name(issuer, dsa.generate_private_key(2048), hashes.SHA256()),
        "ed25519": certificate_under_name(issuer, ed25519.Ed25519PrivateKey.generate(), None),
    }


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
