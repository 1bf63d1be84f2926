"""/wls/v2 through the API (Flask client, SQLite): image flavors signed on upload and refused when changed,
images and their links, key requests (a host may ask only for itself; every refusal has a code and an
audit row), VM trust reports verified against the host's signing key. The end-to-end key release to a
TPM is in tests/test_wls_e2e.py."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from flask.testing import FlaskClient

from secl.central.context import services_of
from secl.central.store.kbs_models import HostKeyCertificate
from secl.central.store.wls_models import ImageFlavorRecord
from secl.core.canonicaljson import canonicalize
from secl.core.flavorsign import verify_payload
from secl.wpm.image_flavor import image_flavor
from tests.tpmkeys import issue_certificate, make_ca
from tests.wls_helpers import WLS, enroll_host, instance_report, sign_in_software

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

UUID_A = "0e6b4e1c-aaaa-4bbb-8ccc-0123456789ab"
UUID_B = "0e6b4e1c-bbbb-4bbb-8ccc-0123456789ab"
DIGEST = base64.b64encode(hashlib.sha256(b"image").digest()).decode()


def _flavor(label: str, key_id: str | None = None) -> dict:
    key_url = f"https://localhost/kbs/v1/keys/{key_id or uuid.uuid4()}/transfer"
    return image_flavor(label=label, key_url=key_url, digest=DIGEST)


def _audit(client: FlaskClient, admin: dict[str, str], action: str) -> list[dict]:
    events = client.get("/aas/v1/audit-events", query_string={"limit": 1000}, headers=admin).get_json()
    return [e for e in events if e["action"] == action]


def test_image_flavors_are_signed_and_images_link_them(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    flavor = _flavor("vm-one")
    created = client.post(f"{WLS}/flavors", json=flavor, headers=admin_headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["flavor"] == flavor["flavor"]
    signer = services_of(central_app).keys.flavor_signer
    verify_payload(canonicalize(body["flavor"]), base64.b64decode(body["signature"]), signer.certificate)
    flavor_id = flavor["flavor"]["meta"]["id"]

    again = client.post(f"{WLS}/flavors", json=flavor, headers=admin_headers)
    assert again.status_code == 409 and again.get_json()["code"] == "already-exists"
    for bad in (
        {"flavor": {**flavor["flavor"], "meta": {"id": "x", "description": {"flavor_part": "IMAGE", "label": "l"}}}},
        {"flavor": {**flavor["flavor"], "meta": {**flavor["flavor"]["meta"], "description": {"flavor_part": "OS", "label": "l"}}}},
        {"flavor": {**flavor["flavor"], "encryption": {"key_url": "ftp://x/y", "digest": DIGEST}}},
        {"flavor": {**flavor["flavor"], "surprise": 1}},
        {"nothing": 1},
        [],
    ):  # fmt: skip
        refused = client.post(f"{WLS}/flavors", json=bad, headers=admin_headers)
        assert refused.status_code == 400 and refused.get_json()["code"], (bad, refused.get_json())

    assert client.get(f"{WLS}/flavors/{flavor_id}", headers=admin_headers).get_json() == body
    assert [f["flavor"]["meta"]["id"] for f in client.get(f"{WLS}/flavors", query_string={"label": "vm-one"}, headers=admin_headers).get_json()] == [flavor_id]  # fmt: skip
    assert client.get(f"{WLS}/flavors/{uuid.uuid4()}", headers=admin_headers).status_code == 404

    image_id = str(uuid.uuid4())
    unknown = client.post(
        f"{WLS}/images", json={"id": image_id, "flavor_ids": [str(uuid.uuid4())]}, headers=admin_headers
    )
    assert unknown.status_code == 400 and unknown.get_json()["code"] == "flavor-not-found"
    image = client.post(
        f"{WLS}/images", json={"id": image_id, "flavor_ids": [flavor_id]}, headers=admin_headers
    )
    assert image.status_code == 201 and image.get_json() == {"id": image_id, "flavor_ids": [flavor_id]}
    duplicate = client.post(f"{WLS}/images", json={"id": image_id, "flavor_ids": []}, headers=admin_headers)
    assert duplicate.status_code == 409
    assert client.post(f"{WLS}/images", json={"id": "not-a-uuid"}, headers=admin_headers).status_code == 400
    assert client.get(f"{WLS}/images/{image_id}", headers=admin_headers).get_json()["flavor_ids"] == [
        flavor_id
    ]
    listed = client.get(
        f"{WLS}/images", query_string={"flavor_id": flavor_id}, headers=admin_headers
    ).get_json()
    assert [i["id"] for i in listed] == [image_id]
    in_use = client.delete(f"{WLS}/flavors/{flavor_id}", headers=admin_headers)
    assert in_use.status_code == 409 and in_use.get_json()["code"] == "flavor-in-use"

    # A flavor changed in the database behind the central's back is refused, not served.
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        row = session.get(ImageFlavorRecord, flavor_id)
        assert row is not None
        row.document = row.document.replace("vm-one", "vm-two")
        session.commit()
    tampered = client.get(f"{WLS}/flavors/{flavor_id}", headers=admin_headers)
    assert tampered.status_code == 409 and tampered.get_json()["code"] == "flavor-signature-invalid"
    flavor_key = client.get(
        f"{WLS}/images/{image_id}/flavor-key", query_string={"hardware_uuid": UUID_A}, headers=admin_headers
    )
    assert flavor_key.status_code == 409 and flavor_key.get_json()["code"] == "flavor-signature-invalid"

    assert client.delete(f"{WLS}/images/{image_id}", headers=admin_headers).status_code == 204
    assert client.get(f"{WLS}/images/{image_id}", headers=admin_headers).status_code == 404
    assert client.delete(f"{WLS}/flavors/{flavor_id}", headers=admin_headers).status_code == 204
    assert client.delete(f"{WLS}/flavors/{flavor_id}", headers=admin_headers).status_code == 404


def test_a_host_asks_only_for_its_own_keys(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    # Stored in upper case, as an agent may report it: the host still finds itself.
    host_a = enroll_host(client, central_app, admin_headers, "host-a", UUID_A.upper())
    enroll_host(client, central_app, admin_headers, "host-b", UUID_B)
    key_url = f"https://localhost/kbs/v1/keys/{uuid.uuid4()}/transfer"

    assert client.post(f"{WLS}/keys", json={"hardware_uuid": UUID_A, "key_url": key_url}).status_code == 401
    for other in (UUID_B, "0e6b4e1c-cccc-4bbb-8ccc-0123456789ab"):
        refused = client.post(
            f"{WLS}/keys", json={"hardware_uuid": other, "key_url": key_url}, headers=host_a.headers()
        )
        assert refused.status_code == 403 and refused.get_json()["code"] == "host-mismatch", (
            refused.get_json()
        )
    assert {e["details"]["code"] for e in _audit(client, admin_headers, "wls.key-refused")} == {
        "host-mismatch"
    }
    # The host's assertion opens nothing but its own routes.
    assert client.get(f"{WLS}/images", headers=host_a.headers()).status_code == 403

    for bad in ({"hardware_uuid": "nope", "key_url": key_url}, {"hardware_uuid": UUID_A}, {"x": 1}, []):
        answer = client.post(f"{WLS}/keys", json=bad, headers=admin_headers)
        assert answer.status_code == 400 and answer.get_json()["code"], (bad, answer.get_json())
    for url, code in (
        ("https://localhost/elsewhere", "key-url-invalid"),
        ("http://broker.example/kbs/v1/keys/" + str(uuid.uuid4()), "key-url-invalid"),
        # Another broker, and no CA bundle configured to verify it: refused before anything is attested.
        ("https://broker.example/kbs/v1/keys/" + str(uuid.uuid4()), "key-broker-ca-not-configured"),
        # This central's key that does not exist.
        (key_url, "key-not-found"),
    ):
        answer = client.post(
            f"{WLS}/keys", json={"hardware_uuid": UUID_A, "key_url": url}, headers=host_a.headers()
        )
        assert 400 <= answer.status_code < 600 and answer.status_code != 500, answer.get_json()
        assert answer.get_json()["code"] == code, answer.get_json()
    unknown = client.post(
        f"{WLS}/keys",
        json={"hardware_uuid": "0e6b4e1c-cccc-4bbb-8ccc-0123456789ab", "key_url": key_url},
        headers=admin_headers,
    )
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "host-not-found"

    # A real key of this central, for a host without a certified binding key: refused, named, before
    # the service attests the host for nothing.
    key = client.post(
        "/kbs/v1/keys",
        json={"key_information": {"algorithm": "AES", "key_length": 256}},
        headers=admin_headers,
    )
    assert key.status_code == 201, key.get_json()
    real_url = f"https://localhost/kbs/v1/keys/{key.get_json()['key_information']['id']}/transfer"
    unbound = client.post(
        f"{WLS}/keys", json={"hardware_uuid": UUID_A, "key_url": real_url}, headers=host_a.headers()
    )
    assert unbound.status_code == 403 and unbound.get_json()["code"] == "binding-key-not-certified"
    codes = {e["details"]["code"] for e in _audit(client, admin_headers, "wls.key-refused")}
    assert {"host-mismatch", "key-url-invalid", "key-not-found", "binding-key-not-certified"} <= codes


def _certify_signing_key(app: Flask, host_id: str) -> rsa.RSAPrivateKey:
    """Stand-in for certify-host-signing-key (the swtpm version is in the end-to-end test)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = issue_certificate(make_ca("test Privacy CA"), key.public_key(), "Signing_Key_Certificate")
    der = certificate.public_bytes(Encoding.DER)
    with app.app_context(), app.extensions["secl.db"].sessions() as session:
        session.add(
            HostKeyCertificate(
                host_id=host_id, usage="signing", der=der, sha384=hashlib.sha384(der).hexdigest(),
                key_name="00", aik_certificate_sha384="00", not_after=certificate.not_valid_after_utc,
                created_by="test",
            )
        )  # fmt: skip
        session.commit()
    return key


def test_vm_reports_are_accepted_only_signed_by_the_hosts_key(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    host_a = enroll_host(client, central_app, admin_headers, "host-a", UUID_A)
    host_b = enroll_host(client, central_app, admin_headers, "host-b", UUID_B)
    report = instance_report(UUID_A, "vm-1")
    uncertified = client.post(f"{WLS}/reports", json=sign_in_software(report, rsa.generate_private_key(65537, 2048)), headers=host_a.headers())  # fmt: skip
    assert uncertified.status_code == 403 and uncertified.get_json()["code"] == "signing-key-not-certified"

    key = _certify_signing_key(central_app, host_a.id)
    body = sign_in_software(report, key)
    filed = client.post(f"{WLS}/reports", json=body, headers=host_a.headers())
    assert filed.status_code == 201, filed.get_json()
    assert (
        filed.get_json()["instance_manifest"] == report["instance_manifest"] and filed.get_json()["trusted"]
    )

    tampered = dict(body, data=base64.b64encode(json.dumps(instance_report(UUID_A, "vm-1", trusted=False)).encode()).decode())  # fmt: skip
    refused = client.post(f"{WLS}/reports", json=tampered, headers=host_a.headers())
    assert refused.status_code == 400 and refused.get_json()["code"] == "report-data-mismatch"
    tampered_alone = {k: v for k, v in tampered.items() if k in ("data", "hash_alg", "signature")}
    refused = client.post(f"{WLS}/reports", json=tampered_alone, headers=host_a.headers())
    assert refused.status_code == 403 and refused.get_json()["code"] == "report-signature-invalid"
    stranger = sign_in_software(report, rsa.generate_private_key(65537, 2048))
    assert client.post(f"{WLS}/reports", json=stranger, headers=host_a.headers()).get_json()["code"] == "report-signature-invalid"  # fmt: skip
    other = client.post(f"{WLS}/reports", json=body, headers=host_b.headers())
    assert other.status_code == 403 and other.get_json()["code"] == "host-mismatch"
    for bad in (
        dict(body, data="%%%"),
        dict(body, signature="%%%"),
        dict(body, hash_alg="MD5"),
        dict(body, data=base64.b64encode(b"[1]").decode()),
        dict(body, data=base64.b64encode(b"[" * 150_000).decode()),  # nested past the parser's recursion
        {k: v for k, v in body.items() if k in ("data", "hash_alg", "signature")}
        | {
            "data": base64.b64encode(
                json.dumps(
                    instance_report(UUID_A, "vm-1")
                    | {
                        "instance_manifest": {
                            "instance_info": {
                                "instance_id": "v",
                                "host_hardware_uuid": UUID_A,
                                "image_id": "x" * 65,
                            }
                        }
                    }
                ).encode()
            ).decode()
        },
        {"data": body["data"]},
        dict(body, surprise=1),
    ):
        answer = client.post(f"{WLS}/reports", json=bad, headers=host_a.headers())
        assert answer.status_code == 400 and answer.get_json()["code"], (bad, answer.get_json())
    assert {e["details"]["code"] for e in _audit(client, admin_headers, "wls.report-refused")} >= {
        "report-signature-invalid", "host-mismatch", "signing-key-not-certified",
    }  # fmt: skip

    client.post(
        f"{WLS}/reports",
        json=sign_in_software(instance_report(UUID_A, "vm-2"), key),
        headers=host_a.headers(),
    )
    found = client.get(
        f"{WLS}/reports", query_string={"instance_id": "vm-1"}, headers=admin_headers
    ).get_json()
    assert [r["id"] for r in found] == [filed.get_json()["id"]]
    by_host = client.get(
        f"{WLS}/reports", query_string={"hardware_uuid": UUID_A.upper()}, headers=admin_headers
    )
    assert len(by_host.get_json()) == 2
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get(f"{WLS}/reports", query_string={"from": later}, headers=admin_headers).get_json() == []
    assert (
        len(client.get(f"{WLS}/reports", query_string={"to": later}, headers=admin_headers).get_json()) == 2
    )
    naive = client.get(f"{WLS}/reports", query_string={"from": "2026-01-01T00:00:00"}, headers=admin_headers)
    assert naive.status_code == 400 and naive.get_json()["code"]
    assert client.get(f"{WLS}/reports", headers=host_a.headers()).status_code == 403
