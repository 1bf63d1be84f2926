"""The KMIP key store behind /kbs/v1, against PyKMIP's real server: a central with ``key_store = "kmip"``
creates, registers, releases (wrapped to the owner's envelope key) and deletes keys whose material lives
on the server; with the server down every operation is a 503 ``keystore-unavailable`` and nothing is
half-written (no key row, no row lost, a refusal audited)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from flask.testing import FlaskClient

from secl.central import create_app
from tests.central_fixtures import CentralState, login
from tests.kmip_server import KmipEndpoint, KmipServer, endpoint

pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")


def _kmip_app(central_state: CentralState, where: KmipEndpoint) -> Flask:
    settings: dict[str, Any] = where.settings(timeout_seconds=3)
    return create_app(replace(central_state.config, **settings))


def _headers(client: FlaskClient, central_state: CentralState) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {login(client, central_state.admin_username, central_state.admin_password)}"
    }


def _server_holds(where: KmipEndpoint, uid: str) -> bool:
    """Ask the server with PyKMIP's own client (the oracle) whether it still returns the object."""
    from kmip.pie.client import ProxyKmipClient
    from kmip.pie.exceptions import KmipOperationFailure

    client = ProxyKmipClient(
        hostname=where.host, port=where.port, cert=str(where.client_certificate), key=str(where.client_key),
        ca=str(where.ca_certificate), config_file="/dev/null",
    )  # fmt: skip
    with client:
        try:
            client.get(uid)
        except KmipOperationFailure:
            return False
    return True


def _owner_unwrap(client: FlaskClient, headers: dict[str, str], key_id: str) -> Any:
    owner = rsa.generate_private_key(65537, 2048)
    pem = owner.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    response = client.post(
        f"/kbs/v1/keys/{key_id}", data=pem, headers={**headers, "Content-Type": "application/x-pem-file"}
    )
    if response.status_code != 200:
        return response
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), b"TPM2\x00")
    return owner.decrypt(base64.b64decode(response.get_json()["payload"]), oaep)


def _audit(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    return client.get("/aas/v1/audit-events", headers=headers, query_string={"limit": 1000}).get_json()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_live_on_the_kmip_server_through_the_api(
    central_state: CentralState, kmip_endpoint: KmipEndpoint
) -> None:
    app = _kmip_app(central_state, kmip_endpoint)
    try:
        client = app.test_client()
        headers = _headers(client, central_state)
        # Created on the server: the answer names the server's object.
        created = client.post(
            "/kbs/v1/keys", headers=headers, json={"key_information": {"algorithm": "AES", "key_length": 256}}
        )
        assert created.status_code == 201, created.get_json()
        info = created.get_json()["key_information"]
        assert info["kmip_key_id"] and _server_holds(kmip_endpoint, info["kmip_key_id"])
        assert len(_owner_unwrap(client, headers, info["id"])) == 32
        # Registered: the owner's envelope opens to exactly the material given.
        material = os.urandom(32)
        registered = client.post("/kbs/v1/keys", headers=headers, json={
            "key_information": {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(material).decode()},
        })  # fmt: skip
        assert registered.status_code == 201, registered.get_json()
        reg_info = registered.get_json()["key_information"]
        assert _owner_unwrap(client, headers, reg_info["id"]) == material
        assert (
            client.get(f"/kbs/v1/keys/{reg_info['id']}", headers=headers).get_json()["key_information"][
                "kmip_key_id"
            ]
            == reg_info["kmip_key_id"]
        )
        # Deleted: gone from the server and from the broker.
        assert client.delete(f"/kbs/v1/keys/{reg_info['id']}", headers=headers).status_code == 204
        assert not _server_holds(kmip_endpoint, reg_info["kmip_key_id"])
        assert client.get(f"/kbs/v1/keys/{reg_info['id']}", headers=headers).status_code == 404
        events = _audit(client, headers)
        assert {"key.created", "key.registered", "key.deleted", "key.transferred-to-owner"} <= {
            e["action"] for e in events
        }
        assert not any(form in str(events) for form in (material.hex(), base64.b64encode(material).decode()))
        assert client.delete(f"/kbs/v1/keys/{info['id']}", headers=headers).status_code == 204
    finally:
        app.extensions["secl.db"].dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_kmip_server_that_is_down_is_a_503_and_nothing_is_half_written(
    central_state: CentralState, start_kmip_server: Callable[..., KmipServer]
) -> None:
    server = start_kmip_server()
    where = endpoint(server)
    app = _kmip_app(central_state, where)
    try:
        client = app.test_client()
        headers = _headers(client, central_state)
        material = os.urandom(32)
        kept = client.post("/kbs/v1/keys", headers=headers, json={
            "key_information": {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(material).decode()},
        })  # fmt: skip
        assert kept.status_code == 201, kept.get_json()
        kept_id = kept.get_json()["key_information"]["id"]
        server.stop()

        for body in (
            {"key_information": {"algorithm": "AES", "key_length": 256}},
            {"key_information": {"algorithm": "AES", "key_length": 128, "key_string": base64.b64encode(bytes(16)).decode()}},
        ):  # fmt: skip
            refused = client.post("/kbs/v1/keys", headers=headers, json=body)
            assert refused.status_code == 503, refused.get_json()
            assert refused.get_json()["code"] == "keystore-unavailable", refused.get_json()
        # No key row for what the server never stored; the existing key is neither released nor lost.
        assert [
            k["key_information"]["id"] for k in client.get("/kbs/v1/keys", headers=headers).get_json()
        ] == [kept_id]
        released = _owner_unwrap(client, headers, kept_id)
        assert not isinstance(released, bytes)
        assert released.status_code == 503 and released.get_json()["code"] == "keystore-unavailable"
        deleted = client.delete(f"/kbs/v1/keys/{kept_id}", headers=headers)
        assert deleted.status_code == 503 and deleted.get_json()["code"] == "keystore-unavailable"
        assert client.get(f"/kbs/v1/keys/{kept_id}", headers=headers).status_code == 200
        refusals = [e for e in _audit(client, headers) if e["action"] == "key.transfer-refused"]
        assert [e["details"]["code"] for e in refusals] == ["keystore-unavailable"]
        assert refusals[0]["target"] == kept_id

        # The server back: the same key opens, and goes.
        server.start()
        assert _owner_unwrap(client, headers, kept_id) == material
        assert client.delete(f"/kbs/v1/keys/{kept_id}", headers=headers).status_code == 204
    finally:
        app.extensions["secl.db"].dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_kmip_key_on_a_central_no_longer_configured_for_kmip_is_a_503_not_a_500(
    central_state: CentralState, kmip_endpoint: KmipEndpoint
) -> None:
    """A central moved back from KMIP to the sealed store (its KMIP settings gone) still lists its KMIP keys;
    releasing or deleting one says the store is not configured, and a half-configured KMIP store refuses
    new keys the same way: 503 with a code, never a 500."""
    app = _kmip_app(central_state, kmip_endpoint)
    try:
        client = app.test_client()
        created = client.post("/kbs/v1/keys", headers=_headers(client, central_state),
                              json={"key_information": {"algorithm": "AES", "key_length": 256}})  # fmt: skip
        assert created.status_code == 201, created.get_json()
        key_id = created.get_json()["key_information"]["id"]
    finally:
        app.extensions["secl.db"].dispose()
    for config in (central_state.config, replace(central_state.config, key_store="kmip")):
        app = create_app(config)
        try:
            client = app.test_client()
            headers = _headers(client, central_state)
            assert client.get(f"/kbs/v1/keys/{key_id}", headers=headers).status_code == 200
            released = _owner_unwrap(client, headers, key_id)
            assert not isinstance(released, bytes)
            assert released.status_code == 503, released.get_json()
            assert released.get_json()["code"] == "keystore-not-configured", released.get_json()
            deleted = client.delete(f"/kbs/v1/keys/{key_id}", headers=headers)
            assert (deleted.status_code, deleted.get_json()["code"]) == (503, "keystore-not-configured")
            if config.key_store == "kmip":
                refused = client.post("/kbs/v1/keys", headers=headers,
                                      json={"key_information": {"algorithm": "AES", "key_length": 256}})  # fmt: skip
                assert (refused.status_code, refused.get_json()["code"]) == (503, "keystore-not-configured")
                assert len(client.get("/kbs/v1/keys", headers=headers).get_json()) == 1
        finally:
            app.extensions["secl.db"].dispose()
