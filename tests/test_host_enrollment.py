"""``secl.host.enrollment`` and ``secl.host.statefiles`` as a library: no click, no network for these cases.

The whole of ``secl-trustagent setup`` against a live central is in tests/test_trustagent_service.py; here
are the decisions a host makes on its own: a pinned CA that does not match, whether the stored TLS
certificate is still good, the key pin the mTLS server checks, and the mode of the state files.
"""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secl.host.enrollment import (
    EnrollmentError,
    client_key_sha256,
    obtain_tls_certificate,
    pin_central_ca,
    tls_certificate_current,
)
from secl.host.statefiles import StateFiles, write_state_file

UNREACHABLE = "https://127.0.0.1:1"  # a pinned or current file must be decided on without the central


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    days: int = 365,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(issuer_key, hashes.SHA384())
    )


@pytest.fixture
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    return _certificate("central CA", key), key


def _store_tls(state: StateFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    state.tls_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    state.tls_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_an_existing_pin_of_another_ca_is_refused_without_asking_the_central(tmp_path: Path, ca) -> None:
    state = StateFiles(tmp_path)
    certificate, _ = ca
    state.central_ca.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    mine = certificate.fingerprint(hashes.SHA384()).hex()
    pinned = pin_central_ca(UNREACHABLE, mine, state, force=False)
    assert pinned.already and pinned.certificate == certificate
    with pytest.raises(EnrollmentError, match="pins another CA"):
        pin_central_ca(UNREACHABLE, "00" * 48, state, force=False)


def test_a_current_tls_certificate_is_kept_and_a_stale_one_is_not(tmp_path: Path, ca) -> None:
    state = StateFiles(tmp_path)
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP384R1())
    _store_tls(state, _certificate("host1", key, ("central CA", ca_key)), key)
    assert tls_certificate_current(state, ca_cert, "host1")
    assert obtain_tls_certificate(
        central_url=UNREACHABLE, token=None, host="host1", state=state, ca=ca_cert, force=False
    ) is None  # fmt: skip
    assert not tls_certificate_current(state, ca_cert, "host2")  # another name
    _store_tls(state, _certificate("host1", key, ("central CA", ca_key), days=3), key)
    assert not tls_certificate_current(state, ca_cert, "host1")  # expires within the renewal window
    other = ec.generate_private_key(ec.SECP384R1())
    _store_tls(state, _certificate("host1", key, ("central CA", other)), key)
    assert not tls_certificate_current(state, ca_cert, "host1")  # not from the pinned CA
    with pytest.raises(EnrollmentError, match="--token"):
        obtain_tls_certificate(
            central_url=UNREACHABLE, token=None, host="host1", state=state, ca=ca_cert, force=False
        )


def test_the_client_pin_is_the_sha256_of_the_certificates_public_key(ca) -> None:
    certificate, _ = ca
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert client_key_sha256(certificate.public_bytes(serialization.Encoding.DER)) == (
        hashlib.sha256(spki).hexdigest()
    )
    assert client_key_sha256(None) == client_key_sha256(b"") == ""


def test_state_files_are_replaced_with_their_mode(tmp_path: Path) -> None:
    path = tmp_path / "tls-key.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_state_file(path, b"secret", 0o600)
    assert path.read_bytes() == b"secret" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tls-key.pem"]  # no temporary file left behind
