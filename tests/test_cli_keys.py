"""`secl keys`, `secl key-policies` and `secl key-broker` against a real central over TLS: each command's
happy path, JSON and tables, and refusals as one line with the central's code. Key material never appears
in any output."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.cli_central import Central, assert_one_line_error

HOST = "0e6b4e1c-aaaa-4bbb-8ccc-0123456789ab"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_key_policies_and_keys_lifecycle(central: Central) -> None:
    assert central.login().exit_code == 0
    made = central.run("key-policies", "create", "de-only", "--tag", "country=DE", "--tag", "country=AT",
                       "--usage", "state:BY", "--max-age", "120", "--host", HOST, "-o", "json")  # fmt: skip
    assert made.exit_code == 0, made.output
    policy = json.loads(made.stdout)
    assert policy["required_tags"] == {"country": ["AT", "DE"], "state": ["BY"]}
    assert policy["max_report_age_seconds"] == 120 and policy["hardware_uuids"] == [HOST]
    parts = central.run("key-policies", "create", "platform", "--untrusted-parts-ok", "--require-part",
                        "PLATFORM", "--no-max-age")  # fmt: skip
    assert parts.exit_code == 0 and "created" in parts.stdout, parts.output
    table = central.run("key-policies", "list").stdout
    assert "de-only" in table and "parts: PLATFORM" in table
    shown = central.run("key-policies", "show", policy["id"]).stdout
    assert "country=AT|DE" in shown
    assert central.run("key-policies", "create", "x", "--require-part", "OS").exit_code == 2

    created = central.run("keys", "create", "--algorithm", "AES", "--length", "256", "--policy", policy["id"],
                          "--label", "vm-images", "--usage", "images", "-o", "json")  # fmt: skip
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    key_id = key["key_information"]["id"]
    assert key["transfer_link"].endswith(f"/kbs/v1/keys/{key_id}/transfer")
    assert "key_string" not in created.stdout

    raw = os.urandom(32)
    aes_file = central.home / "aes.key"
    aes_file.write_bytes(base64.b64encode(raw) + b"\n")
    registered = central.run("keys", "register", "--algorithm", "AES", "--key-file", str(aes_file))
    assert registered.exit_code == 0 and "created" in registered.stdout, registered.output
    ec_file = central.home / "ec.pem"
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    ec_file.write_bytes(ec_pem)
    assert central.run("keys", "register", "--algorithm", "EC", "--key-file", str(ec_file)).exit_code == 0

    listed = json.loads(central.run("keys", "list", "--label", "vm-images", "-o", "json").stdout)
    assert [k["key_information"]["id"] for k in listed] == [key_id]
    assert len(json.loads(central.run("keys", "list", "--algorithm", "aes", "-o", "json").stdout)) == 2
    table = central.run("keys", "list").stdout
    assert key_id in table and "vm-images" in table and "EC" in table
    shown = central.run("keys", "show", key_id)
    assert shown.exit_code == 0 and "transfer_link:" in shown.stdout and "256" in shown.stdout
    for result in (created, registered, shown):
        assert base64.b64encode(raw).decode() not in result.output

    # A policy in use stays; the key goes, then the policy can.
    assert_one_line_error(central.run("key-policies", "delete", policy["id"]))
    assert central.run("keys", "delete", key_id).exit_code == 0
    assert_one_line_error(central.run("keys", "show", key_id), "not-found")
    assert central.run("key-policies", "delete", policy["id"]).exit_code == 0

    # Bad input: one line each.
    assert_one_line_error(central.run("keys", "create", "--length", "100"))
    short = central.home / "short.key"
    short.write_bytes(b"0123")
    assert_one_line_error(
        central.run("keys", "register", "--algorithm", "AES", "--key-file", str(short)), "not an AES key"
    )
    assert_one_line_error(
        central.run("keys", "register", "--algorithm", "RSA", "--key-file", str(aes_file)), "PEM"
    )
    assert_one_line_error(central.run("keys", "create", "--policy", "nope"))
    assert_one_line_error(central.run("key-policies", "create", "bad", "--usage", "country"))
    assert_one_line_error(central.run("key-policies", "create", "t", "--tag", "country"), "name=value")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_key_broker_trust_stores(central: Central) -> None:
    assert central.login().exit_code == 0
    pem = str(central.root_ca)  # any CA certificate will do to exercise the store
    for store, listing, remove in (
        ("trust-report-signer", "list-report-signers", "remove-report-signer"),
        ("trust-privacy-ca", "list-privacy-cas", "remove-privacy-ca"),
    ):
        added = central.run("key-broker", store, pem, "-o", "json")
        assert added.exit_code == 0, added.output
        cert_id = json.loads(added.stdout)["id"]
        assert_one_line_error(central.run("key-broker", store, pem), "already-exists")
        assert cert_id in central.run("key-broker", listing).stdout
        assert central.run("key-broker", remove, cert_id).exit_code == 0
        assert json.loads(central.run("key-broker", listing, "-o", "json").stdout) == []
        assert_one_line_error(central.run("key-broker", remove, cert_id), "not-found")
    not_pem = central.home / "x.pem"
    not_pem.write_text("hello")
    assert_one_line_error(central.run("key-broker", "trust-privacy-ca", str(not_pem)), "not a PEM")
