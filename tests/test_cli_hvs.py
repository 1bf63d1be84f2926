"""`secl hosts|flavors|flavorgroups` against a real central over TLS (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_central import Central
from tests.corpus import corpus_path

VMWARE_FLAVORS = "intel-secl/pkg/lib/verifier/test_data/vmware12/signed_flavors.json"
STM_EK = "keylime/extracted_from_tests/st_sha256_with_rsa.der"


def test_hosts_lifecycle(central: Central):
    assert central.login().exit_code == 0
    added = central.run(
        "hosts", "add", "host1", "--connection", "intel:https://host1.example:1443", "-o", "json"
    )
    assert added.exit_code == 0, added.output
    host = json.loads(added.stdout)
    assert host["status"] == "unknown" and host["flavorgroup_names"] == ["automatic"]
    listed = central.run("hosts", "list")
    assert "host1" in listed.stdout and "unknown" in listed.stdout
    shown = central.run("hosts", "show", "host1", "-o", "json")
    assert json.loads(shown.stdout)["id"] == host["id"]
    bad = central.run("hosts", "add", "host2", "--connection", "http://plain:1443")
    assert bad.exit_code != 0 and bad.stderr.startswith("secl: error: ")
    assert central.run("hosts", "delete", "host1").exit_code == 0
    gone = central.run("hosts", "show", "host1")
    assert gone.exit_code != 0 and "not-found" in gone.stderr


def test_flavors_upload_list_export_and_groups(central: Central, tmp_path: Path):
    assert central.login().exit_code == 0
    uploaded = central.run("flavors", "upload", str(corpus_path(VMWARE_FLAVORS)))
    assert uploaded.exit_code == 0, uploaded.output + uploaded.stderr
    listed = central.run("flavors", "list", "-o", "json")
    signed = json.loads(listed.stdout)
    parts = {s["flavor"]["meta"]["description"]["flavor_part"] for s in signed}
    assert {"PLATFORM", "OS", "HOST_UNIQUE"} <= parts
    assert all(s["signature"] for s in signed)
    exported = central.run("flavors", "export")
    assert exported.exit_code == 0
    assert len(json.loads(exported.stdout)["signed_flavors"]) == len(signed)
    groups = central.run("flavorgroups", "list")
    assert "automatic" in groups.stdout and "ANY_OF" in groups.stdout
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    refused = central.run("flavors", "upload", str(not_json))
    assert refused.exit_code == 3 and refused.stderr.startswith("secl: error: ")


def test_flavorgroups_create_show_and_delete(central: Central):
    assert central.login().exit_code == 0
    created = central.run(
        "flavorgroups", "create", "rack-12", "--policy", "PLATFORM:ANY_OF:REQUIRED",
        "--policy", "host_unique:latest:required_if_defined", "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output + created.stderr
    shown = json.loads(central.run("flavorgroups", "show", "rack-12").stdout)
    policies = {
        p["flavor_part"]: p["match_policy"]
        for p in shown["flavor_match_policy_collection"]["flavor_match_policies"]
    }
    assert policies == {
        "PLATFORM": {"match_type": "ANY_OF", "required": "REQUIRED"},
        "HOST_UNIQUE": {"match_type": "LATEST", "required": "REQUIRED_IF_DEFINED"},
    }
    bad = central.run("flavorgroups", "create", "x", "--policy", "PLATFORM:ANY_OF")
    assert bad.exit_code == 3 and bad.stderr.startswith("secl: error: ")
    wrong = central.run("flavorgroups", "create", "y", "--policy", "PLATFORM:SOME_OF:REQUIRED")
    assert wrong.exit_code != 0 and "validation-failed" in wrong.stderr
    assert central.run("flavorgroups", "delete", shown["id"]).exit_code == 0
    default = json.loads(central.run("flavorgroups", "show", "automatic").stdout)
    refused = central.run("flavorgroups", "delete", default["id"])
    assert refused.exit_code != 0 and refused.stderr.startswith("secl: error: ")


def test_tpm_endorsements_add_list_revoke_restore_delete(central: Central):
    assert central.login().exit_code == 0
    # The STMicro RSA EK certificate from keylime's tests, as DER read from NV (trailing 0xFF padding).
    added = central.run("tpm-endorsements", "add", str(corpus_path(STM_EK)), "--hardware-uuid",
                        "8d4a1c3e-5f06-4e21-9b7a-0c2d3e4f5a6b", "--comment", "rack 12", "-o", "json")  # fmt: skip
    assert added.exit_code == 0, added.output + added.stderr
    registered = json.loads(added.stdout)
    assert registered["revoked"] is False and "STMicro" in registered["issuer"]
    again = central.run("tpm-endorsements", "add", str(corpus_path(STM_EK)))
    assert again.exit_code != 0 and "tpm-endorsement-exists" in again.stderr
    assert registered["id"] in central.run("tpm-endorsements", "list").stdout
    assert central.run("tpm-endorsements", "revoke", registered["id"]).exit_code == 0
    revoked = json.loads(central.run("tpm-endorsements", "list", "--revoked", "-o", "json").stdout)
    assert [e["id"] for e in revoked] == [registered["id"]]
    assert json.loads(central.run("tpm-endorsements", "list", "--active", "-o", "json").stdout) == []
    assert central.run("tpm-endorsements", "restore", registered["id"]).exit_code == 0
    assert central.run("tpm-endorsements", "delete", registered["id"]).exit_code == 0
    assert json.loads(central.run("tpm-endorsements", "list", "-o", "json").stdout) == []
    missing = central.run("tpm-endorsements", "revoke", registered["id"])
    assert missing.exit_code != 0 and "tpm-endorsement-not-found" in missing.stderr
