"""The Privacy CA on a real TPM (swtpm) and on SQLite and PostgreSQL: EK trust, MakeCredential, AIK certificates.

The swtpm's EK certificate comes from its local CA (``swtpm.ca_dir``), which the tests register as an
endorsement CA through the API; the host side (ActivateCredential) is in :mod:`tests.privacyca_client`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.TSS2_Exception import TSS2_Exception
from tpm2_pytss.types import TPM2B_PUBLIC

from secl.central import create_app
from secl.central.keyfiles import KeyFiles
from secl.central.store.hvs_models import AIKChallenge, EndorsementCA
from secl.central.store.models import AuditEvent
from secl.host.tpm import TPMAdapter, TPMKey
from tests.central_fixtures import CentralState
from tests.privacyca_client import (
    REQUEST,
    RESPONSE,
    activate_credential,
    b64,
    challenge_body,
    enroll,
    register_swtpm_cas,
)
from tests.swtpm import RunningSwtpm


@pytest.fixture
def tpm(swtpm: RunningSwtpm) -> Iterator[TPMAdapter]:
    with TPMAdapter(swtpm.tcti) as adapter:
        yield adapter


@pytest.fixture
def trusted(client: FlaskClient, admin_headers: dict[str, str], swtpm: RunningSwtpm) -> list[dict[str, Any]]:
    return register_swtpm_cas(client, admin_headers, swtpm.ca_dir)


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert isinstance(body, dict) and body["code"] == code, body
    return body


def _challenge(client: FlaskClient, headers: dict[str, str], tpm: TPMAdapter, aik: TPMKey) -> dict[str, Any]:
    response = client.post(REQUEST, json=challenge_body(tpm.read_ek("rsa"), aik.public), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _activate(tpm: TPMAdapter, aik: TPMKey, challenge: dict[str, Any]) -> bytes:
    return activate_credential(
        tpm,
        aik,
        base64.b64decode(challenge["credential_blob"]),
        base64.b64decode(challenge["encrypted_secret"]),
    )


def _answer(client: FlaskClient, headers: dict[str, str], challenge_id: str, secret: bytes) -> Any:
    return client.post(RESPONSE, json={"challenge_id": challenge_id, "secret": b64(secret)}, headers=headers)


def _privacy_ca(state: CentralState) -> x509.Certificate:
    return x509.load_pem_x509_certificates(KeyFiles(state.config.keys_dir).privacy_ca_cert.read_bytes())[0]


def _session(app: Flask) -> Any:
    return app.extensions["secl.db"].sessions()


# --- the whole exchange -------------------------------------------------------------------------------------


def _ecc_ek_certificate(client: FlaskClient, headers: dict[str, str], tpm: TPMAdapter) -> bytes:
    """swtpm_setup certifies only the RSA EK: certify the ECC EK with a test CA, trusted through the API."""
    ca_pem, ca_key = _other_ca()
    created = client.post("/hvs/v2/endorsement-cas", json={"certificate": ca_pem}, headers=headers)
    assert created.status_code == 201, created.get_json()
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    ek_key = serialization.load_pem_public_key(TPM2B_PUBLIC.unmarshal(tpm.read_ek("ecc").public)[0].to_pem())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject).public_key(ek_key)
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(("ek_kind", "aik_kind"), [("rsa", "rsa"), ("rsa", "ecc"), ("ecc", "ecc")])
def test_aik_is_certified_after_activate_credential(  # noqa: PLR0917 (pytest fixtures)
    ek_kind: str, aik_kind: str, client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter,
    trusted: Any, central_app: Flask, central_state: CentralState,
):  # fmt: skip
    aik = tpm.create_ak(aik_kind)
    ek_cert = _ecc_ek_certificate(client, admin_headers, tpm) if ek_kind == "ecc" else None
    enrollment = enroll(client, admin_headers, tpm, aik, ek_kind=ek_kind, ek_certificate=ek_cert)
    assert len(enrollment.secret) == 32

    issued = enrollment.certificate
    cert = x509.load_pem_x509_certificate(issued["aik_certificate"].encode())
    privacy_ca = _privacy_ca(central_state)
    # It chains to the Privacy CA (and the chain returned is the Privacy CA, then the root CA).
    cert.verify_directly_issued_by(privacy_ca)
    chain = x509.load_pem_x509_certificates(issued["privacy_ca"].encode())
    assert chain[0] == privacy_ca and chain[1].subject == chain[1].issuer
    privacy_ca.verify_directly_issued_by(chain[1])
    # Its key is the AIK's, its subject names the AIK, and it can sign, not issue certificates.
    aik_key = serialization.load_pem_public_key(tpm_pem(aik))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == aik_key.public_bytes(
        serialization.Encoding.DER, spki
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == aik.name[2:].hex()
    assert aik.name[:2] == b"\x00\x0b"  # SHA-256 name: the CN is the whole digest
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert timedelta(days=360) < cert.not_valid_after_utc - datetime.now(UTC) <= timedelta(days=365)
    assert issued["serial"] == format(cert.serial_number, "x")

    with _session(central_app) as session:
        row = session.get(AIKChallenge, enrollment.challenge["challenge_id"])
        assert row.used and row.certificate_serial == issued["serial"] and row.aik_name == aik.name.hex()
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "aik.certified")).all()
        assert [e.details["serial"] for e in events] == [issued["serial"]]
        assert events[0].target == "host-1.example" and events[0].actor == central_state.admin_username


def tpm_pem(key: TPMKey) -> bytes:
    return TPM2B_PUBLIC.unmarshal(key.public)[0].to_pem()


def test_the_secret_is_never_stored(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any, central_app: Flask
):
    aik = tpm.create_ak("rsa")
    enrollment = enroll(client, admin_headers, tpm, aik)
    secret = enrollment.secret
    forms = [
        secret,
        secret.hex().encode(),
        b64(secret).encode(),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]
    engine = central_app.extensions["secl.db"].engine
    with engine.connect() as connection:
        for table in ("aik_challenges", "audit_events", "endorsement_cas"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):  # fixed table names
                dump = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
                assert not any(form in dump for form in forms), table
    with _session(central_app) as session:
        row = session.get(AIKChallenge, enrollment.challenge["challenge_id"])
        assert row.secret_sha256 == hashlib.sha256(secret).hexdigest()


def test_another_central_instance_redeems_the_challenge(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any,
    central_state: CentralState,
):  # fmt: skip
    aik = tpm.create_ak("rsa")
    challenge = _challenge(client, admin_headers, tpm, aik)
    secret = _activate(tpm, aik, challenge)
    other = create_app(central_state.config)  # same database and key files, nothing else shared
    try:
        response = _answer(other.test_client(), admin_headers, challenge["challenge_id"], secret)
        assert response.status_code == 201, response.get_json()
        _error(_answer(client, admin_headers, challenge["challenge_id"], secret), 409, "challenge-used")
    finally:
        other.extensions["secl.db"].dispose()


def test_concurrent_answers_redeem_a_challenge_once(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any,
    central_state: CentralState,
):  # fmt: skip
    aik = tpm.create_ak("rsa")
    challenge = _challenge(client, admin_headers, tpm, aik)
    secret = _activate(tpm, aik, challenge)
    apps = [create_app(central_state.config) for _ in range(4)]
    barrier = threading.Barrier(len(apps))
    statuses: list[int] = []

    def answer(app: Flask) -> None:
        test_client = app.test_client()
        barrier.wait()
        statuses.append(_answer(test_client, admin_headers, challenge["challenge_id"], secret).status_code)

    threads = [threading.Thread(target=answer, args=(app,)) for app in apps]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for app in apps:
            app.extensions["secl.db"].dispose()
    assert sorted(statuses) == [201, 409, 409, 409], statuses


# --- refusals: the EK -----------------------------------------------------------------------------------------


def _other_ca() -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other TPM Vendor EK CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def test_an_ek_certificate_from_an_unknown_ca_is_refused(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, central_app: Flask
):
    aik = tpm.create_ak("rsa")
    body = challenge_body(tpm.read_ek("rsa"), aik.public)
    # No endorsement CA at all (the set-up bundle file is empty).
    error = _error(client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-certificate-untrusted")
    assert error["details"]["ekcert_code"] == "empty-trust-store"
    # Another vendor's CA only.
    created = client.post(
        "/hvs/v2/endorsement-cas", json={"certificate": _other_ca()[0]}, headers=admin_headers
    )
    assert created.status_code == 201, created.get_json()
    error = _error(client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-certificate-untrusted")
    assert error["details"]["ekcert_code"] == "untrusted-issuer"
    assert "swtpm" in error["details"]["certificate"]["issuer"]
    with _session(central_app) as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "aik.challenge-refused")
        ).all()
        assert [e.details["code"] for e in refused] == ["ek-certificate-untrusted"] * 2
        assert session.scalar(select(AIKChallenge)) is None


def test_an_ek_certificate_behind_the_tcg_nv_header_is_accepted(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    aik = tpm.create_ak("rsa")
    ek = tpm.read_ek("rsa")
    assert ek.certificate is not None
    body = challenge_body(ek, aik.public)
    wrapped = b"\x10\x01\x00" + len(ek.certificate).to_bytes(2, "big") + ek.certificate + b"\xff" * 40
    body["ek_certificate"] = b64(wrapped)
    assert client.post(REQUEST, json=body, headers=admin_headers).status_code == 201


def test_the_endorsement_bundle_file_is_trusted_too(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, swtpm: RunningSwtpm,
    central_state: CentralState,
):  # fmt: skip
    bundle = KeyFiles(central_state.config.keys_dir).endorsement_cas
    bundle.write_text((swtpm.ca_dir / "issuercert.pem").read_text())
    listed = client.get("/hvs/v2/endorsement-cas", headers=admin_headers).get_json()
    assert [(ca["source"], ca["id"]) for ca in listed] == [("file", None)]
    enroll(client, admin_headers, tpm, tpm.create_ak("rsa"))


def test_ek_public_must_be_the_certified_key(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    aik = tpm.create_ak("rsa")
    body = challenge_body(tpm.read_ek("rsa"), aik.public)
    body["ek_public"] = b64(tpm.read_ek("ecc").public)
    assert _error(client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-public-mismatch")[
        "message"
    ]
    # A key that is not an EK at all (the AIK: a signing key).
    body["ek_public"] = b64(aik.public)
    assert _error(client.post(REQUEST, json=body, headers=admin_headers), 400, "ek-not-acceptable")["message"]


# --- refusals: the AIK ----------------------------------------------------------------------------------------


def _unrestricted_signing_key(tpm: TPMAdapter) -> bytes:
    attributes = (
        TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT
    )  # fmt: skip
    template = TPM2B_PUBLIC.parse(alg="rsa2048", objectAttributes=attributes, nameAlg="sha256")
    esapi: Any = tpm._esapi  # the adapter cannot create such a key, on purpose
    handle, public, _, _, _ = esapi.create_primary(None, template, ESYS_TR.OWNER)
    esapi.flush_context(handle)
    return public.marshal()


def test_an_aik_that_is_not_a_restricted_signing_key_is_refused(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    ek = tpm.read_ek("rsa")
    unrestricted = _error(
        client.post(REQUEST, json=challenge_body(ek, _unrestricted_signing_key(tpm)), headers=admin_headers),
        400, "aik-not-acceptable",
    )  # fmt: skip
    assert "restricted" in unrestricted["message"]
    decrypt = tpm.create_key("rsa")  # a binding key: decrypts, does not sign
    _error(
        client.post(REQUEST, json=challenge_body(ek, decrypt.public), headers=admin_headers),
        400, "aik-not-acceptable",
    )  # fmt: skip
    # The AIK's attributes altered after the fact (fixedTPM cleared): refused, whatever the TPM would say.
    public = TPM2B_PUBLIC.unmarshal(tpm.create_ak("rsa").public)[0]
    public.publicArea.objectAttributes &= ~TPMA_OBJECT.FIXEDTPM
    error = _error(
        client.post(REQUEST, json=challenge_body(ek, public.marshal()), headers=admin_headers),
        400, "aik-not-acceptable",
    )  # fmt: skip
    assert "fixedtpm" in error["message"]


# --- refusals: the answer -------------------------------------------------------------------------------------


def test_a_wrong_secret_voids_the_challenge(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any, central_app: Flask
):
    aik = tpm.create_ak("rsa")
    challenge = _challenge(client, admin_headers, tpm, aik)
    secret = _activate(tpm, aik, challenge)
    wrong = bytes([secret[0] ^ 1]) + secret[1:]
    _error(_answer(client, admin_headers, challenge["challenge_id"], wrong), 403, "challenge-failed")
    # The right secret comes too late: one guess per challenge.
    _error(_answer(client, admin_headers, challenge["challenge_id"], secret), 409, "challenge-used")
    with _session(central_app) as session:
        failed = session.scalars(select(AuditEvent).where(AuditEvent.action == "aik.challenge-failed")).all()
        assert [e.details["code"] for e in failed] == ["challenge-failed", "challenge-used"]
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "aik.certified")) is None


def test_a_redeemed_challenge_cannot_be_replayed(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    aik = tpm.create_ak("rsa")
    enrollment = enroll(client, admin_headers, tpm, aik)
    replay = _answer(client, admin_headers, enrollment.challenge["challenge_id"], enrollment.secret)
    assert _error(replay, 409, "challenge-used")["message"]


def test_an_expired_challenge_is_refused(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any, central_app: Flask
):
    aik = tpm.create_ak("rsa")
    challenge = _challenge(client, admin_headers, tpm, aik)
    expires = datetime.fromisoformat(challenge["expires_at"])
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
    secret = _activate(tpm, aik, challenge)
    with _session(central_app) as session:
        session.execute(
            update(AIKChallenge).where(AIKChallenge.id == challenge["challenge_id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )  # fmt: skip
        session.commit()
    _error(_answer(client, admin_headers, challenge["challenge_id"], secret), 403, "challenge-expired")


def test_an_unknown_challenge_is_not_found(client: FlaskClient, admin_headers: dict[str, str]):
    unknown = _answer(client, admin_headers, "00000000-0000-4000-8000-000000000000", b"x" * 32)
    assert _error(unknown, 404, "challenge-not-found")["message"]


def test_a_challenge_is_bound_to_the_tpm_holding_the_aik(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    """A challenge made for one AIK cannot be activated with another key of the same TPM."""
    aik, other = tpm.create_ak("rsa"), tpm.create_ak("ecc")
    challenge = _challenge(client, admin_headers, tpm, aik)
    with pytest.raises(TSS2_Exception):
        _activate(tpm, other, challenge)


# --- malformed input: 400 with a JSON error, never a 500 ------------------------------------------------------


def test_garbage_is_a_400_not_a_500(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    aik = tpm.create_ak("rsa")
    good = challenge_body(tpm.read_ek("rsa"), aik.public)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "ek_public": "not base64!"}, "validation-failed"),
        ({**good, "aik_public": "QUJD"}, "aik-public-malformed"),  # b"ABC": valid base64, not a TPM2B_PUBLIC
        ({**good, "ek_certificate": "abc"}, "validation-failed"),  # too short / bad padding
        ({**good, "ek_certificate": b64(b"\x30\x82\x01\x00" + b"\x00" * 20)}, "ek-certificate-malformed"),
        ({**good, "ek_certificate": b64(b"hello, world")}, "ek-certificate-malformed"),
        ({**good, "ek_public": b64(b"\x00\x04\x00\x01\x00\x0b")}, "ek-public-malformed"),
        ({**good, "aik_public": b64(aik.public + b"\x00")}, "aik-public-malformed"),
        ({**good, "aik_public": b64(aik.public[:-5])}, "aik-public-malformed"),
        ({**good, "aik_public": b64(b"\xff" * 300)}, "aik-public-malformed"),
        ({**good, "host_name": ""}, "validation-failed"),
        ({**good, "extra": 1}, "validation-failed"),
        ({k: v for k, v in good.items() if k != "aik_public"}, "validation-failed"),
    ]
    for body, code in cases:
        response = client.post(REQUEST, json=body, headers=admin_headers)
        assert response.status_code == 400, (body, response.get_json())
        assert response.get_json()["code"] == code, (body, response.get_json())
    for body in ({"challenge_id": "x", "secret": "%%%%"}, {"challenge_id": "", "secret": b64(b"x" * 32)},
                 {"challenge_id": "x" * 65, "secret": b64(b"x" * 32)}, {"challenge_id": "x"}):  # fmt: skip
        _error(client.post(RESPONSE, json=body, headers=admin_headers), 400, "validation-failed")


# --- the Privacy CA certificate and the endorsement store -----------------------------------------------------


def test_the_privacy_ca_certificate_needs_a_token_and_is_the_issuer(
    client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState
):
    assert client.get("/hvs/v2/privacyca/certificate").status_code == 401
    response = client.get("/hvs/v2/privacyca/certificate", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    privacy_ca = _privacy_ca(central_state)
    assert x509.load_pem_x509_certificate(body["certificate"].encode()) == privacy_ca
    assert len(x509.load_pem_x509_certificates(body["chain"].encode())) == 2
    assert body["fingerprint_sha384"] == privacy_ca.fingerprint(hashes.SHA384()).hex()
    assert "Privacy CA" in body["subject"]


def test_endorsement_cas_are_added_listed_and_deleted(
    client: FlaskClient, admin_headers: dict[str, str], swtpm: RunningSwtpm, central_app: Flask
):
    added = register_swtpm_cas(client, admin_headers, swtpm.ca_dir)
    assert [ca["source"] for ca in added] == ["database", "database"]
    root, intermediate = added
    assert root["subject"] == root["issuer"] and intermediate["issuer"] == root["subject"]
    listed = client.get("/hvs/v2/endorsement-cas", headers=admin_headers).get_json()
    assert [ca["id"] for ca in listed] == [root["id"], intermediate["id"]]
    again = client.post("/hvs/v2/endorsement-cas", json={"certificate": root["pem"]}, headers=admin_headers)
    _error(again, 409, "endorsement-ca-exists")
    with _session(central_app) as session:
        assert (
            session.scalar(select(EndorsementCA).where(EndorsementCA.id == root["id"])).created_by == "admin"
        )

    with TPMAdapter(swtpm.tcti) as tpm:
        leaf = x509.load_der_x509_certificate(tpm.read_ek("rsa").certificate or b"")
    not_ca = leaf.public_bytes(serialization.Encoding.PEM).decode()
    _error(client.post("/hvs/v2/endorsement-cas", json={"certificate": not_ca}, headers=admin_headers), 400,
           "not-a-ca")  # fmt: skip
    for garbage in (
        "hello",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        not_ca + root["pem"],
    ):
        _error(client.post("/hvs/v2/endorsement-cas", json={"certificate": garbage}, headers=admin_headers), 400,
               "certificate-invalid")  # fmt: skip

    assert client.delete(f"/hvs/v2/endorsement-cas/{root['id']}", headers=admin_headers).status_code == 204
    _error(client.delete(f"/hvs/v2/endorsement-cas/{root['id']}", headers=admin_headers), 404,
           "endorsement-ca-not-found")  # fmt: skip
    listed = client.get("/hvs/v2/endorsement-cas", headers=admin_headers).get_json()
    assert [ca["id"] for ca in listed] == [intermediate["id"]]


def test_mutated_public_areas_are_answered_never_with_a_500(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    """Flip bits in every header byte of the EK and AIK public areas (and a spread of key bytes)."""
    aik = tpm.create_ak("rsa")
    good = challenge_body(tpm.read_ek("rsa"), aik.public)
    answers: dict[int, int] = {}
    for field in ("ek_public", "aik_public"):
        original = base64.b64decode(good[field])
        positions = [*range(min(48, len(original))), *range(48, len(original), 17)]
        for position in positions:
            for flip in (0x01, 0x80, 0xFF):
                mutated = bytearray(original)
                mutated[position] ^= flip
                response = client.post(
                    REQUEST, json={**good, field: b64(bytes(mutated))}, headers=admin_headers
                )
                assert response.status_code in (201, 400, 403), (field, position, flip, response.get_json())
                assert isinstance(
                    response.get_json().get("code" if response.status_code != 201 else "challenge_id"), str
                )
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
    assert answers.get(400) and answers.get(403), answers


def _enrollment_token(
    client: FlaskClient, headers: dict[str, str], host: str, kinds: list[str]
) -> dict[str, str]:
    minted = client.post("/cms/v1/enrollment-tokens", json={"host": host, "kinds": kinds}, headers=headers)
    assert minted.status_code == 201, minted.get_json()
    return {"Authorization": f"Bearer {minted.get_json()['token']}"}


def test_a_hosts_enrollment_token_enrolls_its_own_aik_only(
    client: FlaskClient, admin_headers: dict[str, str], trusted: list[dict[str, Any]], tpm: TPMAdapter
):
    # What `secl-trustagent setup` does: the host's enrollment token authorizes the Privacy CA calls.
    host = _enrollment_token(client, admin_headers, "host-1.example", ["tls", "aik"])
    aik = tpm.create_ak("rsa", "endorsement")
    challenge = _challenge(client, host, tpm, aik)
    answer = _answer(client, host, challenge["challenge_id"], _activate(tpm, aik, challenge))
    assert answer.status_code == 201, answer.get_json()
    # Not for another host's name ...
    other_name = client.post(
        REQUEST, json=challenge_body(tpm.read_ek("rsa"), aik.public, "host-2.example"), headers=host
    )
    _error(other_name, 403, "enrollment-name-mismatch")
    # ... and not with a token that only allows TLS certificates.
    tls_only = _enrollment_token(client, admin_headers, "host-1.example", ["tls"])
    refused = client.post(REQUEST, json=challenge_body(tpm.read_ek("rsa"), aik.public), headers=tls_only)
    _error(refused, 403, "permission-denied")
    # An unknown token is a 401, like any bad credential.
    unknown = client.post(
        REQUEST, json=challenge_body(tpm.read_ek("rsa"), aik.public), headers={"Authorization": "Bearer nope"}
    )
    _error(unknown, 401, "token-invalid")
    tpm.flush(aik)


def test_a_host_registers_only_itself_with_its_enrollment_token(
    client: FlaskClient, admin_headers: dict[str, str]
):
    host = _enrollment_token(client, admin_headers, "host-1.example", ["tls", "aik"])
    mine = {"host_name": "host-1.example", "connection_string": "intel:https://host-1.example:1443"}
    assert client.post("/hvs/v2/hosts", json=mine, headers=host).status_code == 201
    for other in (
        {"host_name": "host-2.example", "connection_string": "intel:https://host-2.example:1443"},
        {"host_name": "host-1.example", "connection_string": "intel:https://evil.example:1443"},
    ):
        _error(client.post("/hvs/v2/hosts", json=other, headers=host), 403, "enrollment-name-mismatch")
    tls_only = _enrollment_token(client, admin_headers, "host-3.example", ["tls"])
    third = {"host_name": "host-3.example", "connection_string": "intel:https://host-3.example:1443"}
    _error(client.post("/hvs/v2/hosts", json=third, headers=tls_only), 403, "permission-denied")


# --- registered EKs (tpm-endorsements) ----------------------------------------------------------------------

ENDORSEMENTS = "/hvs/v2/tpm-endorsements"
HW_UUID = "8d4a1c3e-5f06-4e21-9b7a-0c2d3e4f5a6b"


def _register(client: FlaskClient, headers: dict[str, str], tpm: TPMAdapter, **extra: Any) -> dict[str, Any]:
    ek = tpm.read_ek("rsa")
    assert ek.certificate is not None
    body = {"certificate": b64(ek.certificate), "hardware_uuid": HW_UUID, "comment": "rack 12", **extra}
    response = client.post(ENDORSEMENTS, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_registered_ek_enrolls_without_any_vendor_ca(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, central_app: Flask,
    central_state: CentralState,
):  # fmt: skip
    aik = tpm.create_ak("rsa")
    body = challenge_body(tpm.read_ek("rsa"), aik.public)
    refused = _error(client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-certificate-untrusted")
    assert "/hvs/v2/tpm-endorsements" in refused["message"]  # the error says how to let this TPM in
    registered = _register(client, admin_headers, tpm)
    assert (
        registered["certificate_sha256"] == hashlib.sha256(tpm.read_ek("rsa").certificate or b"").hexdigest()
    )
    assert registered["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    enrollment = enroll(client, admin_headers, tpm, aik)
    aik_cert = x509.load_pem_x509_certificate(enrollment.certificate["aik_certificate"].encode())
    assert aik_cert.issuer == _privacy_ca(central_state).subject
    with _session(central_app) as session:
        issued = session.scalars(select(AuditEvent).where(AuditEvent.action == "aik.challenge-issued")).all()
        assert [e.details["trust_anchor"] for e in issued] == [f"registered EK {registered['id']}"]


def test_a_revoked_registration_refuses_the_ek_even_with_a_good_chain(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, trusted: Any
):
    aik = tpm.create_ak("rsa")
    registered = _register(client, admin_headers, tpm, revoked=True)
    body = challenge_body(tpm.read_ek("rsa"), aik.public)
    error = _error(client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-revoked")
    assert error["details"]["tpm_endorsement_id"] == registered["id"]
    restored = client.put(
        f"{ENDORSEMENTS}/{registered['id']}", json={"revoked": False}, headers=admin_headers
    )
    assert restored.status_code == 200 and restored.get_json()["revoked"] is False
    assert restored.get_json()["comment"] == "rack 12"  # untouched fields stay
    enroll(client, admin_headers, tpm, aik)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_with_registration_required_a_good_chain_is_not_enough(
    client: FlaskClient,
    admin_headers: dict[str, str],
    tpm: TPMAdapter,
    trusted: Any,
    central_state: CentralState,
):
    strict = create_app(dataclasses.replace(central_state.config, require_ek_registration=True))
    try:
        strict_client = strict.test_client()
        aik = tpm.create_ak("rsa")
        body = challenge_body(tpm.read_ek("rsa"), aik.public)
        _error(strict_client.post(REQUEST, json=body, headers=admin_headers), 403, "ek-not-registered")
        # The default central (same database) still accepts it through the chain.
        assert client.post(REQUEST, json=body, headers=admin_headers).status_code == 201
        _register(client, admin_headers, tpm)
        enroll(strict_client, admin_headers, tpm, aik)
    finally:
        strict.extensions["secl.db"].dispose()


def test_tpm_endorsements_are_searched_updated_deleted_and_bad_input_is_a_4xx(
    client: FlaskClient, admin_headers: dict[str, str], tpm: TPMAdapter, swtpm: RunningSwtpm
):
    registered = _register(client, admin_headers, tpm)
    ek_pem = registered["certificate"]
    # The same EK again, as PEM this time: one registration per certificate.
    _error(client.post(ENDORSEMENTS, json={"certificate": ek_pem}, headers=admin_headers), 409,
           "tpm-endorsement-exists")  # fmt: skip
    ca_pem = (swtpm.ca_dir / "issuercert.pem").read_text()
    _error(client.post(ENDORSEMENTS, json={"certificate": ca_pem}, headers=admin_headers), 400,
           "not-an-ek-certificate")  # fmt: skip
    for bad in ("not base64!", b64(b"\x30\x03\x02\x01\x05"), "-----BEGIN CERTIFICATE-----\nAAAA\n"):
        _error(client.post(ENDORSEMENTS, json={"certificate": bad}, headers=admin_headers), 400,
               "certificate-invalid")  # fmt: skip
    for body in ({"certificate": ek_pem, "hardware_uuid": "nope"}, {"certificate": ek_pem, "extra": 1}, {}):
        assert client.post(ENDORSEMENTS, json=body, headers=admin_headers).status_code == 400
    search = lambda query: client.get(ENDORSEMENTS, query_string=query, headers=admin_headers)  # noqa: E731
    assert [e["id"] for e in search({"hardwareUuidEqualTo": HW_UUID}).get_json()["tpm_endorsements"]] == [
        registered["id"]
    ]
    assert search({"revokedEqualTo": "true"}).get_json()["tpm_endorsements"] == []
    assert len(search({"commentContains": "rack"}).get_json()["tpm_endorsements"]) == 1
    assert search({"hardwareUuidEqualTo": "x"}).status_code == 400
    one = f"{ENDORSEMENTS}/{registered['id']}"
    assert client.get(one, headers=admin_headers).get_json()["subject"] == registered["subject"]
    assert client.get(one).status_code == 401  # every route needs a token
    assert client.delete(one, headers=admin_headers).status_code == 204
    _error(client.get(one, headers=admin_headers), 404, "tpm-endorsement-not-found")
    _error(client.put(one, json={"revoked": True}, headers=admin_headers), 404, "tpm-endorsement-not-found")
