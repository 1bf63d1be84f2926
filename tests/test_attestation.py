"""The signed attestation result (JWT, ES256): round trip, and every way a token can be wrong."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from secl.core.attestation import (
    TOKEN_TYPE,
    AttestationError,
    AttestationResult,
    certificate_sha384,
    evidence_digest,
    sign_attestation_result,
    verify_attestation_result,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
RESULT = AttestationResult(
    issuer="https://central.example:8443/hvs/v2",
    subject="8dbf926c-04d2-03e2-b211-d21d00db521a",
    host_name="ta-server-1",
    issued_at=int(NOW.timestamp()),
    expires_at=int(NOW.timestamp()) + 3600,
    trusted=False,
    parts={"PLATFORM": True, "OS": False},
    aik_certificate_sha384=certificate_sha384(b"aik der"),
    report_id="4c5a3aaf-1d04-48a0-8adf-2dd03725ffec",
    evidence_digest=evidence_digest(b"\x01" * 32, b"event log"),
    tags={"country": "DE"},
    nonce="rp-nonce-Zm9v",
    binding_key_certificate_sha384=certificate_sha384(b"binding der"),
)


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


PUBLIC = KEY.public_key()


def _code(token: str, key: object = PUBLIC, **kwargs) -> str:
    with pytest.raises(AttestationError) as err:
        verify_attestation_result(token, key, now=NOW, **kwargs)
    return err.value.code


def test_round_trip_keeps_every_claim() -> None:
    token = sign_attestation_result(RESULT, KEY, "report-key-1")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": "report-key-1", "typ": TOKEN_TYPE}
    back = verify_attestation_result(token, KEY.public_key(), expected_nonce="rp-nonce-Zm9v", now=NOW)
    assert back == RESULT
    assert json.loads(_unb64(_segments(token)[1])) == RESULT.to_claims()
    # Without optional claims, and verified against a certificate of the key.
    bare = dataclasses.replace(RESULT, nonce=None, binding_key_certificate_sha384=None, tags={})
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "report signer")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )  # fmt: skip
    got = verify_attestation_result(sign_attestation_result(bare, KEY, "k"), cert, now=NOW)
    assert got == bare and "nonce" not in bare.to_claims()


def test_evidence_digest_and_certificate_digest() -> None:
    assert evidence_digest(b"\x01" * 32, b"log") != evidence_digest(b"\x01" * 32, b"log2")
    assert evidence_digest(b"\x01" * 32, b"log") != evidence_digest(b"\x02" * 32, b"log")
    assert len(certificate_sha384(b"x")) == 96


def test_tampered_payload_and_signature() -> None:
    header, payload, signature = _segments(sign_attestation_result(RESULT, KEY, "k"))
    claims = json.loads(_unb64(payload))
    claims["trusted"] = True
    forged = ".".join((header, _b64(json.dumps(claims).encode()), signature))
    assert _code(forged) == "attestation-signature-invalid"
    raw = bytearray(_unb64(signature))
    raw[5] ^= 1
    assert _code(".".join((header, payload, _b64(bytes(raw))))) == "attestation-signature-invalid"


def test_alg_none_and_hmac_confusion_are_rejected_before_verification() -> None:
    _, payload, _ = _segments(sign_attestation_result(RESULT, KEY, "k"))
    none_header = _b64(json.dumps({"alg": "none", "typ": TOKEN_TYPE, "kid": "k"}).encode())
    assert _code(f"{none_header}.{payload}.") == "attestation-algorithm-rejected"
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": TOKEN_TYPE}).encode())
    import hmac as hmac_

    signing_input = f"{header}.{payload}".encode()
    mac = hmac_.new(pem, signing_input, "sha256").digest()
    assert _code(f"{header}.{payload}.{_b64(mac)}") == "attestation-algorithm-rejected"


def test_expired_future_wrong_nonce_wrong_key_wrong_type() -> None:
    token = sign_attestation_result(RESULT, KEY, "k")
    with pytest.raises(AttestationError) as err:
        verify_attestation_result(token, KEY.public_key(), now=NOW + dt.timedelta(seconds=3600))
    assert err.value.code == "attestation-expired"
    assert verify_attestation_result(token, KEY.public_key(), now=NOW + dt.timedelta(seconds=3599))
    with pytest.raises(AttestationError) as err:
        verify_attestation_result(token, KEY.public_key(), now=NOW - dt.timedelta(seconds=10))
    assert err.value.code == "attestation-not-yet-valid"
    assert verify_attestation_result(token, KEY.public_key(), now=NOW - dt.timedelta(seconds=10), leeway=30)
    assert _code(token, expected_nonce="another nonce") == "attestation-nonce-mismatch"
    no_nonce = sign_attestation_result(dataclasses.replace(RESULT, nonce=None), KEY, "k")
    assert _code(no_nonce, expected_nonce="rp-nonce-Zm9v") == "attestation-nonce-mismatch"
    other = ec.generate_private_key(ec.SECP256R1())
    assert _code(token, key=other.public_key()) == "attestation-signature-invalid"
    assert _code(token, key=ec.generate_private_key(ec.SECP384R1()).public_key()) == "attestation-key-invalid"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _code(token, key=rsa_key.public_key()) == "attestation-key-invalid"
    plain_jwt = jwt.encode(RESULT.to_claims(), KEY, algorithm="ES256", headers={"typ": "JWT"})
    assert _code(plain_jwt) == "attestation-type-mismatch"
    assert _code("not.a.jwt") == "attestation-malformed"
    assert _code("garbage") == "attestation-malformed"


def test_claims_of_the_wrong_type_are_refused() -> None:
    claims = {**RESULT.to_claims(), "parts": {"PLATFORM": "yes"}}
    token = jwt.encode(claims, KEY, algorithm="ES256", headers={"typ": TOKEN_TYPE, "kid": "k"})
    assert _code(token) == "attestation-claims-invalid"
    claims = {k: v for k, v in RESULT.to_claims().items() if k != "report_id"}
    token = jwt.encode(claims, KEY, algorithm="ES256", headers={"typ": TOKEN_TYPE, "kid": "k"})
    assert _code(token) == "attestation-claims-invalid"


def test_signing_refuses_bad_keys_and_windows() -> None:
    with pytest.raises(AttestationError) as err:
        sign_attestation_result(RESULT, ec.generate_private_key(ec.SECP384R1()), "k")
    assert err.value.code == "attestation-key-invalid"
    with pytest.raises(AttestationError) as err:
        sign_attestation_result(RESULT, KEY, "")
    assert err.value.code == "attestation-key-invalid"
    with pytest.raises(AttestationError) as err:
        sign_attestation_result(dataclasses.replace(RESULT, expires_at=RESULT.issued_at), KEY, "k")
    assert err.value.code == "attestation-claims-invalid"
