"""/hvs/v2/tag-certificates on SQLite and PostgreSQL: issue, search, get, revoke, delete, and every bad
input a clear 4xx with its code. The certificates are checked with openssl (signature, subject, extensions)
and read back by the core as SecL's format. End to end with a TPM: tests/test_central_assettag_e2e.py.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from secl.central.context import services_of
from secl.central.evidence.agentclient import AgentBadResponse, decode_quote_response
from secl.central.keyfiles import KeyFiles
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.tags import store as tagstore
from secl.core.assettag import TagSelection, parse_tag_certificate
from tests.central_fixtures import CentralState

HOST = "0e6b4e1c-aaaa-4bbb-8ccc-0123456789ab"
OTHER = "1e6b4e1c-aaaa-4bbb-8ccc-0123456789ab"
BASE = "/hvs/v2/tag-certificates"


def _create(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    body = {"hardware_uuid": HOST, "selection_content": [{"name": "country", "value": "DE"}], **body}
    return client.post(BASE, json=body, headers=headers)


def test_issue_search_get_revoke_delete(
    client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState, tmp_path: Path
) -> None:
    tags = [
        {"name": "country", "value": "DE"},
        {"name": "rack", "value": "R12"},
        {"name": "zone", "value": "Zürich"},
    ]
    created = _create(
        client, admin_headers, hardware_uuid=HOST.upper(), selection_content=tags, validity_days=30
    )
    assert created.status_code == 201, created.json
    cert = created.json
    assert cert["hardware_uuid"] == HOST and cert["subject"] == f"CN={HOST}"
    assert cert["selection_content"] == tags and cert["revoked"] is False and cert["created_by"] == "admin"
    der = base64.b64decode(cert["certificate"])
    assert hashlib.sha384(der).hexdigest() == cert["sha384"]
    parsed = parse_tag_certificate(der)
    assert dict(parsed.tag_map) == {"country": "DE", "rack": "R12", "zone": "Zürich"}
    lifetime = datetime.fromisoformat(cert["not_after"]) - datetime.fromisoformat(cert["not_before"])
    assert lifetime == timedelta(days=30)
    # openssl, independently: signed by the Tag CA of the key files, three 2.5.4.789.1 extensions.
    (tmp_path / "tag.der").write_bytes(der)
    pem = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(tmp_path / "tag.der")],
                         capture_output=True, check=True).stdout  # fmt: skip
    (tmp_path / "tag.pem").write_bytes(pem)
    ca = KeyFiles(central_state.config.keys_dir).tag_ca_cert
    verified = subprocess.run(["openssl", "verify", "-partial_chain", "-CAfile", str(ca), str(tmp_path / "tag.pem")],
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(tmp_path / "tag.pem")],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert text.count("2.5.4.789.1") == 3 and f"CN = {HOST}" in text

    other = _create(client, admin_headers, hardware_uuid=OTHER).json
    got = client.get(f"{BASE}/{cert['id']}", headers=admin_headers)
    assert got.status_code == 200 and got.json == cert

    def ids(**query: str) -> list[str]:
        found = client.get(BASE, query_string=query, headers=admin_headers)
        assert found.status_code == 200, found.json
        return [c["id"] for c in found.json["tag_certificates"]]

    assert ids() == [other["id"], cert["id"]]  # newest first
    assert ids(hardwareUuid=HOST) == [cert["id"]]
    assert ids(subjectEqualTo=f"CN={OTHER}") == [other["id"]] and ids(subjectContains="1e6b4e1c") == [
        other["id"]
    ]
    assert ids(validOn=(datetime.now(UTC) + timedelta(days=60)).isoformat()) == [
        other["id"]
    ]  # 30 vs 365 days
    assert ids(validOn="2001-01-01T00:00:00Z") == [] and ids(revoked="true") == []

    revoked = client.post(f"{BASE}/{cert['id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json["revoked"] is True and revoked.json["revoked_at"]
    again = client.post(f"{BASE}/{cert['id']}/revoke", headers=admin_headers)  # idempotent, first time kept
    assert again.status_code == 200 and again.json["revoked_at"] == revoked.json["revoked_at"]
    assert ids(revoked="true") == [cert["id"]] and ids(revoked="false") == [other["id"]]
    # A revoked certificate cannot be deployed.
    refused = client.post(
        "/hvs/v2/rpc/deploy-tag-certificate", json={"certificate_id": cert["id"]}, headers=admin_headers
    )
    assert refused.status_code == 409 and refused.json["code"] == "tag-certificate-revoked", refused.json

    assert client.delete(f"{BASE}/{cert['id']}", headers=admin_headers).status_code == 204
    gone = client.get(f"{BASE}/{cert['id']}", headers=admin_headers)
    assert gone.status_code == 404 and gone.json["code"] == "tag-certificate-not-found"
    audit = client.get(
        "/aas/v1/audit-events", query_string={"action": "tag-certificate.revoked"}, headers=admin_headers
    )
    assert audit.status_code == 200 and len(audit.json) == 1, audit.json


TOO_MANY = [{"name": f"n{i}", "value": "v"} for i in range(65)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"selection_content": [{"name": "a", "value": "1"}, {"name": "A", "value": "2"}]}, 400, "tag-name-duplicate"),
        ({"selection_content": [{"name": "a", "value": "x" * 257}]}, 400, "tag-value-too-long"),
        ({"selection_content": [{"name": "é" * 33, "value": "1"}]}, 400, "tag-name-too-long"),  # 66 bytes
        ({"selection_content": TOO_MANY}, 400, "tag-selection-too-many"),
        ({"selection_content": []}, 400, "tag-selection-empty"),
        ({"selection_content": [{"name": "", "value": "1"}]}, 400, "tag-name-empty"),
        ({"selection_content": [{"name": "a=b", "value": "1"}]}, 400, "tag-name-invalid"),
        ({"selection_content": [{"name": "a", "value": " padded"}]}, 400, "tag-text-whitespace"),
        ({"selection_content": [{"name": "a", "value": "bidi\u202e"}]}, 400, "tag-text-control-character"),
        ({"selection_content": [{"name": "a"}]}, 400, "validation-failed"),
        ({"selection_content": [{"name": "a", "value": 1}]}, 400, "validation-failed"),
        ({"selection_content": [{"name": "a", "value": "1", "x": 2}]}, 400, "validation-failed"),
        ({"selection_content": "country=DE"}, 400, "validation-failed"),
        ({"hardware_uuid": "not-a-uuid"}, 400, "validation-failed"),
        ({"hardware_uuid": "00000000-0000-0000-0000-000000000000"}, 400, "hardware-uuid-invalid"),
        ({"validity_days": 0}, 400, "validation-failed"),
        ({"validity_days": 3651}, 400, "validation-failed"),
        ({"extra": True}, 400, "validation-failed"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_requests_are_4xx_with_a_code(
    client: FlaskClient, admin_headers: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    response = _create(client, admin_headers, **body)
    assert response.status_code == status and response.json["code"] == code, response.json
    assert response.json["message"]
    assert client.get(BASE, headers=admin_headers).json == {"tag_certificates": []}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_unknown_ids_and_bad_queries_are_4xx(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    missing = str(uuid.uuid4())
    for method, path, body in [
        ("GET", f"{BASE}/{missing}", None),
        ("DELETE", f"{BASE}/{missing}", None),
        ("POST", f"{BASE}/{missing}/revoke", None),
        ("POST", "/hvs/v2/rpc/deploy-tag-certificate", {"certificate_id": missing}),
    ]:
        response = client.open(path, method=method, json=body, headers=admin_headers)
        assert response.status_code == 404 and response.json["code"] == "tag-certificate-not-found", (
            path,
            response.json,
        )
    for query in ({"validOn": "yesterday"}, {"hardwareUuid": "x"}, {"limit": "0"}, {"revoked": "maybe"}):
        assert client.get(BASE, query_string=query, headers=admin_headers).status_code == 400, query
    for body in (
        {},
        {"certificate_id": "x"},
        {"certificate_id": missing, "host_id": "y"},
        {"certificate_id": missing, "z": 1},
    ):
        response = client.post("/hvs/v2/rpc/deploy-tag-certificate", json=body, headers=admin_headers)
        assert response.status_code == 400, (body, response.json)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_deploy_refuses_expired_unknown_host_and_wrong_host(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        selection = TagSelection.of({"country": "DE"})
        expired = tagstore.issue(session, services_of(central_app).keys.tag_ca, hardware_uuid=HOST, selection=selection, actor="test",
                                 not_before=now - timedelta(minutes=4), not_after=now - timedelta(minutes=1))  # fmt: skip
        future = tagstore.issue(session, services_of(central_app).keys.tag_ca, hardware_uuid=HOST, selection=selection, actor="test",
                                not_before=now + timedelta(days=1), not_after=now + timedelta(days=2))  # fmt: skip
        session.commit()
        expired_id, future_id = expired.id, future.id
        assert session.get(TagCertificateRecord, expired_id).not_after < now
    deploy = "/hvs/v2/rpc/deploy-tag-certificate"
    for cert_id, code in (
        (expired_id, "tag-certificate-expired"),
        (future_id, "tag-certificate-not-yet-valid"),
    ):
        response = client.post(deploy, json={"certificate_id": cert_id}, headers=admin_headers)
        assert response.status_code == 409 and response.json["code"] == code, response.json
    valid = _create(client, admin_headers).json
    # No registered host has the certificate's hardware UUID yet.
    unknown = client.post(deploy, json={"certificate_id": valid["id"]}, headers=admin_headers)
    assert unknown.status_code == 404 and unknown.json["code"] == "host-not-found"
    # A host known to be another machine: refused before its agent is asked.
    host = client.post("/hvs/v2/hosts", json={"host_name": "other", "connection_string": "intel:https://other.invalid:1443"},
                       headers=admin_headers).json  # fmt: skip
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        from secl.central.store.hvs_flavor_models import Host

        session.get(Host, host["id"]).hardware_uuid = OTHER
        session.commit()
    wrong = client.post(
        deploy, json={"certificate_id": valid["id"], "host_id": host["id"]}, headers=admin_headers
    )
    assert wrong.status_code == 409 and wrong.json["code"] == "tag-certificate-wrong-host", wrong.json
    # The right machine per the registry, but its agent cannot be reached: 409 with the agent's code.
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        session.get(Host, host["id"]).hardware_uuid = HOST
        session.commit()
    down = client.post(deploy, json={"certificate_id": valid["id"]}, headers=admin_headers)
    assert down.status_code == 409 and down.json["code"] == "agent-unreachable", down.json


@pytest.mark.parametrize("backend", ["sqlite"])
def test_hosts_filter_query_is_validated(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    ok = client.get("/hvs/v2/hosts", query_string=[("tag", "country=DE"), ("tag", "rack=R 12"), ("trusted", "true")],
                    headers=admin_headers)  # fmt: skip
    assert ok.status_code == 200 and ok.json == {"hosts": []}
    for query in ([("tag", "country")], [("tag", "=DE")], [("tag", "country=")], [("trusted", "perhaps")],
                  [("nameContains", "a"), ("nameContains", "b")]):  # fmt: skip
        response = client.get("/hvs/v2/hosts", query_string=query, headers=admin_headers)
        assert response.status_code == 400, (query, response.json)


def _answer(**fields: Any) -> dict[str, Any]:
    return {"attest": base64.b64encode(b"a").decode(), "signature": base64.b64encode(b"s").decode(), "pcrs": {},
            "event_log": None, **fields}  # fmt: skip


def test_the_agents_tag_fields_are_read_strictly() -> None:
    digest = hashlib.sha384(b"certificate").digest()
    b64 = base64.b64encode(digest).decode()
    assert decode_quote_response(_answer()).asset_tag is None  # an agent that predates asset tags
    assert decode_quote_response(_answer(is_tag_provisioned=False)).asset_tag is None
    assert decode_quote_response(_answer(is_tag_provisioned=True, asset_tag=b64)).asset_tag == digest
    for bad in (
        {"is_tag_provisioned": True},
        {"is_tag_provisioned": False, "asset_tag": b64},
        {"is_tag_provisioned": "yes", "asset_tag": b64},
        {"asset_tag": "not base64!"},
        {"asset_tag": base64.b64encode(digest[:32]).decode()},
        {"asset_tag": base64.b64encode(bytes(48)).decode()},
        {"asset_tag": 48},
    ):
        with pytest.raises(AgentBadResponse):
            decode_quote_response(_answer(**bad))
