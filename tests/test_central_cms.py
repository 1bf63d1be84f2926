"""CMS on SQLite and PostgreSQL: the public CA bundle, enrollment tokens (CLI and API), and CSR signing."""

from __future__ import annotations

import ipaddress
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from secl.central import create_app
from secl.central.cli import cli
from secl.central.cms import enrollment, pki
from secl.central.store.models import AuditEvent, EnrollmentToken, utcnow
from tests.central_fixtures import CentralState

HOST = "node1.example.com"


def _csr(
    cn: str | None = HOST,
    *,
    sans: list[x509.GeneralName] | None = None,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _mint(client: FlaskClient, headers: dict[str, str], host: str = HOST, **fields) -> str:
    response = client.post("/cms/v1/enrollment-tokens", json={"host": host, **fields}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["token"]


def _request(client: FlaskClient, token: str | None, csr: str, kind: str = "tls-client"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/cms/v1/certificates", json={"csr": csr, "kind": kind}, headers=headers)


def _cli_token(central_state: CentralState, tmp_path: Path, *args: str):
    config = tmp_path / "central.toml"
    config.write_text(
        f"state_dir = {json.dumps(str(central_state.config.state_dir))}\n"
        f"database_url = {json.dumps(central_state.config.database_url)}\n"
    )
    return CliRunner().invoke(cli, ["--config", str(config), "create-enrollment-token", *args])


def _root(central_state: CentralState) -> x509.Certificate:
    return x509.load_pem_x509_certificate(central_state.config.keys_dir.joinpath("root-ca.pem").read_bytes())


def test_ca_certificates_are_public_as_json_and_pem(client: FlaskClient, central_state: CentralState):
    as_json = client.get("/cms/v1/ca-certificates")
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    assert as_json.json["fingerprint_sha384"] == central_state.root_ca_fingerprint
    [only] = as_json.json["certificates"]
    assert only["fingerprint_sha384"] == central_state.root_ca_fingerprint
    as_pem = client.get("/cms/v1/ca-certificates", headers={"Accept": "application/x-pem-file"})
    assert as_pem.status_code == 200 and as_pem.mimetype == "application/x-pem-file"
    assert as_pem.get_data(as_text=True) == as_json.json["pem"] == only["pem"]
    assert (
        pki.fingerprint_sha384(x509.load_pem_x509_certificate(as_pem.data))
        == central_state.root_ca_fingerprint
    )


def test_cli_token_gets_a_certificate_chaining_to_the_root(
    client: FlaskClient, central_state: CentralState, admin_headers: dict[str, str], tmp_path: Path
):
    minted = _cli_token(
        central_state, tmp_path, "--host", HOST.upper(), "--ttl", "30m", "--kind", "tls-client"
    )
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip()
    assert minted.stdout == token + "\n" and len(token) >= 43  # the token, alone, for scripts to capture
    assert HOST in minted.stderr and token not in minted.stderr

    response = _request(client, token, _csr(sans=[x509.DNSName(HOST)]))
    assert response.status_code == 201, response.json
    cert = x509.load_pem_x509_certificate(response.json["certificate"].encode())
    root = _root(central_state)
    cert.verify_directly_issued_by(root)
    assert response.json["ca_certificates"] == root.public_bytes(serialization.Encoding.PEM).decode()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOST
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST] and len(san) == 1
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert response.json["serial"] == format(cert.serial_number, "x")
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(lifetime - timedelta(days=central_state.config.certificate_days)) < timedelta(minutes=10)

    listed = client.get("/cms/v1/certificates", headers=admin_headers)
    assert listed.status_code == 200
    [entry] = listed.json
    assert entry["serial"] == response.json["serial"] and entry["kind"] == "tls-client"
    assert entry["fingerprint_sha384"] == pki.fingerprint_sha384(cert) and HOST in entry["subject"]
    issued = client.get("/aas/v1/audit-events?action=certificate.issued", headers=admin_headers).json
    assert [e["target"] for e in issued] == [HOST]


def test_cli_rejects_bad_arguments(central_state: CentralState, tmp_path: Path):
    for args in (
        ["--host", HOST, "--ttl", "soon"],
        ["--host", "not a host"],
        ["--host", HOST, "--kind", "ca"],
    ):
        result = _cli_token(central_state, tmp_path, *args)
        assert result.exit_code == 2 and result.stdout == "", result.output


def test_single_use_token_is_refused_the_second_time(client: FlaskClient, admin_headers: dict[str, str]):
    token = _mint(client, admin_headers)
    assert _request(client, token, _csr()).status_code == 201
    again = _request(client, token, _csr())
    assert again.status_code == 401 and again.json["code"] == "enrollment-token-used-up"
    twice = _mint(client, admin_headers, max_uses=2)
    assert [_request(client, twice, _csr()).status_code for _ in range(3)] == [201, 201, 401]
    states = {
        t["max_uses"]: t["state"] for t in client.get("/cms/v1/enrollment-tokens", headers=admin_headers).json
    }
    assert states == {1: "used-up", 2: "used-up"}


def test_expired_token_is_refused(client: FlaskClient, central_app: Flask, admin_headers: dict[str, str]):
    token = _mint(client, admin_headers)
    with central_app.extensions["secl.db"].sessions() as session:
        session.execute(update(EnrollmentToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = _request(client, token, _csr())
    assert response.status_code == 401 and response.json["code"] == "enrollment-token-expired"
    [listed] = client.get("/cms/v1/enrollment-tokens", headers=admin_headers).json
    assert listed["state"] == "expired"


@pytest.mark.parametrize(
    ("cn", "sans"),
    [
        ("node2.example.com", None),  # a token for another host
        (HOST, [x509.DNSName(HOST), x509.DNSName("evil.example.com")]),  # an extra name
        (HOST, [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
        (HOST, [x509.RFC822Name("root@example.com")]),
        (None, [x509.DNSName(HOST)]),  # no common name
    ],
)
def test_names_other_than_the_tokens_host_are_refused(
    client: FlaskClient, admin_headers: dict[str, str], cn: str | None, sans: list | None
):
    token = _mint(client, admin_headers)
    response = _request(client, token, _csr(cn, sans=sans))
    assert response.status_code == 403 and response.json["code"] == "enrollment-name-mismatch"
    # A refused request does not spend the token.
    assert _request(client, token, _csr()).status_code == 201


def test_ip_address_hosts_enroll(client: FlaskClient, admin_headers: dict[str, str]):
    token = _mint(client, admin_headers, host="10.1.2.3")
    response = _request(
        client, token, _csr("10.1.2.3", sans=[x509.IPAddress(ipaddress.ip_address("10.1.2.3"))])
    )
    assert response.status_code == 201, response.json
    cert = x509.load_pem_x509_certificate(response.json["certificate"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_kinds_the_token_does_not_allow_are_refused(client: FlaskClient, admin_headers: dict[str, str]):
    client_only = _mint(client, admin_headers, kinds=["tls-client"])
    for kind in ("tls-server", "tls"):
        response = _request(client, client_only, _csr(), kind=kind)
        assert response.status_code == 403 and response.json["code"] == "enrollment-kind-not-allowed"
    both = _mint(client, admin_headers, kinds=["tls"], max_uses=3)  # tls covers either half
    for kind, ekus in (("tls", 2), ("tls-server", 1), ("tls-client", 1)):
        response = _request(client, both, _csr(), kind=kind)
        assert response.status_code == 201, response.json
        cert = x509.load_pem_x509_certificate(response.json["certificate"].encode())
        assert len(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus


def _bad_signature_csr() -> str:
    der = bytearray(x509.load_pem_x509_csr(_csr().encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # inside the signature's last integer: still parses, no longer verifies
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("csr", "code"),
    [
        ("garbage", "csr-invalid"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "csr-invalid"),
        ("bad-signature", "csr-invalid"),
        ("rsa-1024", "csr-key-unacceptable"),
        ("p-521", "csr-key-unacceptable"),
    ],
)
def test_bad_csrs_are_400(client: FlaskClient, admin_headers: dict[str, str], csr: str, code: str):
    made = {
        "bad-signature": _bad_signature_csr,
        "rsa-1024": lambda: _csr(key=rsa.generate_private_key(65537, 1024)),
        "p-521": lambda: _csr(key=ec.generate_private_key(ec.SECP521R1())),
    }
    token = _mint(client, admin_headers)
    response = _request(client, token, made[csr]() if csr in made else csr)
    assert response.status_code == 400 and response.json["code"] == code, response.json
    assert _request(client, token, _csr(key=rsa.generate_private_key(65537, 2048))).status_code == 201


def test_requests_without_a_valid_enrollment_token_are_401(
    client: FlaskClient, admin_headers: dict[str, str]
):
    cases = [
        ({}, "enrollment-token-missing"),
        ({"Authorization": "Basic abc"}, "enrollment-token-malformed"),
        ({"Authorization": "Bearer not-a-token"}, "enrollment-token-unknown"),
        (admin_headers, "enrollment-token-unknown"),  # a user JWT is not an enrollment token
    ]
    for headers, code in cases:
        for body in ({"csr": _csr(), "kind": "tls"}, {"not": "valid"}):  # authorization before the body
            response = client.post("/cms/v1/certificates", json=body, headers=headers)
            assert response.status_code == 401, response.json
            assert response.json["code"] == code and response.headers["WWW-Authenticate"].startswith("Bearer")
        garbage = client.post("/cms/v1/certificates", data="x", content_type="text/plain", headers=headers)
        assert garbage.status_code == 401
    refused = client.get("/aas/v1/audit-events?action=enrollment.refused", headers=admin_headers).json
    assert {e["details"]["code"] for e in refused} == {code for _, code in cases}


def test_token_value_is_never_stored_logged_or_listed(
    client: FlaskClient, central_app: Flask, admin_headers: dict[str, str]
):
    token = _mint(client, admin_headers, kinds=["tls-server"])
    _request(client, token, _csr(), kind="tls-client")  # refused: logged
    _request(client, token, _csr("other.example.com"), kind="tls-server")  # refused: logged
    assert _request(client, token, _csr(), kind="tls-server").status_code == 201
    _request(client, token, _csr(), kind="tls-server")  # used up: logged
    with central_app.extensions["secl.db"].sessions() as session:
        events = session.scalars(select(AuditEvent)).all()
        rows = session.scalars(select(EnrollmentToken)).all()
        everything = json.dumps(
            [[e.actor, e.action, e.target, e.details] for e in events]
            + [[getattr(r, c.key) for c in EnrollmentToken.__table__.columns] for r in rows],
            default=str,
        )
    assert token not in everything
    assert rows[0].token_sha256 == enrollment.hash_token(token)
    actions = [e.action for e in events]
    assert actions.count("enrollment.refused") == 3 and "enrollment-token.created" in actions
    listing = client.get("/cms/v1/enrollment-tokens", headers=admin_headers)
    assert listing.status_code == 200 and token not in listing.get_data(as_text=True)
    assert rows[0].token_sha256 not in listing.get_data(as_text=True)
    assert listing.json[0]["uses"] == 1 and listing.json[0]["host"] == HOST


def test_deleted_token_no_longer_enrolls(client: FlaskClient, admin_headers: dict[str, str]):
    token = _mint(client, admin_headers, max_uses=2)
    assert _request(client, token, _csr()).status_code == 201
    [listed] = client.get(f"/cms/v1/enrollment-tokens?host={HOST}", headers=admin_headers).json
    [issued] = client.get("/cms/v1/certificates", headers=admin_headers).json
    assert issued["enrollment_token_id"] == listed["id"]
    assert (
        client.delete(f"/cms/v1/enrollment-tokens/{listed['id']}", headers=admin_headers).status_code == 204
    )
    assert (
        client.delete(f"/cms/v1/enrollment-tokens/{listed['id']}", headers=admin_headers).status_code == 404
    )
    response = _request(client, token, _csr())
    assert response.status_code == 401 and response.json["code"] == "enrollment-token-unknown"
    # The register keeps the certificate; it only forgets which (now deleted) token obtained it.
    [kept] = client.get("/cms/v1/certificates", headers=admin_headers).json
    assert kept["serial"] == issued["serial"] and kept["enrollment_token_id"] is None


def test_token_api_validates_and_needs_permissions(client: FlaskClient, admin_headers: dict[str, str]):
    for body in ({"host": "bad host"}, {"host": HOST, "kinds": ["ca"]}, {"host": HOST, "ttl_seconds": 0},
                 {"host": HOST, "max_uses": 0}, {"host": HOST, "kinds": []}):  # fmt: skip
        response = client.post("/cms/v1/enrollment-tokens", json=body, headers=admin_headers)
        assert response.status_code == 400, (body, response.json)
    assert client.post("/cms/v1/enrollment-tokens", json={"host": HOST}).status_code == 401
    assert client.get("/cms/v1/enrollment-tokens").status_code == 401
    assert client.get("/cms/v1/certificates").status_code == 401


def test_a_single_use_token_issues_once_across_two_central_instances(
    client: FlaskClient, central_state: CentralState, admin_headers: dict[str, str]
):
    token = _mint(client, admin_headers)
    apps = [create_app(central_state.config) for _ in range(4)]
    csrs = [_csr() for _ in apps]
    barrier = threading.Barrier(len(apps))

    def enroll(index: int) -> int:
        own = apps[index].test_client()
        barrier.wait()
        return _request(own, token, csrs[index]).status_code

    try:
        with ThreadPoolExecutor(len(apps)) as pool:
            statuses = sorted(pool.map(enroll, range(len(apps))))
    finally:
        for app in apps:
            app.extensions["secl.db"].dispose()
    assert statuses == [201, 401, 401, 401]


def test_claiming_a_use_is_atomic_not_read_modify_write(client: FlaskClient, central_app: Flask,
                                                         admin_headers: dict[str, str]):  # fmt: skip
    token = _mint(client, admin_headers)
    sessions = central_app.extensions["secl.db"].sessions
    with sessions() as first, sessions() as second:
        seen_first, seen_second = enrollment.find(first, token), enrollment.find(second, token)
        assert seen_first is not None and seen_second is not None
        assert seen_first.uses == seen_second.uses == 0  # both saw a use left
        assert enrollment.claim_use(first, seen_first.id)
        first.commit()
        assert not enrollment.claim_use(second, seen_second.id)
        second.rollback()


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("45s", 45), ("30m", 1800), ("1h", 3600), ("2D", 172800)]
)
def test_parse_ttl(text: str, seconds: int):
    assert enrollment.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "1w", "1.5h", "31d", "h"])
def test_parse_ttl_rejects(text: str):
    with pytest.raises(ValueError):
        enrollment.parse_ttl(text)


def test_cli_kind_choices_match_the_pki():
    option = next(p for p in cli.commands["create-enrollment-token"].params if p.name == "kinds")
    # Every certificate kind, plus "aik" (enroll the host's AIK with the Privacy CA).
    assert sorted(option.type.choices) == sorted([*pki.KINDS, "aik"])  # type: ignore[attr-defined]
