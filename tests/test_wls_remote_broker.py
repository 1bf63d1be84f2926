"""The workload service asking a remote key broker (another central) over TLS: the broker's certificate must
chain to the configured CA bundle (never unverified), its wrapped key comes back, its refusal keeps the
broker's own code, and a broker that is down, slow or unverifiable is a 503-style Unavailable."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secl.central.config import CentralConfig
from secl.central.context import CentralServices
from secl.central.errors import Forbidden, Unavailable
from secl.central.kbs.transfer import TransferEvidence
from secl.central.wls import service
from tests.tpmkeys import make_ca

EVIDENCE = TransferEvidence(attestation_jwt="a.b.c", aik_certificate=b"aik", binding_key_certificate=b"bind")
KEY_ID = "5b3a8f56-0000-4000-8000-00000000000b"


class _Broker(BaseHTTPRequestHandler):
    answer: tuple[int, dict[str, Any]] = (200, {})
    seen: list[dict[str, Any]] = []  # noqa: RUF012 - the test reads what the one server received

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).seen.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        status, body = type(self).answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def _server_files(
    tmp_path: Path, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca[1], hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "broker.pem", tmp_path / "broker.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server standing in for another central's broker; yields its base URL and its CA's PEM file."""
    ca = make_ca("remote broker CA")
    cert_path, key_path = _server_files(tmp_path, ca)
    ca_path = tmp_path / "broker-ca.pem"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broker)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Broker.seen = []
    try:
        yield f"https://localhost:{server.server_address[1]}", ca_path
    finally:
        server.shutdown()
        server.server_close()


def _services(tmp_path: Path, ca: str) -> CentralServices:
    config = CentralConfig(state_dir=tmp_path, wls_key_broker_ca=ca, wls_key_broker_timeout_seconds=3)
    return cast(CentralServices, SimpleNamespace(config=config))


def test_a_remote_broker_is_asked_over_verified_tls(broker: tuple[str, Path], tmp_path: Path) -> None:
    url, ca_path = broker
    services = _services(tmp_path, str(ca_path))
    _Broker.answer = (200, {"id": KEY_ID, "payload": base64.b64encode(b"wrapped").decode()})
    assert service._remote_transfer(services, f"{url}/kbs/v1/keys/{KEY_ID}", EVIDENCE) == b"wrapped"
    (seen,) = _Broker.seen
    assert seen["path"] == f"/kbs/v1/keys/{KEY_ID}/transfer"
    assert seen["body"] == {
        "attestation_result": "a.b.c",
        "aik_certificate": base64.b64encode(b"aik").decode(),
        "binding_key_certificate": base64.b64encode(b"bind").decode(),
    }

    _Broker.answer = (403, {"code": "host-untrusted", "message": "the host is not trusted"})
    with pytest.raises(Forbidden) as refused:
        service._remote_transfer(services, f"{url}/kbs/v1/keys/{KEY_ID}/transfer", EVIDENCE)
    assert refused.value.code == "host-untrusted"

    _Broker.answer = (200, {"payload": "%%%"})
    with pytest.raises(Unavailable) as malformed:
        service._remote_transfer(services, f"{url}/kbs/v1/keys/{KEY_ID}/transfer", EVIDENCE)
    assert malformed.value.code == "key-broker-malformed"


def test_an_unverifiable_or_absent_broker_is_unavailable(broker: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = broker
    # Another CA than the broker's: the TLS handshake fails, nothing is sent.
    other = tmp_path / "other-ca.pem"
    other.write_bytes(make_ca("another CA")[0].public_bytes(serialization.Encoding.PEM))
    with pytest.raises(Unavailable) as unverified:
        service._remote_transfer(_services(tmp_path, str(other)), f"{url}/kbs/v1/keys/{KEY_ID}", EVIDENCE)
    assert unverified.value.code == "key-broker-unreachable" and _Broker.seen == []
    # A relative path is taken in <state_dir>/keys, like the other key files.
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "other-ca.pem").write_bytes(other.read_bytes())
    with pytest.raises(Unavailable):
        service._remote_transfer(_services(tmp_path, "other-ca.pem"), f"{url}/kbs/v1/keys/{KEY_ID}", EVIDENCE)
    with pytest.raises(Unavailable) as down:
        service._remote_transfer(
            _services(tmp_path, str(other)), f"https://localhost:9/kbs/v1/keys/{KEY_ID}", EVIDENCE
        )
    assert down.value.code == "key-broker-unreachable"
    with pytest.raises(Unavailable) as unconfigured:
        service._remote_transfer(_services(tmp_path, ""), f"{url}/kbs/v1/keys/{KEY_ID}", EVIDENCE)
    assert unconfigured.value.code == "key-broker-ca-not-configured"
