"""The `secl` admin commands (login, logout, users, roles) against the real central over real HTTPS.

The central app (SQLite and PostgreSQL) is served by werkzeug with the TLS certificate `secl-central setup`
made, on a free loopback port; the CLI runs in-process through click's CliRunner with HOME and
XDG_CONFIG_HOME in a temporary directory, so the session file it writes is inspected for real.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from secl.central.cms import pki
from tests.central_fixtures import CentralState
from tests.cli_central import Central, assert_one_line_error


def test_login_saves_a_private_session_without_the_password(central: Central):
    result = central.login()
    assert result.exit_code == 0, result.output
    assert f"logged in to {central.url} as admin" in result.stdout
    path = central.session_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert central.state.admin_password not in text
    session = json.loads(text)
    assert set(session) == {"url", "token", "expires_at", "username", "ca_file"}
    assert session["url"] == central.url and session["username"] == "admin"
    assert session["ca_file"] == str(central.root_ca.resolve())
    # Logging in again rewrites the file and keeps it private even if someone loosened its mode.
    path.chmod(0o644)
    assert central.login().exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_password_is_prompted_for_when_no_file_is_given(central: Central):
    result = central.run(
        "login", "--url", central.url, "--ca-file", str(central.root_ca), "--username", "admin",
        input=central.state.admin_password + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert central.state.admin_password not in result.output
    assert central.run("users", "list").exit_code == 0


def test_wrong_password_is_refused_with_the_servers_message(central: Central):
    wrong = central.password_file("wrong", "not the password")
    result = central.run(
        "login", "--url", central.url, "--ca-file", str(central.root_ca), "--username", "admin",
        "--password-file", wrong,
    )  # fmt: skip
    assert result.exit_code == 4
    assert_one_line_error(result, "wrong username or password", "[login-failed]")
    assert not central.session_file.exists()


def test_commands_without_a_session_say_to_log_in(central: Central):
    assert_one_line_error(central.run("users", "list"), "secl login")
    assert central.login().exit_code == 0
    session = json.loads(central.session_file.read_text())
    session["expires_at"] = "2000-01-01T00:00:00Z"
    central.session_file.write_text(json.dumps(session))
    assert_one_line_error(central.run("roles", "list"), "expired", "secl login")


def test_a_token_the_central_rejects_says_to_log_in_again(central: Central):
    assert central.login().exit_code == 0
    session = json.loads(central.session_file.read_text())
    session["token"] = session["token"][:-4] + ("AAAA" if not session["token"].endswith("AAAA") else "BBBB")
    central.session_file.write_text(json.dumps(session))
    assert_one_line_error(central.run("users", "list"), "[token-invalid]", "secl login")


def test_users_and_roles_lifecycle(central: Central):
    assert central.login().exit_code == 0
    created = central.run(
        "roles", "create", "host-reader", "--permission", "HVS:hosts:search", "-p", "HVS:hosts:retrieve",
        "--description", "reads hosts", "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    role = json.loads(created.stdout)
    assert role["permissions"] == ["HVS:hosts:search", "HVS:hosts:retrieve"]

    table = central.run("roles", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PERMISSIONS", "DESCRIPTION"]
    assert any(role["id"] in line and "host-reader" in line and "reads hosts" in line for line in lines)
    listed = json.loads(central.run("roles", "list", "--output", "json").stdout)
    assert {r["name"] for r in listed} == {"administrator", "host-reader"}

    password = central.password_file("bob-password", "bob's long enough password")
    made = central.run("users", "create", "bob", "--role", "host-reader", "--password-file", password)
    assert made.exit_code == 0, made.output
    assert "bob" in made.stdout and "host-reader" in made.stdout

    users = json.loads(central.run("users", "list", "-o", "json").stdout)
    assert {u["username"]: u["roles"] for u in users} == {"admin": ["administrator"], "bob": ["host-reader"]}
    bob = next(u for u in users if u["username"] == "bob")
    table = central.run("users", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "USERNAME", "ROLES"]
    assert any(bob["id"] in line and "host-reader" in line for line in table)

    shown = json.loads(central.run("users", "show", "bob", "-o", "json").stdout)
    assert shown["id"] == bob["id"]
    assert json.loads(central.run("users", "show", bob["id"], "-o", "json").stdout)["username"] == "bob"

    changed = central.run("users", "set-roles", "bob", "administrator", "host-reader", "-o", "json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["roles"] == ["administrator", "host-reader"]

    duplicate = central.run("users", "create", "bob", "--password-file", password)
    assert duplicate.exit_code == 4
    assert_one_line_error(duplicate, "already exists", "[already-exists]")
    bad = central.run("roles", "create", "bad", "--permission", "not-a-permission")
    assert_one_line_error(bad, "[validation-failed]")

    reset = central.password_file("bob-reset", "bob's password, reset by admin")
    assert central.run("users", "passwd", "bob", "--new-password-file", reset).exit_code == 0
    shown_role = json.loads(central.run("roles", "show", "host-reader", "-o", "json").stdout)
    assert shown_role["id"] == role["id"]

    assert central.run("users", "delete", "bob").exit_code == 0
    assert "bob" not in central.run("users", "list").stdout
    assert_one_line_error(central.run("users", "show", bob["id"]), "[not-found]")
    deleted = central.run("roles", "delete", role["id"])
    assert deleted.exit_code == 0, deleted.output
    assert "host-reader" not in central.run("roles", "list").stdout
    assert_one_line_error(central.run("roles", "delete", "administrator"), "[role-protected]")


def test_under_privileged_user_gets_the_permission_it_lacks(central: Central):
    assert central.login().exit_code == 0
    password = central.password_file("carol-password", "carol's long enough password")
    assert central.run("users", "create", "carol", "--password-file", password).exit_code == 0
    result = central.run(
        "login", "--url", central.url, "--ca-file", str(central.root_ca), "--username", "carol",
        "--password-file", password,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_one_line_error(central.run("users", "list"), "AAS:users:search", "[permission-denied]")
    new = central.password_file("carol-new", "carol's brand new password")
    changed = central.run("users", "passwd", "--old-password-file", password, "--new-password-file", new)
    assert changed.exit_code == 0, changed.output
    again = central.run(
        "login", "--url", central.url, "--ca-file", str(central.root_ca), "--username", "carol",
        "--password-file", new,
    )  # fmt: skip
    assert again.exit_code == 0, again.output


def test_login_by_ca_fingerprint_pins_the_root_ca(central: Central):
    password = central.password_file("admin-password", central.state.admin_password)
    fingerprint = central.state.root_ca_fingerprint
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()
    result = central.run(
        "login", "--url", central.url, "--ca-fingerprint", colons, "--username", "admin",
        "--password-file", password,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    session = json.loads(central.session_file.read_text())
    assert "ca_file" not in session
    pinned = x509.load_pem_x509_certificate(session["ca_pem"].encode())
    assert pinned.fingerprint(hashes.SHA384()).hex() == fingerprint
    listed = central.run("roles", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output


def test_fingerprint_mismatch_is_refused(central: Central):
    password = central.password_file("admin-password", central.state.admin_password)
    wrong = "00" * 48
    result = central.run(
        "login", "--url", central.url, "--ca-fingerprint", wrong, "--username", "admin",
        "--password-file", password,
    )  # fmt: skip
    assert_one_line_error(result, "fingerprint", "refusing")
    assert not central.session_file.exists()
    malformed = central.run("login", "--url", central.url, "--ca-fingerprint", "abc", "--username", "admin",
                            "--password-file", password)  # fmt: skip
    assert_one_line_error(malformed, "96 hex digits")


def test_tls_verification_failure_is_reported_as_such(central: Central, tmp_path: Path):
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pki.create_root_ca("some other CA").certificate.public_bytes(Encoding.PEM))
    password = central.password_file("admin-password", central.state.admin_password)
    result = central.run(
        "login", "--url", central.url, "--ca-file", str(other_ca), "--username", "admin",
        "--password-file", password,
    )  # fmt: skip
    assert_one_line_error(result, "TLS verification", central.url)
    assert not central.session_file.exists()


def test_logout_removes_the_session(central: Central):
    assert central.login().exit_code == 0
    assert central.session_file.exists()
    result = central.run("logout")
    assert result.exit_code == 0 and "logged out" in result.stdout
    assert not central.session_file.exists()
    assert central.run("logout").stdout.strip() == "not logged in"
    assert_one_line_error(central.run("users", "list"), "secl login")


def test_login_refuses_a_plain_http_url_and_a_password_option(central: Central):
    assert_one_line_error(
        central.run("login", "--url", "http://localhost:1", "--username", "admin"), "https://"
    )
    result = central.run("login", "--url", central.url, "--username", "admin", "--password", "x")
    assert result.exit_code == 2  # no such option: passwords are never command-line values


def test_cli_against_gunicorn_over_tls(live_central, central_state: CentralState, tmp_path: Path):
    # The same CLI against the production server (gunicorn, gthread, TLS), not only werkzeug.
    gunicorn = Central(live_central.url, live_central.ca_file, central_state, tmp_path)
    assert gunicorn.login().exit_code == 0
    created = gunicorn.run("roles", "create", "ops", "-p", "HVS:hosts:*", "-o", "json")
    assert created.exit_code == 0, created.output
    listed = gunicorn.run("roles", "list", "-o", "json")
    assert "ops" in {role["name"] for role in json.loads(listed.stdout)}
    denied = gunicorn.run("users", "show", "nobody")
    assert denied.exit_code != 0 and denied.stderr.startswith("secl: error: ")
