"""HVS store and API on SQLite and PostgreSQL: hosts, flavor groups, flavors (signed and verified), templates.

The flavors are SecL's own (the verifier test data in the corpus); the tamper test edits the stored JSON
in the database behind the central's back and expects every read to refuse the flavor.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from secl.central import create_app
from secl.central.context import services_of
from secl.central.flavors.store import FlavorSignatureInvalid, load_verified_flavors
from secl.central.flavortemplates.service import ensure_default_templates
from secl.central.keyfiles import KeyFiles
from secl.central.store.hvs_flavor_models import Host, StoredFlavor
from secl.core.flavor import parse_signed_flavors
from secl.core.flavorsign import SIGNATURE_SCHEME, verify_flavor_signature
from tests.central_fixtures import CentralState
from tests.corpus import corpus_bytes

VERIFIER = "intel-secl/pkg/lib/verifier/test_data"
HVS = "/hvs/v2"
DEFAULT_GROUPS = {"automatic", "host_unique", "platform_software", "workload_software"}


@pytest.fixture
def headers(central_app: Flask, admin_headers: dict[str, str]) -> dict[str, str]:
    """The administrator's headers, on a central whose default templates are installed (as setup does)."""
    with central_app.extensions["secl.db"].sessions() as session:
        ensure_default_templates(session)
    return admin_headers


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert body["code"] == code, body
    return body


def _groups(client: FlaskClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        g["name"]: g for g in _ok(client.get(f"{HVS}/flavorgroups", headers=headers), 200)["flavorgroups"]
    }


def _secl_flavors(case: str) -> list[dict[str, Any]]:
    return json.loads(corpus_bytes(f"{VERIFIER}/{case}/signed_flavors.json"))


def _unsigned(part: str = "PLATFORM", label: str = "golden-platform", **meta: Any) -> dict[str, Any]:
    return {
        "meta": {**meta, "description": {"flavor_part": part, "label": label, "tpm_version": "2.0"}},
        "pcrs": [{"pcr": {"index": 0, "bank": "SHA256"}, "measurement": "00" * 32, "pcr_matches": True}],
    }


# --- hosts ------------------------------------------------------------------------------------------------


def test_host_crud(client: FlaskClient, headers: dict[str, str], central_app: Flask):
    body = {
        "host_name": "node-1",
        "connection_string": "intel:https://node-1.example:1443",
        "description": "rack 4",
    }
    host = _ok(client.post(f"{HVS}/hosts", json=body, headers=headers), 201)
    assert host["status"] == "unknown" and host["hardware_uuid"] is None
    assert host["flavorgroup_names"] == ["automatic"]
    _error(client.post(f"{HVS}/hosts", json=body, headers=headers), 409, "host-exists")
    other = {
        "host_name": "node-2",
        "connection_string": "intel:https://10.0.0.2:1443",
        "flavorgroup_names": [],
    }
    second = _ok(client.post(f"{HVS}/hosts", json=other, headers=headers), 201)
    assert second["flavorgroup_names"] == []

    assert _ok(client.get(f"{HVS}/hosts/{host['id']}", headers=headers), 200) == host

    def names(q: dict[str, str]) -> list[str]:
        found = _ok(client.get(f"{HVS}/hosts", query_string=q, headers=headers), 200)["hosts"]
        return [h["host_name"] for h in found]

    assert names({}) == ["node-1", "node-2"]
    assert names({"nameEqualTo": "node-2"}) == ["node-2"]
    assert names({"nameContains": "ode-"}) == ["node-1", "node-2"]
    assert names({"nameContains": "%"}) == []  # LIKE wildcards are literal
    assert names({"id": host["id"]}) == ["node-1"]
    hardware = "80dd7987-8806-e411-906e-0017a4403562"
    with central_app.extensions["secl.db"].sessions() as session:  # what the verifier will do
        session.execute(
            update(Host).where(Host.id == host["id"]).values(hardware_uuid=hardware, status="connected")
        )
        session.commit()
    assert names({"hostHardwareId": hardware}) == ["node-1"]
    _error(
        client.get(f"{HVS}/hosts", query_string={"hostHardwareId": "nope"}, headers=headers),
        400,
        "validation-failed",
    )

    changed = _ok(client.put(f"{HVS}/hosts/{host['id']}", json={"connection_string": "intel:https://n1:1443"}, headers=headers), 200)  # fmt: skip
    assert changed["connection_string"] == "intel:https://n1:1443" and changed["status"] == "unknown"
    assert changed["hardware_uuid"] == hardware
    _error(
        client.put(f"{HVS}/hosts/{host['id']}", json={"host_name": "node-2"}, headers=headers),
        409,
        "host-exists",
    )
    _error(client.put(f"{HVS}/hosts/{host['id']}", json={}, headers=headers), 400, "validation-failed")
    renamed = _ok(client.put(f"{HVS}/hosts/{host['id']}", json={"host_name": "node-1b", "description": ""}, headers=headers), 200)  # fmt: skip
    assert (renamed["host_name"], renamed["description"]) == ("node-1b", "")

    assert client.delete(f"{HVS}/hosts/{host['id']}", headers=headers).status_code == 204
    _error(client.get(f"{HVS}/hosts/{host['id']}", headers=headers), 404, "host-not-found")
    _error(client.delete(f"{HVS}/hosts/{host['id']}", headers=headers), 404, "host-not-found")
    _error(
        client.put(f"{HVS}/hosts/{host['id']}", json={"description": "x"}, headers=headers),
        404,
        "host-not-found",
    )


@pytest.mark.parametrize(
    "connection_string",
    [
        "https://node:1443", "intel:http://node:1443", "intel:https://", "intel:https://user:pw@node:1443",
        "vmware:https://vcenter:443/sdk", "intel:https://node:99999", "intel:https://node:1443/?x=1",
        "intel:https://no de:1443", "intel:node:1443", "intel:https://node:0",
    ],
)  # fmt: skip
def test_bad_connection_strings_are_refused(
    client: FlaskClient, headers: dict[str, str], connection_string: str
):
    body = {"host_name": "node", "connection_string": connection_string}
    refused = _error(client.post(f"{HVS}/hosts", json=body, headers=headers), 400, "validation-failed")
    assert refused["message"]


def test_a_host_needs_existing_flavor_groups(client: FlaskClient, headers: dict[str, str]):
    body = {"host_name": "node", "connection_string": "intel:https://node", "flavorgroup_names": ["nope"]}
    _error(client.post(f"{HVS}/hosts", json=body, headers=headers), 400, "flavorgroup-unknown")
    assert _ok(client.get(f"{HVS}/hosts", headers=headers), 200) == {"hosts": []}


def test_host_flavorgroup_links(client: FlaskClient, headers: dict[str, str]):
    host = _ok(client.post(f"{HVS}/hosts", json={"host_name": "n", "connection_string": "intel:https://n:1443"}, headers=headers), 201)  # fmt: skip
    groups = _groups(client, headers)
    links = f"{HVS}/hosts/{host['id']}/flavorgroups"
    link = {"flavorgroup_id": groups["platform_software"]["id"]}
    assert _ok(client.post(links, json=link, headers=headers), 201) == {"host_id": host["id"], **link}
    _error(client.post(links, json=link, headers=headers), 409, "link-exists")
    _error(
        client.post(links, json={"flavorgroup_id": host["id"]}, headers=headers), 404, "flavorgroup-not-found"
    )
    listed = {row["flavorgroup_id"] for row in _ok(client.get(links, headers=headers), 200)}
    assert listed == {groups["automatic"]["id"], groups["platform_software"]["id"]}
    assert _ok(client.get(f"{HVS}/hosts/{host['id']}", headers=headers), 200)["flavorgroup_names"] == [
        "automatic", "platform_software",
    ]  # fmt: skip
    # A group with hosts cannot go; after the unlink it can.
    custom = _ok(client.post(f"{HVS}/flavorgroups", json={"name": "edge", "flavor_match_policies": []}, headers=headers), 201)  # fmt: skip
    _ok(client.post(links, json={"flavorgroup_id": custom["id"]}, headers=headers), 201)
    _error(client.delete(f"{HVS}/flavorgroups/{custom['id']}", headers=headers), 409, "flavorgroup-in-use")
    assert client.delete(f"{links}/{custom['id']}", headers=headers).status_code == 204
    _error(client.delete(f"{links}/{custom['id']}", headers=headers), 404, "link-not-found")
    assert client.delete(f"{HVS}/flavorgroups/{custom['id']}", headers=headers).status_code == 204
    _error(client.get(f"{HVS}/hosts/{custom['id']}/flavorgroups", headers=headers), 404, "host-not-found")


# --- flavor groups ----------------------------------------------------------------------------------------


def _policies(group: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        p["flavor_part"]: (p["match_policy"]["match_type"], p["match_policy"]["required"])
        for p in group["flavor_match_policy_collection"]["flavor_match_policies"]
    }


def test_default_flavor_groups_are_secls_and_cannot_be_deleted(client: FlaskClient, headers: dict[str, str]):
    groups = _groups(client, headers)
    assert set(groups) == DEFAULT_GROUPS and all(g["is_default"] for g in groups.values())
    assert _policies(groups["automatic"]) == {
        "PLATFORM": ("ANY_OF", "REQUIRED"), "OS": ("ANY_OF", "REQUIRED"),
        "HOST_UNIQUE": ("LATEST", "REQUIRED_IF_DEFINED"), "ASSET_TAG": ("LATEST", "REQUIRED_IF_DEFINED"),
        "SOFTWARE": ("ALL_OF", "REQUIRED_IF_DEFINED"),
    }  # fmt: skip
    assert _policies(groups["platform_software"]) == {"SOFTWARE": ("ANY_OF", "REQUIRED")}
    assert _policies(groups["workload_software"]) == {"SOFTWARE": ("ANY_OF", "REQUIRED")}
    assert _policies(groups["host_unique"]) == {}
    for group in groups.values():
        _error(
            client.delete(f"{HVS}/flavorgroups/{group['id']}", headers=headers), 409, "flavorgroup-default"
        )


def test_flavorgroup_crud_and_validation(client: FlaskClient, headers: dict[str, str]):
    policy = {"flavor_part": "PLATFORM", "match_policy": {"match_type": "ALL_OF", "required": "REQUIRED"}}
    body = {"name": "gold", "flavor_match_policy_collection": {"flavor_match_policies": [policy]}}
    group = _ok(client.post(f"{HVS}/flavorgroups", json=body, headers=headers), 201)
    assert _policies(group) == {"PLATFORM": ("ALL_OF", "REQUIRED")} and not group["is_default"]
    _error(client.post(f"{HVS}/flavorgroups", json=body, headers=headers), 409, "flavorgroup-exists")
    assert _ok(client.get(f"{HVS}/flavorgroups/{group['id']}", headers=headers), 200) == group
    found = _ok(client.get(f"{HVS}/flavorgroups", query_string={"nameContains": "ol"}, headers=headers), 200)
    assert [g["name"] for g in found["flavorgroups"]] == ["gold"]
    bad_bodies = [
        {"name": "x", "flavor_match_policies": [{**policy, "flavor_part": "BIOS"}]},
        {"name": "x", "flavor_match_policies": [{**policy, "match_policy": {"match_type": "SOME_OF", "required": "REQUIRED"}}]},
        {"name": "x", "flavor_match_policies": [{**policy, "match_policy": {"match_type": "ANY_OF", "required": "MAYBE"}}]},
        {"name": "x", "flavor_match_policies": [policy, policy]},
        {"name": "x", "flavor_match_policies": [policy], "flavor_match_policy_collection": {"flavor_match_policies": []}},
        {"name": "x"},
        {"name": "bad name", "flavor_match_policies": []},
    ]  # fmt: skip
    for bad in bad_bodies:
        _error(client.post(f"{HVS}/flavorgroups", json=bad, headers=headers), 400, "validation-failed")
    assert client.delete(f"{HVS}/flavorgroups/{group['id']}", headers=headers).status_code == 204
    _error(client.get(f"{HVS}/flavorgroups/{group['id']}", headers=headers), 404, "flavorgroup-not-found")


# --- flavors ----------------------------------------------------------------------------------------------


def _signing_cert(state: CentralState) -> x509.Certificate:
    return x509.load_pem_x509_certificate(KeyFiles(state.config.keys_dir).flavor_signing_cert.read_bytes())


def _upload_secl(
    client: FlaskClient, headers: dict[str, str], case: str, **extra: Any
) -> list[dict[str, Any]]:
    body = {"signed_flavors": _secl_flavors(case), **extra}
    return _ok(client.post(f"{HVS}/flavors", json=body, headers=headers), 201)["signed_flavors"]


@pytest.mark.parametrize("case", ["vmware12", "UnknownVendor"])
def test_secl_signed_flavors_keep_their_signature_and_get_ours(
    client: FlaskClient, headers: dict[str, str], central_state: CentralState, case: str
):
    originals = _secl_flavors(case)
    stored = _upload_secl(client, headers, case)
    assert len(stored) == len(originals)
    cert = _signing_cert(central_state)
    for original, out in zip(originals, stored, strict=True):
        assert out["flavor"] == original["flavor"]  # the document as it came, SecL's id kept
        assert list(out["flavor"]) == list(original["flavor"])  # member order too
        assert out["secl_signature"] == {
            "signature": original["signature"], "status": "unchecked",
            "detail": "no secl_signing_certificate was given",
        }  # fmt: skip
        assert out["signature_scheme"] == SIGNATURE_SCHEME and out["signature"] != original["signature"]
        fetched = _ok(client.get(f"{HVS}/flavors/{original['flavor']['meta']['id']}", headers=headers), 200)
        assert fetched == out
    # The export is SecL's signed-flavor collection and every signature in it is ours and verifies.
    exported = client.get(f"{HVS}/flavors", headers=headers)
    for signed in parse_signed_flavors(exported.get_data()):
        verify_flavor_signature(signed, cert)
    groups = _groups(client, headers)
    members = lambda name: {  # noqa: E731
        f["flavor"]["meta"]["description"]["flavor_part"]
        for f in _ok(client.get(f"{HVS}/flavors", query_string={"flavorgroupId": groups[name]["id"]}, headers=headers), 200)["signed_flavors"]
    }  # fmt: skip
    assert members("host_unique") == {"HOST_UNIQUE", "ASSET_TAG"}
    assert members("automatic") == {"PLATFORM", "OS"}
    if case == "UnknownVendor":
        assert members("platform_software") == members("workload_software") == {"SOFTWARE"}


def test_secl_signatures_are_checked_when_the_signer_certificate_is_given(
    client: FlaskClient, headers: dict[str, str]
):
    pem = corpus_bytes(f"{VERIFIER}/vmware12/flavor-signer.crt.pem").decode()
    stored = _upload_secl(client, headers, "vmware12", secl_signing_certificate=pem)
    # The corpus's signer certificate did not make these signatures (see tests/test_flavor.py): said, not hidden.
    assert {f["secl_signature"]["status"] for f in stored} == {"unverifiable"}
    assert all("not made with this key" in f["secl_signature"]["detail"] for f in stored)
    body = {"signed_flavors": _secl_flavors("UnknownVendor")[:1], "secl_signing_certificate": "not a pem"}
    _error(client.post(f"{HVS}/flavors", json=body, headers=headers), 400, "validation-failed")


def test_flavor_search_filters(client: FlaskClient, headers: dict[str, str]):
    _upload_secl(client, headers, "UnknownVendor")
    search = lambda **q: [  # noqa: E731
        f["flavor"]["meta"]["id"] for f in _ok(client.get(f"{HVS}/flavors", query_string=q, headers=headers), 200)["signed_flavors"]
    ]  # fmt: skip
    assert len(search()) == 6
    assert len(search(flavorPart="SOFTWARE")) == 2
    assert search(key="flavor_part", value="OS") == ["49705d53-a75e-414e-998e-049cbb2a0ee6"]
    assert search(key="label", value="ISecL_Default_Workload_Flavor_v3.3") == [
        "bffa1025-3605-4336-9be1-a7044cb949d6"
    ]
    assert search(id="9a314548-5b36-479f-8158-463593e87193") == ["9a314548-5b36-479f-8158-463593e87193"]
    assert search(key="no_such_key", value="x") == []
    _error(
        client.get(f"{HVS}/flavors", query_string={"key": "label"}, headers=headers), 400, "validation-failed"
    )
    _error(
        client.get(f"{HVS}/flavors", query_string={"flavorPart": "BIOS"}, headers=headers),
        400,
        "validation-failed",
    )


def test_unsigned_upload_validation(
    client: FlaskClient, headers: dict[str, str], central_state: CentralState
):
    post = lambda *flavors, **extra: client.post(  # noqa: E731
        f"{HVS}/flavors", json={"flavor_collection": {"flavors": list(flavors)}, **extra}, headers=headers
    )
    created = _ok(post(_unsigned()), 201)["signed_flavors"][0]
    new_id = created["flavor"]["meta"]["id"]
    assert created["secl_signature"] is None and len(new_id) == 36
    verify_flavor_signature(parse_signed_flavors([created])[0], _signing_cert(central_state))
    _error(post(_unsigned()), 409, "flavor-label-exists")  # label unique per flavor part
    _ok(post(_unsigned(part="OS")), 201)  # the same label in another part is fine
    _error(post(_unsigned(label="x", id=new_id)), 409, "flavor-exists")
    _error(post(_unsigned(label="a"), _unsigned(label="a")), 409, "flavor-exists")
    kept = "0b9c5fd8-6f1a-4bb8-a7a7-19b5c3b2f3a1"
    assert (
        _ok(post(_unsigned(label="kept", id=kept)), 201)["signed_flavors"][0]["flavor"]["meta"]["id"] == kept
    )
    assert _ok(post(_unsigned(label="in-gold"), flavorgroup_names=["automatic"]), 201)
    for bad in (_unsigned(part="BIOS"), _unsigned(label=""), _unsigned(label="y", id="not-a-uuid"),
                _unsigned(label="z", id=kept.upper()), {"pcrs": []}, {"meta": "x"}):  # fmt: skip
        response = post(bad)
        assert response.status_code == 400, (bad, response.get_json())
    _error(post(_unsigned(label="w"), flavorgroup_names=["nope"]), 400, "flavorgroup-unknown")
    both = {
        "flavor_collection": {"flavors": [_unsigned(label="v")]},
        "signed_flavors": _secl_flavors("vmware12"),
    }
    _error(client.post(f"{HVS}/flavors", json=both, headers=headers), 400, "validation-failed")
    # Nothing half-stored by the refused uploads.
    assert len(_ok(client.get(f"{HVS}/flavors", headers=headers), 200)["signed_flavors"]) == 4


def test_tampered_flavor_is_refused_everywhere(
    client: FlaskClient, headers: dict[str, str], central_app: Flask, caplog: pytest.LogCaptureFixture
):
    stored = _upload_secl(client, headers, "vmware12")
    victim = stored[0]["flavor"]["meta"]["id"]
    with central_app.extensions["secl.db"].sessions() as session:
        row = session.get(StoredFlavor, victim)
        assert row is not None
        doc = json.loads(row.document)
        doc["pcrs"][0]["measurement"] = "ff" * (len(doc["pcrs"][0]["measurement"]) // 2)
        session.execute(
            update(StoredFlavor).where(StoredFlavor.id == victim).values(document=json.dumps(doc))
        )
        session.commit()
    with caplog.at_level(logging.ERROR, logger="secl.central.hvs"):
        body = _error(client.get(f"{HVS}/flavors/{victim}", headers=headers), 409, "flavor-signature-invalid")
    assert victim in body["message"] and body["details"] == {"flavor_id": victim}
    assert any(
        "FLAVOR SIGNATURE INVALID" in r.getMessage() and victim in r.getMessage() for r in caplog.records
    )
    _error(client.get(f"{HVS}/flavors", headers=headers), 409, "flavor-signature-invalid")
    services = services_of(central_app)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        with pytest.raises(FlavorSignatureInvalid):
            load_verified_flavors(session, services)
        intact = [f["flavor"]["meta"]["id"] for f in stored[1:]]
        assert [s.flavor.id for s in load_verified_flavors(session, services, flavor_ids=intact)] == intact
        # Unparseable JSON is refused the same way.
        session.execute(update(StoredFlavor).where(StoredFlavor.id == intact[0]).values(document="{"))
        session.commit()
    _error(client.get(f"{HVS}/flavors/{intact[0]}", headers=headers), 409, "flavor-signature-invalid")
    # The untouched ones still come out, and deleting the tampered one is allowed.
    _ok(client.get(f"{HVS}/flavors/{intact[1]}", headers=headers), 200)
    assert client.delete(f"{HVS}/flavors/{victim}", headers=headers).status_code == 204


def test_flavor_group_links_and_deletion(client: FlaskClient, headers: dict[str, str]):
    flavor = _ok(client.post(f"{HVS}/flavors", json={"flavor_collection": {"flavors": [_unsigned()]}}, headers=headers), 201)  # fmt: skip
    flavor_id = flavor["signed_flavors"][0]["flavor"]["meta"]["id"]
    group = _ok(client.post(f"{HVS}/flavorgroups", json={"name": "g", "flavor_match_policies": []}, headers=headers), 201)  # fmt: skip
    links = f"{HVS}/flavorgroups/{group['id']}/flavors"
    assert _ok(client.post(links, json={"flavor_id": flavor_id}, headers=headers), 201) == {
        "flavorgroup_id": group["id"], "flavor_id": flavor_id,
    }  # fmt: skip
    _error(client.post(links, json={"flavor_id": flavor_id}, headers=headers), 409, "link-exists")
    _error(client.post(links, json={"flavor_id": group["id"]}, headers=headers), 404, "flavor-not-found")
    assert _ok(client.get(links, headers=headers), 200) == [
        {"flavorgroup_id": group["id"], "flavor_id": flavor_id}
    ]
    assert client.delete(f"{links}/{flavor_id}", headers=headers).status_code == 204
    _error(client.delete(f"{links}/{flavor_id}", headers=headers), 404, "link-not-found")
    _ok(client.post(links, json={"flavor_id": flavor_id}, headers=headers), 201)
    assert client.delete(f"{HVS}/flavors/{flavor_id}", headers=headers).status_code == 204
    assert _ok(client.get(links, headers=headers), 200) == []
    _error(client.get(f"{HVS}/flavors/{flavor_id}", headers=headers), 404, "flavor-not-found")
    _error(client.delete(f"{HVS}/flavors/{flavor_id}", headers=headers), 404, "flavor-not-found")


# --- flavor templates -------------------------------------------------------------------------------------

TEMPLATE = {
    "label": "my-uefi",
    "condition": ["//host_info/hardware_features/UEFI/enabled//*[text()='true']"],
    "flavor_parts": {
        "PLATFORM": {"meta": {"uefi_enabled": True}, "pcr_rules": [
            {"pcr": {"index": 0, "bank": ["SHA384", "SHA256"]}, "pcr_matches": True, "eventlog_equals": {}},
        ]},
        "OS": {"meta": {}, "pcr_rules": [
            {"pcr": {"index": 7, "bank": ["SHA256"]}, "eventlog_includes": ["shim", "vmlinuz"]},
        ]},
    },
}  # fmt: skip


def test_default_templates_are_installed_and_cannot_be_deleted(client: FlaskClient, headers: dict[str, str]):
    templates = _ok(client.get(f"{HVS}/flavor-templates", headers=headers), 200)
    assert {t["label"] for t in templates} == {
        "secl-uefi",
        "secl-uefi-secure-boot",
        "secl-txt-tboot",
        "secl-cbnt",
    }
    assert all(t["is_default"] and t["active"] for t in templates)
    tboot = next(t for t in templates if t["label"] == "secl-txt-tboot")
    assert set(tboot["flavor_parts"]) == {"PLATFORM", "OS", "HOST_UNIQUE"}
    for template in templates:
        _error(
            client.delete(f"{HVS}/flavor-templates/{template['id']}", headers=headers),
            409,
            "flavor-template-default",
        )
    # Deactivated, a default template leaves the default search but stays retrievable.
    off = _ok(
        client.patch(f"{HVS}/flavor-templates/{tboot['id']}", json={"active": False}, headers=headers), 200
    )
    assert not off["active"]

    def labels(**q: str) -> set[str]:
        return {
            t["label"]
            for t in _ok(client.get(f"{HVS}/flavor-templates", query_string=q, headers=headers), 200)
        }

    assert "secl-txt-tboot" not in labels()
    assert "secl-txt-tboot" in labels(includeInactive="true")
    assert labels(flavorPart="HOST_UNIQUE", includeInactive="true") == {"secl-txt-tboot"}
    assert _ok(client.get(f"{HVS}/flavor-templates/{tboot['id']}", headers=headers), 200)["active"] is False


def test_ensure_default_templates_is_idempotent_and_keeps_deactivation(
    central_app: Flask, headers: dict[str, str], client: FlaskClient
):
    sessions = central_app.extensions["secl.db"].sessions
    with sessions() as session:
        assert ensure_default_templates(session) == []
    cbnt = _ok(
        client.get(f"{HVS}/flavor-templates", query_string={"label": "secl-cbnt"}, headers=headers), 200
    )[0]
    _ok(client.patch(f"{HVS}/flavor-templates/{cbnt['id']}", json={"active": False}, headers=headers), 200)
    with sessions() as session:
        assert ensure_default_templates(session) == []
    assert _ok(client.get(f"{HVS}/flavor-templates/{cbnt['id']}", headers=headers), 200)["active"] is False


def test_setup_installs_the_default_templates(central_state: CentralState):
    app = create_app(central_state.config)
    try:
        with app.extensions["secl.db"].sessions() as session:
            assert ensure_default_templates(session) == [], (
                "secl-central setup must call ensure_default_templates"
            )
    finally:
        app.extensions["secl.db"].dispose()


def test_flavor_template_crud_and_validation(client: FlaskClient, headers: dict[str, str]):
    created = _ok(client.post(f"{HVS}/flavor-templates", json=TEMPLATE, headers=headers), 201)
    assert created["label"] == "my-uefi" and not created["is_default"] and created["active"]
    rule = created["flavor_parts"]["OS"]["pcr_rules"][0]
    assert rule == TEMPLATE["flavor_parts"]["OS"]["pcr_rules"][0]  # no nulls added: SecL's shape
    _error(
        client.post(f"{HVS}/flavor-templates", json=TEMPLATE, headers=headers), 409, "flavor-template-exists"
    )
    _error(client.post(f"{HVS}/flavor-templates", json={**TEMPLATE, "label": "other", "id": created["id"]}, headers=headers), 409, "flavor-template-exists")  # fmt: skip
    assert _ok(client.get(f"{HVS}/flavor-templates/{created['id']}", headers=headers), 200) == created

    def with_rule(**rule: Any) -> dict[str, Any]:
        return {**TEMPLATE, "label": "bad", "flavor_parts": {"PLATFORM": {"meta": {}, "pcr_rules": [rule]}}}

    pcr = {"index": 0, "bank": ["SHA256"]}
    bad_templates = [
        with_rule(pcr=pcr, eventlog_equals={}, eventlog_includes=["shim"]),
        with_rule(pcr={"index": 24, "bank": ["SHA256"]}),
        with_rule(pcr={"index": "0", "bank": ["SHA256"]}),
        with_rule(pcr={"index": 0, "bank": ["MD5"]}),
        with_rule(pcr={"index": 0, "bank": []}),
        with_rule(pcr=pcr, eventlog_includes=[]),
        with_rule(pcr=pcr, unknown=True),
        {**TEMPLATE, "label": "bad", "flavor_parts": {"SOFTWARE": TEMPLATE["flavor_parts"]["OS"]}},
        {**TEMPLATE, "label": "bad", "flavor_parts": {"PLATFORM": {"meta": {}, "pcr_rules": []}}},
        {**TEMPLATE, "label": "bad", "condition": []},
        {**TEMPLATE, "label": ""},
    ]
    for bad in bad_templates:
        _error(client.post(f"{HVS}/flavor-templates", json=bad, headers=headers), 400, "validation-failed")
    assert client.delete(f"{HVS}/flavor-templates/{created['id']}", headers=headers).status_code == 204
    _error(
        client.get(f"{HVS}/flavor-templates/{created['id']}", headers=headers),
        404,
        "flavor-template-not-found",
    )


def test_flavor_signer_is_the_setup_key(central_app: Flask, central_state: CentralState):
    signer = services_of(central_app).keys.flavor_signer
    assert signer.certificate == _signing_cert(central_state)
    assert services_of(central_app).keys.flavor_signer is signer
    assert signer.chain[-1].subject == signer.chain[-1].issuer  # ends at the root CA
