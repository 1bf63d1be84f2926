"""Bad input on every route issue 13 added (/kbs/v1/*, /hvs/v2/rpc/certify-host-*-key), on SQLite and
PostgreSQL: each malformed body, path id, query, content type and oversized field is a 4xx with a JSON
``{code, message}``, never a 5xx; a token lacking the route's permission is refused with 403; and
schemathesis, over these routes only, with more examples than the walk over the whole central.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from secl.central.aas.tokens import TokenService
from secl.central.keyfiles import KeyFiles
from tests.central_fixtures import CentralState
from tests.kbs_inputs import B64_JUNK, LONG, NUL, error_problem, impostor_certificates, public_pem

UNKNOWN_ID = "00000000-0000-4000-8000-0000000000ff"
BAD_IDS = ["x", "x" * 5000, "a%00b", "%E2%98%83", "..%2F..%2Fetc", UNKNOWN_ID.upper()]


def _json(client: FlaskClient, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    return client.open(
        path, method=method, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


def _key(client: FlaskClient, headers: dict[str, str]) -> str:
    created = _json(
        client, "POST", "/kbs/v1/keys", headers, {"key_information": {"algorithm": "AES", "key_length": 256}}
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()["key_information"]["id"]


def _privacy_ca(client: FlaskClient, headers: dict[str, str]) -> x509.Certificate:
    response = client.get("/hvs/v2/privacyca/certificate", headers=headers)
    assert response.status_code == 200, response.get_json()
    return x509.load_pem_x509_certificate(response.get_json()["certificate"].encode())


def _register_key_info(**overrides: Any) -> dict[str, Any]:
    body = {
        "public_key_modulus": B64_JUNK, "tpm_certify_key": B64_JUNK, "tpm_certify_key_signature": B64_JUNK,
        "aik_der_certificate": B64_JUNK, "name_digest": B64_JUNK, "tpm_version": "2.0",
        "operating_system": "linux",
    }  # fmt: skip
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_every_malformed_request_is_a_4xx_json_error(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    key_id = _key(client, admin_headers)
    ca = _privacy_ca(client, admin_headers)
    aes = {"algorithm": "AES", "key_length": 256}
    bodies: list[tuple[str, str, Any]] = []
    # Keys.
    for info in [
        {}, {"algorithm": "DES"}, {"algorithm": "AES", "key_length": 100}, {"algorithm": "AES", "key_length": -1},
        {"algorithm": "AES", "key_length": 10**30}, {"algorithm": "AES", "key_length": "two hundred"},
        {"algorithm": "AES", "key_length": 256, "key_string": "not base64!"},
        {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(b"short").decode()},
        {"algorithm": "AES", "key_length": 128, "key_string": base64.b64encode(bytes(32)).decode()},
        {"algorithm": "AES", "key_length": 256, "key_string": LONG},
        {"algorithm": "RSA", "key_length": 1024}, {"algorithm": "RSA", "key_length": 3000},
        {"algorithm": "RSA", "key_length": 2048, "key_string": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        {"algorithm": "RSA", "key_length": 2048, "key_string": public_pem(rsa.generate_private_key(65537, 2048)).decode()},
        {"algorithm": "EC", "curve_type": "secp1r1"}, {"algorithm": "EC", "curve_type": "x" * 40},
        {"algorithm": "EC", "curve_type": "prime256v1", "key_string": public_pem(ec.generate_private_key(ec.SECP256R1())).decode()},
        {"algorithm": "AES", "key_length": 256, "surprise": 1}, {"algorithm": "AES", "key_length": 256, "curve_type": NUL},
        {"algorithm": ["AES"]}, {"algorithm": None},
    ]:  # fmt: skip
        bodies.append(("POST", "/kbs/v1/keys", {"key_information": info}))
    bodies += [
        ("POST", "/kbs/v1/keys", {"key_information": aes, "transfer_policy_id": UNKNOWN_ID}),
        ("POST", "/kbs/v1/keys", {"key_information": aes, "transfer_policy_id": "x" * 100}),
        ("POST", "/kbs/v1/keys", {"key_information": aes, "label": "x" * 256}),
        ("POST", "/kbs/v1/keys", {"key_information": aes, "label": NUL}),
        ("POST", "/kbs/v1/keys", {"key_information": aes, "usage": "x" * 1025}),
        ("POST", "/kbs/v1/keys", []), ("POST", "/kbs/v1/keys", "AES"), ("POST", "/kbs/v1/keys", None),
        ("POST", "/kbs/v1/keys", {}),
    ]  # fmt: skip
    # Transfers (no token: the evidence authorizes them).
    good_evidence = {
        "attestation_result": "a.b.c",
        "aik_certificate": B64_JUNK,
        "binding_key_certificate": B64_JUNK,
    }
    for evidence in [
        {}, {"attestation_result": ""}, dict(good_evidence, attestation_result=LONG),
        dict(good_evidence, attestation_result="not a jwt"), dict(good_evidence, aik_certificate="%%%"),
        dict(good_evidence, aik_certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
        dict(good_evidence, binding_key_certificate=LONG), dict(good_evidence, attestation_result=NUL),
        dict(good_evidence, attestation_result="e30.e30.", aik_certificate=B64_JUNK),
        dict(good_evidence, attestation_result="W10.W10.AAAA"),  # header and claims are JSON lists
        dict(good_evidence, attestation_result="eyJraWQiOjF9.e30.AAAA"),  # a kid that is a number
        dict(good_evidence, extra=True), [good_evidence],
    ]:  # fmt: skip
        bodies.append(("POST", f"/kbs/v1/keys/{key_id}/transfer", evidence))
    bodies.append(("POST", f"/kbs/v1/keys/{UNKNOWN_ID}/transfer", good_evidence))
    # Transfer policies.
    for policy in [
        {}, {"name": ""}, {"name": "x" * 256}, {"name": "p", "required_flavor_parts": ["BIOS"]},
        {"name": "p", "require_trusted": False}, {"name": "p", "usage": "country"},
        {"name": "p", "usage": "country:"}, {"name": "p", "usage": ":US"}, {"name": "p", "max_report_age_seconds": 0},
        {"name": "p", "max_report_age_seconds": -5}, {"name": "p", "max_report_age_seconds": 10**12},
        {"name": "p", "required_tags": {"country": []}}, {"name": "p", "required_tags": {"": ["US"]}},
        {"name": "p", "required_tags": {"country": [""]}}, {"name": "p", "required_tags": ["country"]},
        {"name": "p", "hardware_uuids": ["short"]}, {"name": "p", "hardware_uuids": "all"},
        {"name": "p", "required_flavor_parts": ["OS"] * 6}, {"name": NUL}, {"name": "p", "usage": "a:" + NUL},
        {"name": "p", "require_trusted": "perhaps"},
    ]:  # fmt: skip
        bodies.append(("POST", "/kbs/v1/key-transfer-policies", policy))
    # Trust stores.
    for path in ("/kbs/v1/saml-certificates", "/kbs/v1/tpm-identity-certificates"):
        for certificate in [
            {}, {"certificate": ""}, {"certificate": "garbage"}, {"certificate": LONG},
            {"certificate": public_pem(rsa.generate_private_key(65537, 2048)).decode()},
            {"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            {"certificate": base64.b64encode(b"der?").decode()}, {"certificate": NUL},
        ]:  # fmt: skip
            bodies.append(("POST", path, certificate))
    # Certify host keys.
    impostors = impostor_certificates(ca.subject)
    for path in ("/hvs/v2/rpc/certify-host-binding-key", "/hvs/v2/rpc/certify-host-signing-key"):
        for body in [
            {}, _register_key_info(public_key_modulus=None), _register_key_info(aik_der_certificate="!!!!"),
            _register_key_info(aik_der_certificate="A" * 100_000), _register_key_info(tpm_certify_key="AA"),
            _register_key_info(tpm_version="x" * 17), _register_key_info(operating_system=NUL),
            _register_key_info(aik_der_certificate="AAAA"),
            *(_register_key_info(aik_der_certificate=base64.b64encode(der).decode()) for der in impostors.values()),
            _register_key_info(aik_der_certificate=base64.b64encode(ca.public_bytes(Encoding.DER)).decode()),
        ]:  # fmt: skip
            bodies.append(("POST", path, body))

    failures = []
    for method, path, body in bodies:
        headers = {} if path.endswith("/transfer") else admin_headers
        problem = error_problem(_json(client, method, path, headers, body))
        if problem:
            failures.append(f"{method} {path} {str(body)[:200]}: {problem}")
    # Path ids, queries and content types.
    raw: list[tuple[str, str, dict[str, str], Any, str | None]] = []
    for bad in BAD_IDS:
        raw += [
            ("GET", f"/kbs/v1/keys/{bad}", {}, None, None),
            ("DELETE", f"/kbs/v1/keys/{bad}", {}, None, None),
            ("POST", f"/kbs/v1/keys/{bad}", {}, public_pem(rsa.generate_private_key(65537, 2048)), "application/x-pem-file"),
            ("GET", f"/kbs/v1/key-transfer-policies/{bad}", {}, None, None),
            ("DELETE", f"/kbs/v1/key-transfer-policies/{bad}", {}, None, None),
            ("DELETE", f"/kbs/v1/saml-certificates/{bad}", {}, None, None),
            ("DELETE", f"/kbs/v1/tpm-identity-certificates/{bad}", {}, None, None),
        ]  # fmt: skip
    raw += [
        ("GET", "/kbs/v1/keys", {"algorithm": "DES"}, None, None),
        ("GET", "/kbs/v1/keys", {"label": "x" * 300}, None, None),
        ("GET", "/kbs/v1/keys", {"label": NUL}, None, None),
        ("GET", "/kbs/v1/keys", {"surprise": "1"}, None, None),
        ("GET", "/kbs/v1/key-transfer-policies", {"name": "x" * 300}, None, None),
        ("POST", "/kbs/v1/keys", {}, b"key_information=AES", "application/x-www-form-urlencoded"),
        ("POST", "/kbs/v1/keys", {}, b"{not json", "application/json"),
        ("POST", "/kbs/v1/keys", {}, b"\xff\xfe", "application/json"),
        ("POST", "/kbs/v1/key-transfer-policies", {}, b'{"name": "p"}', "text/plain"),
        ("POST", f"/kbs/v1/keys/{key_id}/transfer", {}, b"", "application/json"),
        ("POST", f"/kbs/v1/keys/{key_id}/transfer", {}, b'{"a":' * 5000, "application/json"),
        ("POST", "/kbs/v1/key-transfer-policies", {}, b"[" * 950 + b"]" * 950, "application/json"),
        ("POST", "/kbs/v1/key-transfer-policies", {}, b'{"name": ' + b"[" * 990 + b"]" * 990 + b"}", "application/json"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, b"", "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, b"garbage", "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, b"x" * 70_000, "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, public_pem(rsa.generate_private_key(65537, 1024)), "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, public_pem(ec.generate_private_key(ec.SECP256R1())), "application/x-pem-file"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, public_pem(rsa.generate_private_key(65537, 2048)), "application/json"),
        ("POST", f"/kbs/v1/keys/{key_id}", {}, b'{"pem": 1}', None),
        ("POST", "/hvs/v2/rpc/certify-host-binding-key", {}, b"AAAA", "application/octet-stream"),
    ]  # fmt: skip
    for method, path, query, data, content_type in raw:
        headers = {} if path.endswith("/transfer") else dict(admin_headers)
        if content_type:
            headers["Content-Type"] = content_type
        response = client.open(path, method=method, query_string=query, data=data, headers=headers)
        problem = error_problem(response)
        if problem:
            failures.append(f"{method} {path[:80]} {query} {content_type}: {problem}")
    assert not failures, "\n".join(failures)
    # Nothing was half-made by all that: one key, the default policy, no trusted certificate.
    assert len(client.get("/kbs/v1/keys", headers=admin_headers).get_json()) == 1
    assert len(client.get("/kbs/v1/key-transfer-policies", headers=admin_headers).get_json()) == 1
    assert client.get("/kbs/v1/saml-certificates", headers=admin_headers).get_json() == []


def test_a_token_without_the_routes_permission_is_refused(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState
) -> None:
    """The exact permission each KBS route needs, and a user holding all the others gets 403."""
    key_path = KeyFiles(central_state.config.keys_dir).token_signing_key
    signing_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(signing_key, ec.EllipticCurvePrivateKey)
    tokens = TokenService(signing_key, 600)
    key_id = _key(client, admin_headers)
    routes = {
        ("POST", "/kbs/v1/keys"): "KBS:keys:create",
        ("GET", "/kbs/v1/keys"): "KBS:keys:search",
        ("GET", f"/kbs/v1/keys/{key_id}"): "KBS:keys:retrieve",
        ("DELETE", f"/kbs/v1/keys/{key_id}"): "KBS:keys:delete",
        ("POST", f"/kbs/v1/keys/{key_id}"): "KBS:keys:transfer",
        ("POST", "/kbs/v1/key-transfer-policies"): "KBS:key-transfer-policies:create",
        ("GET", "/kbs/v1/key-transfer-policies"): "KBS:key-transfer-policies:search",
        ("POST", "/kbs/v1/saml-certificates"): "KBS:saml-certificates:create",
        ("GET", "/kbs/v1/saml-certificates"): "KBS:saml-certificates:search",
        ("POST", "/kbs/v1/tpm-identity-certificates"): "KBS:tpm-identity-certificates:create",
        ("GET", "/kbs/v1/tpm-identity-certificates"): "KBS:tpm-identity-certificates:search",
        ("POST", "/hvs/v2/rpc/certify-host-binding-key"): "HVS:host-keys:certify",
        ("POST", "/hvs/v2/rpc/certify-host-signing-key"): "HVS:host-keys:certify",
    }
    everything = sorted(set(routes.values()))
    body = {"key_information": {"algorithm": "AES", "key_length": 256}}
    for (method, path), permission in routes.items():
        others = [p for p in everything if p != permission] + ["HVS:hosts:search", "AAS:users:search"]
        token = tokens.issue("nobody", ["some-role"], others)[0]
        response = _json(client, method, path, {"Authorization": f"Bearer {token}"}, body)
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.get_json()["code"] == "permission-denied", (method, path, response.get_json())
    # The key is still there and no policy or certificate came into being.
    assert client.get(f"/kbs/v1/keys/{key_id}", headers=admin_headers).status_code == 200
    # The one permission is enough to create a key.
    creator = tokens.issue("creator", ["some-role"], ["KBS:keys:create"])[0]
    created = _json(client, "POST", "/kbs/v1/keys", {"Authorization": f"Bearer {creator}"}, body)
    assert created.status_code == 201, created.get_json()


#: Per operation and generation mode, over the 17 new operations.
MAX_EXAMPLES = 60


def test_schemathesis_over_the_new_routes(central_app: Flask, admin_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", central_app).include(
        path_regex=r"^/(kbs/v1/|hvs/v2/rpc/certify-host-)"
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not (
                operation.path_parameters or operation.query or operation.body
            ):
                continue

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=MAX_EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def fuzz(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    headers=admin_headers,
                    checks=[not_a_server_error, status_code_conformance, content_type_conformance],
                )

            try:
                fuzz()
            except Exception as exc:  # collected: one run reports every operation's failures
                failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    assert operations >= 15, operations
    assert not failures, "\n\n".join(failures)
