"""What a host is judged against (``hostpolicy.load_host_policy``), on SQLite and PostgreSQL: its groups by
name (an empty one too), each group's flavors oldest first, the host's own HOST_UNIQUE/ASSET_TAG flavors
only in groups whose policies ask for them and never another host's, and the revoked tag certificates read
only when an ASSET_TAG flavor is there to check them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from secl.central.context import services_of
from secl.central.reports.hostpolicy import load_host_policies, load_host_policy
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_tag_models import TagCertificateRecord

HVS = "/hvs/v2"
HOST_A, HOST_B = "8a9a7f1e-6f0b-4f4e-9a43-0c2e1c0f0a01", "8a9a7f1e-6f0b-4f4e-9a43-0c2e1c0f0b02"


def _flavor(part: str, label: str, hardware_uuid: str | None = None) -> dict[str, Any]:
    description: dict[str, Any] = {"flavor_part": part, "label": label, "tpm_version": "2.0"}
    if hardware_uuid:
        description["hardware_uuid"] = hardware_uuid
    return {
        "meta": {"description": description},
        "pcrs": [{"pcr": {"index": 0, "bank": "SHA256"}, "measurement": "00" * 32, "pcr_matches": True}],
    }


def _upload(
    client: FlaskClient, headers: dict[str, str], *flavors: dict[str, Any], groups: list[str]
) -> list[str]:
    body = {"flavor_collection": {"flavors": list(flavors)}, "flavorgroup_names": groups}
    response = client.post(f"{HVS}/flavors", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return [f["flavor"]["meta"]["id"] for f in response.get_json()["signed_flavors"]]


def _group(client: FlaskClient, headers: dict[str, str], name: str, policies: list[dict[str, Any]]) -> str:
    response = client.post(f"{HVS}/flavorgroups", json={"name": name, "flavor_match_policies": policies},
                           headers=headers)  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _policy(part: str, match_type: str = "ANY_OF", required: str = "REQUIRED") -> dict[str, Any]:
    return {"flavor_part": part, "match_policy": {"match_type": match_type, "required": required}}


def test_a_hosts_groups_flavors_and_own_flavors(
    client: FlaskClient, admin_headers: dict[str, str], central_app: Flask
) -> None:
    headers = admin_headers
    (old_platform,) = _upload(client, headers, _flavor("PLATFORM", "platform-1"), groups=["automatic"])
    (new_platform,) = _upload(client, headers, _flavor("PLATFORM", "platform-2"), groups=["automatic"])
    (own,) = _upload(client, headers, _flavor("HOST_UNIQUE", "unique-a", HOST_A), groups=["automatic"])
    (others,) = _upload(client, headers, _flavor("HOST_UNIQUE", "unique-b", HOST_B), groups=["automatic"])
    empty = _group(client, headers, "aaa-empty", [_policy("OS")])
    only_os = _group(client, headers, "zzz-os", [_policy("OS")])
    (os_flavor,) = _upload(client, headers, _flavor("OS", "os-1"), groups=["zzz-os"])
    host = client.post(f"{HVS}/hosts", json={"host_name": "a", "connection_string": "intel:https://a:1443",
                                             "flavorgroup_names": ["automatic", "aaa-empty", "zzz-os"]},
                       headers=headers)  # fmt: skip
    assert host.status_code == 201, host.get_json()
    host_id = host.get_json()["id"]

    services = services_of(central_app)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        row = session.get(Host, host_id)
        assert row is not None
        # Before the verifier has read the host's SMBIOS UUID, it has no own flavors.
        policy = load_host_policy(session, services, row)
        by_name = {g.name: [f.id for f in g.flavors] for g in policy.groups}
        assert [g.name for g in policy.groups] == ["aaa-empty", "automatic", "zzz-os"]
        assert by_name == {"aaa-empty": [], "automatic": [old_platform, new_platform], "zzz-os": [os_flavor]}

        row.hardware_uuid = HOST_A.upper()  # as an agent may report it; flavors keep it in lower case
        session.commit()
        policy = load_host_policy(session, services, row)
        groups = {g.name: g for g in policy.groups}
        # The automatic group asks for HOST_UNIQUE: the host's own flavor follows the group's, not host B's.
        assert [f.id for f in groups["automatic"].flavors] == [old_platform, new_platform, own]
        assert others not in {f.id for g in policy.groups for f in g.flavors}
        assert [f.id for f in groups["zzz-os"].flavors] == [os_flavor]  # OS only: no own flavors
        assert groups["aaa-empty"].id == empty and groups["zzz-os"].id == only_os
        assert groups["automatic"].match_types()["HOST_UNIQUE"] == "LATEST"
        assert groups["automatic"].required_parts() == ["PLATFORM", "OS"]
        record = next(f for f in groups["automatic"].flavors if f.id == own)
        assert record.flavor_part == "HOST_UNIQUE" and record.label == "unique-a" and record.signature
        assert policy.revoked_tag_certificates == frozenset()


def test_revoked_tag_certificates_come_with_an_asset_tag_flavor(
    client: FlaskClient, admin_headers: dict[str, str], central_app: Flask
) -> None:
    headers = admin_headers
    host = client.post(f"{HVS}/hosts", json={"host_name": "t", "connection_string": "intel:https://t:1443"},
                       headers=headers)  # fmt: skip
    assert host.status_code == 201, host.get_json()
    revoked = "ab" * 48
    services = services_of(central_app)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        row = session.get(Host, host.get_json()["id"])
        assert row is not None
        row.hardware_uuid = HOST_A
        session.add(_revoked_certificate(revoked))
        session.commit()
        # No ASSET_TAG flavor to check: the revocations are not read.
        assert load_host_policy(session, services, row).revoked_tag_certificates == frozenset()
    _upload(client, headers, _flavor("ASSET_TAG", "tag-a", HOST_A), groups=["automatic"])
    services = services_of(central_app)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        row = session.get(Host, host.get_json()["id"])
        assert row is not None
        policy = load_host_policy(session, services, row)
        assert policy.revoked_tag_certificates == frozenset({bytes.fromhex(revoked)})
        automatic = next(g for g in policy.groups if g.name == "automatic")
        assert [f.flavor_part for f in automatic.flavors] == ["ASSET_TAG"]


def _revoked_certificate(sha384: str) -> TagCertificateRecord:
    now = datetime.now(UTC)
    return TagCertificateRecord(
        hardware_uuid=HOST_A, subject=f"CN={HOST_A}", issuer="CN=test", serial_number="01", tags=[],
        not_before=now, not_after=now + timedelta(days=1), sha384=sha384, der=b"\x30\x00", revoked=True,
        revoked_at=now, revoked_by="test", created_by="test",
    )  # fmt: skip


def test_a_batch_of_hosts_reads_each_hosts_own_policy_in_one_statement(
    client: FlaskClient, admin_headers: dict[str, str], central_app: Flask
) -> None:
    """load_host_policies (the worker's batch) gives every host what load_host_policy gives it alone: its
    own groups and its own HOST_UNIQUE flavor, not its batch neighbours'."""
    headers = admin_headers
    (platform,) = _upload(client, headers, _flavor("PLATFORM", "platform-1"), groups=["automatic"])
    (own_a,) = _upload(client, headers, _flavor("HOST_UNIQUE", "unique-a", HOST_A), groups=["automatic"])
    (own_b,) = _upload(client, headers, _flavor("HOST_UNIQUE", "unique-b", HOST_B), groups=["automatic"])
    _group(client, headers, "zzz-os", [_policy("OS")])
    (os_flavor,) = _upload(client, headers, _flavor("OS", "os-1"), groups=["zzz-os"])
    ids = {}
    for name, groups in (("a", ["automatic"]), ("b", ["automatic", "zzz-os"]), ("c", ["zzz-os"])):
        made = client.post(f"{HVS}/hosts", json={"host_name": name, "connection_string": f"intel:https://{name}:1443",
                                                 "flavorgroup_names": groups}, headers=headers)  # fmt: skip
        assert made.status_code == 201, made.get_json()
        ids[name] = made.get_json()["id"]
    services = services_of(central_app)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        hosts = {name: session.get(Host, host_id) for name, host_id in ids.items()}
        hosts["a"].hardware_uuid, hosts["b"].hardware_uuid = HOST_A, HOST_B.upper()  # type: ignore[union-attr]
        session.commit()
        batch = load_host_policies(session, services, list(hosts.values()))  # type: ignore[arg-type]
        alone = {name: load_host_policy(session, services, host) for name, host in hosts.items()}  # type: ignore[arg-type]
    assert set(batch) == set(ids.values())
    for name, host_id in ids.items():
        assert batch[host_id] == alone[name], name
    flavor_ids = {name: {g.name: [f.id for f in g.flavors] for g in batch[ids[name]].groups} for name in ids}
    assert flavor_ids == {
        "a": {"automatic": [platform, own_a]},
        "b": {"automatic": [platform, own_b], "zzz-os": [os_flavor]},
        "c": {"zzz-os": [os_flavor]},
    }
