"""`secl tags` against a real central over TLS: create, list, show, revoke, delete, and errors as one line.
Deploying to a live host is in tests/test_central_assettag_e2e.py."""

from __future__ import annotations

import json

import pytest

from tests.cli_central import Central, assert_one_line_error

HOST = "0e6b4e1c-aaaa-4bbb-8ccc-0123456789ab"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_tags_lifecycle_and_errors(central: Central) -> None:
    assert central.login().exit_code == 0
    created = central.run("tags", "create", "--hardware-uuid", HOST, "--tag", "country=DE",
                          "--tag", "formula=a=b", "--days", "30")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert f"for {HOST}: country=DE, formula=a=b" in created.stdout  # a value may hold "="
    cert_id = created.stdout.split()[2]
    (listed,) = json.loads(central.run("tags", "list", "--hardware-uuid", HOST, "-o", "json").stdout)
    assert listed["id"] == cert_id and listed["selection_content"][1] == {"name": "formula", "value": "a=b"}
    table = central.run("tags", "list").stdout
    assert cert_id in table and "country=DE, formula=a=b" in table
    shown = central.run("tags", "show", cert_id)
    assert shown.exit_code == 0 and "sha384:" in shown.stdout and "certificate:" not in shown.stdout
    assert json.loads(central.run("tags", "show", cert_id, "-o", "json").stdout)["certificate"]

    revoked = central.run("tags", "revoke", cert_id)
    assert revoked.exit_code == 0 and "revoked at" in revoked.stdout
    assert central.run("tags", "list", "--not-revoked", "-o", "json").stdout.strip() == "[]"
    assert_one_line_error(central.run("tags", "deploy", cert_id), "tag-certificate-revoked")
    assert central.run("tags", "delete", cert_id).exit_code == 0
    assert_one_line_error(central.run("tags", "show", cert_id), "tag-certificate-not-found")

    # Bad input: one line each, the central's code when the central refused.
    assert_one_line_error(
        central.run("tags", "create", "--hardware-uuid", HOST, "--tag", "country"), "name=value"
    )
    duplicate = central.run("tags", "create", "--hardware-uuid", HOST, "--tag", "a=1", "--tag", "A=2")
    assert_one_line_error(duplicate, "tag-name-duplicate")
    long_value = central.run("tags", "create", "--hardware-uuid", HOST, "--tag", "a=" + "x" * 257)
    assert_one_line_error(long_value, "tag-value-too-long")
    assert_one_line_error(central.run("tags", "create", "--host", "nowhere", "--tag", "a=1"), "not-found")
    both = central.run("tags", "create", "--host", "h", "--hardware-uuid", HOST, "--tag", "a=1")
    assert both.exit_code == 2 and "exactly one" in both.output
    added = central.run("hosts", "add", "fresh", "--connection", "intel:https://fresh.invalid:1443")
    assert added.exit_code == 0
    unattested = central.run("tags", "create", "--host", "fresh", "--tag", "a=1")
    assert_one_line_error(unattested, "hardware-uuid-unknown")
