"""Application integrity end to end, with real processes: swtpm, `secl-trustagent run` over mTLS, the
central under gunicorn, and `secl-measure` doing at each "boot" what the initrd's hook does.

A temporary directory stands for the host's root (the agent's ``measurement_root``). Each boot is a
power-cycled TPM (a fresh swtpm from the same manufactured state: same EK and AIK, PCRs reset) that
measures the OVMF firmware log, then `secl-measure` measures the deployed manifests into PCR 15 and
/run/secl (a fresh directory), and the agent starts. The central:

- makes a SOFTWARE flavor from a manifest the agent measures on request (flavor-from-app-manifest),
  deploys its manifest to the host, and after the next boot attests the host trusted;
- after a file changes and the host reboots: untrusted, the fault names that file;
- after a file appears in a measured directory: untrusted, the fault names the new file;
- with a measurement log that does not replay (an edited Measurement XML, a PCR 15 extend nobody logged):
  the integrity faults; bad input to the routes: 4xx with a code.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter
from tests.agent_harness import ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.cli_central import Central
from tests.corpus import corpus_path
from tests.firmware_boot import OVMF_LOG, boot
from tests.live_central import LiveCentral
from tests.measure_command import run as secl_measure
from tests.swtpm import SwtpmState, start_swtpm

pytestmark = pytest.mark.swtpm

UUID = "5b2f8f0e-6c1d-4f5e-9a7b-3c2d1e0f9a8b"
MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><Manifest xmlns="lib:wml:manifests:1.0" Label="shop-app" '
    f'Uuid="{UUID}" DigestAlg="SHA384"><Dir Path="/opt/shop/bin" Include=".*" Exclude=""/>'
    '<File Path="/opt/shop/bin/.*" SearchType="regex"/><File Path="/etc/shop.conf"/>'
    '<Symlink Path="/opt/shop/current"/></Manifest>'
)


class Host:
    """The golden host: its root, its /run, its manifests, and reboots onto a power-cycled TPM."""

    def __init__(self, agent: ProvisionedAgent, state: SwtpmState, work: Path) -> None:
        self.agent, self.state, self.work = agent, state, work
        self.root = work / "hostroot"
        self.run = work / "run-secl"
        self.manifests = work / "manifests"
        self.processes: list[subprocess.Popen[bytes]] = []
        (self.root / "opt/shop/bin").mkdir(parents=True)
        (self.root / "opt/shop/bin/shop").write_bytes(b"the shop, version 1")
        (self.root / "opt/shop/bin/start.sh").write_bytes(b"#!/bin/sh\nexec shop\n")
        (self.root / "etc").mkdir()
        (self.root / "etc/shop.conf").write_text("port = 8080\n")
        (self.root / "opt/shop/current").symlink_to("bin")
        # `secl-trustagent setup` installed the default manifest of the agent's own files in its state.
        (default,) = (Path(agent.env["SECL_TRUSTAGENT_STATE_DIR"]) / "manifests").glob("manifest_*.xml")
        assert 'Label="ISecL_Default_Application_Flavor_v' in default.read_text()
        agent.stop()
        agent.env = agent.env | {
            "SECL_TRUSTAGENT_MEASUREMENT_DIR": str(self.run / "measurements"),
            "SECL_TRUSTAGENT_APPLICATION_EVENT_LOG": str(self.run / "measure-log.json"),
            "SECL_TRUSTAGENT_MANIFEST_DIR": str(self.manifests),
            "SECL_TRUSTAGENT_MEASUREMENT_ROOT": str(self.root),
        }
        agent.start()
        self.boots = 0

    def reboot(self) -> None:
        """Power-cycle the TPM, measure the firmware and then the manifests (as the initrd), start the agent."""
        self.agent.stop()
        self.boots += 1
        work = self.work / f"boot-{self.boots}"
        work.mkdir()
        process, tpm = start_swtpm(self.state, work)
        self.processes.append(process)
        boot(tpm.tcti, corpus_path(OVMF_LOG).read_bytes())
        shutil.rmtree(self.run, ignore_errors=True)  # /run is a fresh tmpfs every boot
        measured = secl_measure(
            "--manifest-dir", self.manifests, "--root", self.root, "--skip-missing", "--tcti", tpm.tcti,
            "--output", self.run / "measurements", "--event-log", self.run / "measure-log.json",
        )  # fmt: skip
        assert measured.returncode == 0, measured.stderr
        self.agent.tcti = tpm.tcti
        self.agent.env = self.agent.env | {"SECL_TRUSTAGENT_TCTI": tpm.tcti}
        self.agent.start()

    def extend_pcr15_unlogged(self) -> None:
        self.agent.stop()
        with TPMAdapter(self.agent.tcti) as tpm:
            tpm.extend_pcr(15, {HashAlg.SHA256: b"\x15" * 32})
        self.agent.start()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def host(golden: ProvisionedAgent, swtpm_state: SwtpmState, tmp_path: Path) -> Iterator[Host]:
    made = Host(golden, swtpm_state, tmp_path / "software")
    try:
        yield made
    finally:
        made.close()


def _faults(report: dict[str, Any], rule: str | None = None) -> list[dict[str, Any]]:
    return [
        f
        for r in report["trust_report"]["results"]
        if rule is None or r["rule"]["rule_name"].rsplit(".", 1)[-1] == rule
        for f in r.get("faults") or []
    ]


def _fault_names(report: dict[str, Any]) -> set[str]:
    return {f["fault_name"].rsplit(".", 1)[-1] for f in _faults(report)}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_software_flavor_measured_at_boot_trusted_then_changed(
    live_central: LiveCentral, central_state: CentralState, host: Host
) -> None:
    headers = admin_headers(live_central, central_state)
    created = api(live_central, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": "shop-host", "connection_string": host.agent.connection_string})  # fmt: skip
    assert created.status_code == 201, created.text
    host_id = created.json()["id"]

    def report() -> dict[str, Any]:
        made = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
        assert made.status_code == 201, made.text
        return made.json()

    # Bad input: 4xx with a code, nothing stored.
    for body, status, code in [
        ({"host_id": host_id, "manifest": "<Manifest"}, 400, "manifest-malformed"),
        ({"host_id": host_id, "manifest": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "a">]><Manifest/>'},
         400, "manifest-xml-forbidden"),
        ({"host_id": host_id, "manifest": MANIFEST.replace("shop-app", "ISecL_Default_Application_Flavor_v1")},
         400, "manifest-label-reserved"),
        ({"host_id": host_id, "manifest": MANIFEST.replace("/etc/shop.conf", "/etc/missing.conf")}, 409,
         "path-missing"),
        ({"manifest": MANIFEST}, 400, None),
    ]:  # fmt: skip
        refused = api(live_central, headers, "POST", "/hvs/v2/flavor-from-app-manifest", json=body)
        assert refused.status_code == status, refused.text
        assert code is None or refused.json()["code"] == code, refused.text
    missing = api(live_central, headers, "POST", "/hvs/v2/flavor-from-app-manifest",
                  json={"host_id": host_id, "manifest": MANIFEST.replace("/etc/shop.conf", "/etc/missing.conf")})  # fmt: skip
    assert "/etc/missing.conf" in missing.json()["message"]

    # The SOFTWARE flavor: the agent measures the manifest now; the flavor is signed and stored.
    made = api(live_central, headers, "POST", "/hvs/v2/flavor-from-app-manifest",
               json={"host_id": host_id, "manifest": MANIFEST})  # fmt: skip
    assert made.status_code == 201, made.text
    flavor = made.json()["flavor"]
    assert flavor["meta"]["id"] == UUID and flavor["meta"]["description"]["flavor_part"] == "SOFTWARE"
    paths = {m["Path"] for m in flavor["software"]["measurements"].values()}
    assert paths == {"/opt/shop/bin", "/opt/shop/bin/shop", "/opt/shop/bin/start.sh", "/etc/shop.conf",
                     "/opt/shop/current"}  # fmt: skip
    again = api(live_central, headers, "POST", "/hvs/v2/flavor-from-app-manifest",
                json={"host_id": host_id, "manifest": MANIFEST})  # fmt: skip
    assert again.status_code == 409, again.text

    # Deployed to the host for its next boot; a non-SOFTWARE or unknown flavor is refused.
    deployed = api(live_central, headers, "POST", "/hvs/v2/rpc/deploy-software-manifest",
                   json={"flavor_id": UUID, "host_id": host_id})  # fmt: skip
    assert deployed.status_code == 200, deployed.text
    assert (host.manifests / f"manifest_{UUID}.xml").read_text() == deployed.json()["manifest"]
    unknown = api(live_central, headers, "POST", "/hvs/v2/rpc/deploy-software-manifest",
                  json={"flavor_id": "00000000-0000-4000-8000-000000000001", "host_id": host_id})  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["code"] == "flavor-not-found", unknown.text

    # Boot: firmware, then the initrd's measurement; PLATFORM and OS flavors from this boot.
    host.reboot()
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host",
                   json={"host_id": host_id, "partial_flavor_types": ["PLATFORM", "OS"]})  # fmt: skip
    assert imported.status_code == 201, imported.text
    platform = next(f for f in imported.json()["signed_flavors"] if f["flavor"]["meta"]["description"]["flavor_part"] == "PLATFORM")  # fmt: skip
    refused = api(live_central, headers, "POST", "/hvs/v2/rpc/deploy-software-manifest",
                  json={"flavor_id": platform["flavor"]["meta"]["id"], "host_id": host_id})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["code"] == "flavor-not-software", refused.text

    trusted = report()
    assert trusted["trusted"] is True, json.dumps(_faults(trusted), indent=1)
    assert trusted["flavors_trust"]["SOFTWARE"]["trust"] is True
    rules = {r["rule"]["rule_name"].rsplit(".", 1)[-1] for r in trusted["trust_report"]["results"]
             if "SOFTWARE" in r["rule"].get("markers", [])}  # fmt: skip
    assert rules >= {"XmlMeasurementsDigestEquals", "XmlMeasurementLogIntegrity", "XmlMeasurementLogEquals",
                     "PcrEventLogIncludes", "PcrEventLogIntegrity", "FlavorTrusted"}, rules  # fmt: skip

    # One file changes; the next boot measures it: untrusted, and the fault names the file.
    (host.root / "opt/shop/bin/shop").write_bytes(b"the shop, version 2 (not approved)")
    host.reboot()
    changed = report()
    assert changed["trusted"] is False and changed["flavors_trust"]["SOFTWARE"]["trust"] is False
    assert changed["flavors_trust"]["PLATFORM"]["trust"] and changed["flavors_trust"]["OS"]["trust"]
    (modified,) = _faults(changed, "XmlMeasurementLogEquals")
    assert modified["fault_name"].endswith("XmlMeasurementLogValueMismatchEntriesSha384"), modified
    assert [m["Path"] for m in modified["mismatch_measurements"]] == ["/opt/shop/bin/shop"], modified
    assert "/opt/shop/bin/shop" in modified["description"]

    # Restored, and an unexpected file appears in the measured directory.
    (host.root / "opt/shop/bin/shop").write_bytes(b"the shop, version 1")
    (host.root / "opt/shop/bin/backdoor").write_bytes(b"nc -l 4444")
    host.reboot()
    added = report()
    assert added["trusted"] is False
    # The deployed manifest is the flavor's (literal paths, as SecL builds it), so the new file shows as a
    # changed listing of its directory; a manifest that searches the directory also names the file (see
    # test_import_makes_software_flavors_from_boot_measurements).
    (listing,) = _faults(added, "XmlMeasurementLogEquals")
    assert listing["fault_name"].endswith("XmlMeasurementLogValueMismatchEntriesSha384"), listing
    assert [m["Path"] for m in listing["mismatch_measurements"]] == ["/opt/shop/bin"], listing

    # Back to the approved tree: trusted again.
    (host.root / "opt/shop/bin/backdoor").unlink()
    host.reboot()
    assert report()["trusted"] is True

    # A Measurement XML edited after boot no longer replays to its CumulativeHash (nor to PCR 15).
    xml_file = host.run / "measurements" / f"measurement_{UUID}.xml"
    original = xml_file.read_text()
    digest = original.split('Path="/etc/shop.conf">', 1)[1].split("<", 1)[0]
    xml_file.write_text(original.replace(digest, "0" * len(digest)))
    edited = report()
    assert edited["trusted"] is False
    (integrity,) = _faults(edited, "XmlMeasurementLogIntegrity")
    assert integrity["fault_name"].endswith("XmlMeasurementValueMismatch"), integrity
    xml_file.write_text(original)
    assert report()["trusted"] is True

    # Something extends PCR 15 without logging it: the PCR 15 log no longer replays to the quoted value.
    host.extend_pcr15_unlogged()
    unlogged = report()
    assert unlogged["trusted"] is False
    (invalid,) = _faults(unlogged, "PcrEventLogIntegrity")
    assert invalid["fault_name"].endswith("PcrEventLogInvalid") and invalid["pcr_index"] == 15, invalid
    # Only that, and the ALL_OF policy of the automatic group saying its SOFTWARE flavor failed.
    assert _fault_names(unlogged) == {"PcrEventLogInvalid", "AllOfFlavorsMissing"}, _faults(unlogged)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_import_makes_software_flavors_from_boot_measurements(
    live_central: LiveCentral, central_state: CentralState, host: Host
) -> None:
    headers = admin_headers(live_central, central_state)
    created = api(live_central, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": "shop-host", "connection_string": host.agent.connection_string})  # fmt: skip
    host_id = created.json()["id"]
    host.manifests.mkdir()
    (host.manifests / f"manifest_{UUID}.xml").write_text(MANIFEST)
    host.reboot()
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host_id})
    assert imported.status_code == 201, imported.text
    parts = {f["flavor"]["meta"]["description"]["flavor_part"]: f["flavor"] for f in imported.json()["signed_flavors"]}  # fmt: skip
    assert set(parts) == {"PLATFORM", "OS", "SOFTWARE"}
    assert (
        parts["SOFTWARE"]["meta"]["id"] == UUID
        and parts["SOFTWARE"]["meta"]["description"]["label"] == "shop-app"
    )
    made = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert made.json()["trusted"] is True, json.dumps(_faults(made.json()), indent=1)
    # A file appears in the searched directory: the fault names it (and the directory's changed listing).
    (host.root / "opt/shop/bin/backdoor").write_bytes(b"nc -l 4444")
    host.reboot()
    added = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id}).json()
    assert added["trusted"] is False
    named = {f["fault_name"].rsplit(".", 1)[-1]: f for f in _faults(added, "XmlMeasurementLogEquals")}
    unexpected = named["XmlMeasurementLogContainsUnexpectedEntries"]
    assert [m["Path"] for m in unexpected["unexpected_measurements"]] == ["/opt/shop/bin/backdoor"]
    assert "/opt/shop/bin/backdoor" in unexpected["description"]
    changed = named["XmlMeasurementLogValueMismatchEntriesSha384"]["mismatch_measurements"]
    assert [m["Path"] for m in changed] == ["/opt/shop/bin"]
    # A host whose measurements are not vouched for cannot be a golden host for SOFTWARE flavors: a
    # Measurement XML that does not replay, then a PCR 15 its log does not reach.
    xml_file = host.run / "measurements" / f"measurement_{UUID}.xml"
    xml_file.write_text(
        re.sub(r"<CumulativeHash>[0-9a-f]+", "<CumulativeHash>" + "0" * 96, xml_file.read_text())
    )
    refused = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host",
                  json={"host_id": host_id, "partial_flavor_types": ["SOFTWARE"]})  # fmt: skip
    assert refused.status_code == 409 and refused.json()["code"] == "measurement-log-unverified", refused.text
    assert f"shop-app-{UUID} does not replay" in refused.json()["message"]
    host.reboot()
    host.extend_pcr15_unlogged()
    again = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host",
                json={"host_id": host_id, "partial_flavor_types": ["SOFTWARE"]})  # fmt: skip
    assert again.status_code == 409 and again.json()["code"] == "event-log-replay-mismatch", again.text
    assert again.json()["details"]["pcrs"] == ["SHA256:15"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_software_flavor_and_deploy(
    live_central: LiveCentral, central_state: CentralState, host: Host, tmp_path: Path
) -> None:
    """`secl software flavor` and `secl software deploy` against the live central and agent."""
    headers = admin_headers(live_central, central_state)
    created = api(live_central, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": "shop-host", "connection_string": host.agent.connection_string})  # fmt: skip
    host_id = created.json()["id"]
    home = tmp_path / "home"
    home.mkdir()
    admin = Central(live_central.url, Path(live_central.ca_file), central_state, home)
    assert admin.login().exit_code == 0
    manifest = tmp_path / "shop.xml"
    manifest.write_text(MANIFEST)
    made = admin.run("software", "flavor", str(manifest), "--host-id", host_id)
    assert made.exit_code == 0, made.output
    assert made.output.startswith(f"SOFTWARE flavor {UUID} (shop-app): 5 measurements, cumulative ")
    deployed = admin.run("software", "deploy", UUID, "--host-id", host_id, "-o", "json")
    assert deployed.exit_code == 0, deployed.output
    assert json.loads(deployed.output)["manifest"] == (host.manifests / f"manifest_{UUID}.xml").read_text()
    # The central's refusals: one line, exit 4.
    again = admin.run("software", "flavor", str(manifest), "--host-id", host_id)
    assert again.exit_code == 4 and again.output.count("\n") == 1, again.output
    assert again.output.startswith("secl: error: ") and "flavor" in again.output
    # A manifest the CLI can tell is bad never reaches the central: exit 3.
    manifest.write_text(MANIFEST.replace("SHA384", "MD5"))
    bad = admin.run("software", "flavor", str(manifest), "--host-id", host_id)
    assert bad.exit_code == 3 and "digest-alg-unsupported" in bad.output, bad.output
