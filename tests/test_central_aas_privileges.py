"""Account management cannot escalate privileges (issue 17, High): a caller grants, creates and resets only
what it already holds, and only an administrator touches an administrator. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from secl.central.aas.privileges import Authority
from tests.central_fixtures import CentralState, login

PASSWORD = "a long enough password"


def _make_user(
    client: FlaskClient, admin: dict[str, str], name: str, permissions: list[str]
) -> dict[str, str]:
    """A user holding exactly ``permissions`` (through a role of its own); returns its auth headers."""
    role = client.post(
        "/aas/v1/roles", json={"name": f"{name}-role", "permissions": permissions}, headers=admin
    )
    assert role.status_code == 201, role.json
    user = client.post(
        "/aas/v1/users",
        json={"username": name, "password": PASSWORD, "roles": [f"{name}-role"]},
        headers=admin,
    )
    assert user.status_code == 201, user.json
    return {"Authorization": f"Bearer {login(client, name, PASSWORD)}"}


def _user_id(client: FlaskClient, admin: dict[str, str], name: str) -> str:
    found = client.get(f"/aas/v1/users?name={name}", headers=admin).json
    assert len(found) == 1, found
    return found[0]["id"]


def _refusals(client: FlaskClient, admin: dict[str, str], actor: str) -> list[dict]:
    events = client.get(f"/aas/v1/audit-events?action=privilege.refused&actor={actor}", headers=admin).json
    assert all(e["outcome"] == "failure" for e in events)
    return events


def test_users_create_alone_cannot_create_an_administrator(
    client: FlaskClient, admin_headers: dict[str, str]
):
    """Finding: a user holding only AAS:users:create created a user with the administrator role."""
    mallory = _make_user(client, admin_headers, "mallory", ["AAS:users:create"])
    refused = client.post(
        "/aas/v1/users",
        json={"username": "mallory2", "password": PASSWORD, "roles": ["administrator"]},
        headers=mallory,
    )
    assert refused.status_code == 403, refused.json
    assert refused.json["code"] == "privilege-not-held"
    assert "*:*:*" in refused.json["message"]
    assert client.get("/aas/v1/users?name=mallory2", headers=admin_headers).json == []
    # What it holds, it may hand out: a user with no role, or with a role inside its own permissions.
    plain = client.post("/aas/v1/users", json={"username": "plain", "password": PASSWORD}, headers=mallory)
    assert plain.status_code == 201, plain.json
    same = client.post(
        "/aas/v1/users",
        json={"username": "helper", "password": PASSWORD, "roles": ["mallory-role"]},
        headers=mallory,
    )
    assert same.status_code == 201, same.json
    refusal = _refusals(client, admin_headers, "mallory")
    assert [(e["target"], e["details"]["operation"]) for e in refusal] == [("mallory2", "user.create")]


def test_roles_create_and_users_update_cannot_mint_and_take_a_wildcard_role(
    client: FlaskClient, admin_headers: dict[str, str]
):
    """Finding: AAS:roles:create + AAS:users:update created a *:*:* role and gave it to the caller itself."""
    mallory = _make_user(client, admin_headers, "mallory", ["AAS:roles:create", "AAS:users:update"])
    for permissions in (
        ["*:*:*"],
        ["HVS:*:*"],
        ["AAS:*:create"],
        ["AAS:roles:*"],
        ["AAS:roles:create", "KBS:keys:transfer"],
    ):
        refused = client.post(
            "/aas/v1/roles", json={"name": "escalate", "permissions": permissions}, headers=mallory
        )
        assert refused.status_code == 403, (permissions, refused.json)
        assert refused.json["code"] == "privilege-not-held"
    assert client.get("/aas/v1/roles?name=escalate", headers=admin_headers).json == []
    # A role inside its own permissions is fine.
    ok = client.post(
        "/aas/v1/roles", json={"name": "subset", "permissions": ["AAS:roles:create"]}, headers=mallory
    )
    assert ok.status_code == 201, ok.json
    # Taking an existing role it does not hold, the administrator's above all, is refused too.
    me = _user_id(client, admin_headers, "mallory")
    for roles in (["administrator"], ["mallory-role", "administrator"]):
        taken = client.put(f"/aas/v1/users/{me}/roles", json={"roles": roles}, headers=mallory)
        assert taken.status_code == 403, taken.json
    after = client.get(f"/aas/v1/users/{me}", headers=admin_headers).json
    assert after["roles"] == ["mallory-role"]
    assert len(_refusals(client, admin_headers, "mallory")) == 7


def test_users_update_cannot_reset_the_administrators_password(
    client: FlaskClient, central_state: CentralState, admin_headers: dict[str, str]
):
    """Finding: a user with AAS:users:update reset the administrator's password and logged in as admin."""
    mallory = _make_user(client, admin_headers, "mallory", ["AAS:users:update", "AAS:users:delete"])
    admin_id = _user_id(client, admin_headers, central_state.admin_username)
    reset = client.put(
        f"/aas/v1/users/{admin_id}/password", json={"new_password": "taken over by mallory"}, headers=mallory
    )
    assert reset.status_code == 403, reset.json
    assert reset.json["code"] == "administrator-protected"
    demoted = client.put(f"/aas/v1/users/{admin_id}/roles", json={"roles": ["mallory-role"]}, headers=mallory)
    assert demoted.status_code == 403 and demoted.json["code"] == "administrator-protected"
    deleted = client.delete(f"/aas/v1/users/{admin_id}", headers=mallory)
    assert deleted.status_code == 403 and deleted.json["code"] == "administrator-protected"
    refused = client.post(
        "/aas/v1/token", json={"username": central_state.admin_username, "password": "taken over by mallory"}
    )
    assert refused.status_code == 401
    assert login(client, central_state.admin_username, central_state.admin_password)
    admin = client.get(f"/aas/v1/users/{admin_id}", headers=admin_headers).json
    assert admin["roles"] == ["administrator"]
    operations = {e["details"]["operation"] for e in _refusals(client, admin_headers, "mallory")}
    assert operations == {"user.password-reset", "user.roles-change", "user.delete"}


def test_a_user_with_permissions_the_caller_lacks_is_out_of_reach(
    client: FlaskClient, admin_headers: dict[str, str]
):
    """Not only administrators: a helpdesk user resets passwords of users whose permissions it holds, no one else's."""
    helpdesk = _make_user(client, admin_headers, "helpdesk", ["AAS:users:update", "HVS:hosts:search"])
    _make_user(client, admin_headers, "reader", ["HVS:hosts:search"])
    _make_user(client, admin_headers, "operator", ["HVS:hosts:search", "HVS:flavors:create"])
    reader = _user_id(client, admin_headers, "reader")
    operator = _user_id(client, admin_headers, "operator")
    ok = client.put(
        f"/aas/v1/users/{reader}/password", json={"new_password": "reset by the helpdesk"}, headers=helpdesk
    )
    assert ok.status_code == 204
    assert login(client, "reader", "reset by the helpdesk")
    refused = client.put(
        f"/aas/v1/users/{operator}/password", json={"new_password": "reset by the helpdesk"}, headers=helpdesk
    )
    assert refused.status_code == 403, refused.json
    assert refused.json["code"] == "privilege-not-held" and "HVS:flavors:create" in refused.json["message"]
    assert login(client, "operator", PASSWORD)


def test_a_token_does_not_keep_the_power_to_grant_what_the_account_lost(
    client: FlaskClient, admin_headers: dict[str, str]
):
    """A token issued before a role was taken away cannot grant that role's permissions afterwards."""
    granter = _make_user(client, admin_headers, "granter", ["AAS:roles:create", "HVS:hosts:create"])
    me = _user_id(client, admin_headers, "granter")
    client.post(
        "/aas/v1/roles",
        json={"name": "only-roles", "permissions": ["AAS:roles:create"]},
        headers=admin_headers,
    )
    demoted = client.put(f"/aas/v1/users/{me}/roles", json={"roles": ["only-roles"]}, headers=admin_headers)
    assert demoted.status_code == 200, demoted.json
    refused = client.post(
        "/aas/v1/roles", json={"name": "hosts", "permissions": ["HVS:hosts:create"]}, headers=granter
    )
    assert refused.status_code == 403 and refused.json["code"] == "privilege-not-held"


def test_the_administrator_still_manages_everything(client: FlaskClient, admin_headers: dict[str, str]):
    wild = client.post(
        "/aas/v1/roles", json={"name": "wild", "permissions": ["*:*:*"]}, headers=admin_headers
    )
    assert wild.status_code == 201
    second = client.post(
        "/aas/v1/users",
        json={"username": "admin2", "password": PASSWORD, "roles": ["administrator"]},
        headers=admin_headers,
    )
    assert second.status_code == 201
    admin2 = {"Authorization": f"Bearer {login(client, 'admin2', PASSWORD)}"}
    reset = client.put(
        f"/aas/v1/users/{second.json['id']}/password",
        json={"new_password": "changed by the other admin"},
        headers=admin2,
    )
    assert reset.status_code == 204
    assert client.delete(f"/aas/v1/roles/{wild.json['id']}", headers=admin2).status_code == 204


def test_deleting_a_role_needs_its_permissions(client: FlaskClient, admin_headers: dict[str, str]):
    remover = _make_user(client, admin_headers, "remover", ["AAS:roles:delete"])
    broad = client.post(
        "/aas/v1/roles", json={"name": "broad", "permissions": ["HVS:*:*"]}, headers=admin_headers
    )
    refused = client.delete(f"/aas/v1/roles/{broad.json['id']}", headers=remover)
    assert refused.status_code == 403 and refused.json["code"] == "privilege-not-held"
    assert client.get(f"/aas/v1/roles/{broad.json['id']}", headers=admin_headers).status_code == 200


@pytest.mark.parametrize(
    ("held", "granted", "expected"),
    [
        (["*:*:*"], "HVS:hosts:create", True),
        (["*:*:*"], "*:*:*", True),
        (["HVS:*:*"], "HVS:hosts:*", True),
        (["HVS:hosts:create"], "HVS:hosts:*", False),
        (["HVS:hosts:*"], "HVS:*:create", False),
        (["HVS:*:create"], "HVS:hosts:create", True),
        (["HVS:*:create"], "*:*:create", False),
        (["AAS:users:create"], "aas:users:create", False),
        ([], "HVS:hosts:search", False),
    ],
)
def test_a_granted_wildcard_needs_a_held_wildcard(held: list[str], granted: str, expected: bool):
    authority = Authority("caller", tuple(held), tuple(held))
    assert authority.holds(granted) is expected


def test_authority_is_bounded_by_both_token_and_account():
    authority = Authority("caller", ("*:*:*",), ("HVS:hosts:search",))
    assert authority.holds("HVS:hosts:search")
    assert not authority.holds("HVS:hosts:create")
    assert not authority.is_administrator
    assert authority.lacks(["HVS:hosts:search", "KBS:keys:create", "KBS:keys:create"]) == ["KBS:keys:create"]
