"""AAS on SQLite and PostgreSQL: tokens, users, roles, lockout and the audit log, through the Flask app."""

from __future__ import annotations

from flask.testing import FlaskClient

from secl.central import create_app
from tests.central_fixtures import CentralState, login


def test_admin_logs_in_and_manages_users_and_roles(client: FlaskClient, admin_headers: dict[str, str]):
    role = client.post(
        "/aas/v1/roles",
        json={"name": "host-reader", "permissions": ["HVS:hosts:search"]},
        headers=admin_headers,
    )
    assert role.status_code == 201, role.json
    user = client.post(
        "/aas/v1/users",
        json={"username": "bob", "password": "a long enough password", "roles": ["host-reader"]},
        headers=admin_headers,
    )
    assert user.status_code == 201, user.json
    assert user.json["roles"] == ["host-reader"]
    token = login(client, "bob", "a long enough password")
    bob = {"Authorization": f"Bearer {token}"}
    forbidden = client.get("/aas/v1/users", headers=bob)
    assert forbidden.status_code == 403
    assert forbidden.json["code"] == "permission-denied"
    assert "AAS:users:search" in forbidden.json["message"]
    listed = client.get("/aas/v1/users", headers=admin_headers)
    assert {u["username"] for u in listed.json} == {"admin", "bob"}


def test_duplicate_user_is_a_conflict(client: FlaskClient, admin_headers: dict[str, str]):
    body = {"username": "carol", "password": "a long enough password"}
    assert client.post("/aas/v1/users", json=body, headers=admin_headers).status_code == 201
    again = client.post("/aas/v1/users", json=body, headers=admin_headers)
    assert again.status_code == 409 and again.json["code"] == "already-exists"


def test_lockout_after_repeated_failures_survives_a_new_app_instance(
    client: FlaskClient, central_state: CentralState
):
    threshold = central_state.config.lockout_threshold
    for _ in range(threshold):
        bad = client.post("/aas/v1/token", json={"username": "admin", "password": "wrong"})
        assert bad.status_code == 401
    locked = client.post(
        "/aas/v1/token", json={"username": "admin", "password": central_state.admin_password}
    )
    assert locked.status_code == 423 and locked.json["code"] == "account-locked"
    # A second instance on the same database (a restart, or another central) sees the same lock.
    other = create_app(central_state.config).test_client()
    again = other.post("/aas/v1/token", json={"username": "admin", "password": central_state.admin_password})
    assert again.status_code == 423


def test_audit_log_records_logins_failures_and_changes(client: FlaskClient, admin_headers: dict[str, str]):
    client.post("/aas/v1/token", json={"username": "admin", "password": "wrong"})
    client.post("/aas/v1/roles", json={"name": "r1", "permissions": ["HVS:*:*"]}, headers=admin_headers)
    events = client.get("/aas/v1/audit-events", headers=admin_headers).json
    actions = [e["action"] for e in events]
    assert {"token.issued", "login.failed", "role.created"} <= set(actions)
    failed = client.get("/aas/v1/audit-events?action=login.failed", headers=admin_headers).json
    assert failed and all(e["outcome"] == "failure" for e in failed)


def test_change_own_password(client: FlaskClient, central_state: CentralState, admin_headers: dict[str, str]):
    new = "another long password"
    wrong = client.post(
        "/aas/v1/password", json={"old_password": "nope", "new_password": new}, headers=admin_headers
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/aas/v1/password",
        json={"old_password": central_state.admin_password, "new_password": new},
        headers=admin_headers,
    )
    assert ok.status_code == 204
    assert login(client, "admin", new)


def test_bad_input_is_4xx_with_a_code(client: FlaskClient, admin_headers: dict[str, str]):
    cases = [
        client.post("/aas/v1/token", data="not json", content_type="application/json"),
        client.post("/aas/v1/token", data="x", content_type="text/plain"),
        client.post("/aas/v1/token", json={"username": "admin"}),
        client.post("/aas/v1/token", json=["a"]),
        client.post(
            "/aas/v1/roles", json={"name": "x", "permissions": ["not-a-permission"]}, headers=admin_headers
        ),
        client.post("/aas/v1/users", json={"username": "u", "password": "short"}, headers=admin_headers),
        client.get("/aas/v1/users/does-not-exist", headers=admin_headers),
        client.get("/no/such/route"),
        client.delete("/aas/v1/token"),
        client.post(
            "/aas/v1/token", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json"
        ),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.status_code, response.json)
        assert set(response.json) >= {"code", "message"}


def test_an_unset_central_refuses_to_start_and_says_what_to_run(tmp_path):
    import pytest

    from secl.central import NotSetUp
    from secl.central.config import CentralConfig

    with pytest.raises(NotSetUp, match="secl-central setup"):
        create_app(CentralConfig(state_dir=tmp_path / "nothing-here"))
    assert not (tmp_path / "nothing-here" / "central.db").exists()
