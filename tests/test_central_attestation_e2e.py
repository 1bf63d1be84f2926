"""Platform integrity end to end, with real processes: swtpm, `secl-trustagent run` over mTLS, the central
under gunicorn.

The swtpm holds the measurements of a real firmware log (corpus OVMF); the agent is provisioned through the
central (TLS certificate by enrollment token, AIK certified by the Privacy CA). The central registers the
host, imports flavors from it through the default flavor templates, and attests it:

- trusted, with a JWT that verifies with the report-signing certificate and names the host and the report;
- after a changed boot measurement (PCR 4 extended, agent restarted), untrusted, a fault naming PCR 4 and
  its bank;
- after someone edits the stored flavor to accept the new PCR 4, still untrusted: FlavorTrusted says the
  flavor's signature does not verify (never a 500);
- a compromised agent (the real agent's answers altered on the way: a quote checked against another key,
  a replayed nonce, a PCR value outside the signed selection, a changed PCR value) is refused with the
  named fault and the host's status is evidence-invalid; an AIK certificate not issued by our Privacy CA
  makes AikCertificateTrusted fail and flavor import refuse the host;
- an agent whose TLS certificate does not name the connection string's host, or that is down, is a 409
  with the agent's code and the host's status says why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from flask import Flask

from secl.central import create_app
from secl.central.context import services_of
from secl.central.evidence import verify as verifier
from secl.central.evidence.agentclient import AgentClient, QuoteResponse
from secl.central.keyfiles import KeyFiles
from secl.central.keys import load_issuer
from secl.central.reports.judge import judge
from secl.central.store.hvs_flavor_models import Host, StoredFlavor
from secl.central.store.hvs_report_models import HostManifestRecord, Report
from secl.core.attestation import verify_attestation_result
from tests.agent_harness import CHANGED_BOOT, HARDWARE_UUID, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral

pytestmark = pytest.mark.swtpm


@pytest.fixture
def inproc_app(central_state: CentralState) -> Iterator[Flask]:
    """The same central, in this process (same database and keys), to drive the verifier with an altered
    agent client."""
    app = create_app(central_state.config)
    yield app
    app.extensions["secl.db"].dispose()


def _faults(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for r in report["trust_report"]["results"] for f in r.get("faults") or []]


def _register(
    live: LiveCentral, headers: dict[str, str], name: str, connection_string: str
) -> dict[str, Any]:
    created = api(live, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": name, "connection_string": connection_string})  # fmt: skip
    assert created.status_code == 201, created.text
    return created.json()


def _report(live: LiveCentral, headers: dict[str, str], host_id: str) -> dict[str, Any]:
    made = api(live, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert made.status_code == 201, made.text
    return made.json()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_import_attest_change_tamper(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    headers = admin_headers(live_central, central_state)
    host = _register(live_central, headers, "golden", golden.connection_string)
    assert host["status"] == "unknown"

    # Flavors from the golden host, made by the default templates that apply to it, signed and stored.
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host["id"]})
    assert imported.status_code == 201, imported.text
    flavors = {
        f["flavor"]["meta"]["description"]["flavor_part"]: f for f in imported.json()["signed_flavors"]
    }
    assert set(flavors) == {"PLATFORM", "OS"}, flavors.keys()
    platform_pcrs = {(p["pcr"]["index"], p["pcr"]["bank"]) for p in flavors["PLATFORM"]["flavor"]["pcrs"]}
    assert (4, "SHA256") in platform_pcrs, platform_pcrs
    shown = api(live_central, headers, "GET", f"/hvs/v2/hosts/{host['id']}").json()
    assert shown["status"] == "connected" and shown["hardware_uuid"] == HARDWARE_UUID

    # Trusted, and the JWT says so under the report-signing key.
    report = _report(live_central, headers, host["id"])
    assert report["trusted"] is True, json.dumps(_faults(report), indent=1)
    assert report["trust_report"]["trusted"] is True and report["host_id"] == host["id"]
    assert {r["rule"]["rule_name"].rsplit(".", 1)[-1] for r in report["trust_report"]["results"]} >= {
        "AikCertificateTrusted", "PcrMatchesConstant", "PcrEventLogEquals", "PcrEventLogIntegrity",
        "PcrEventLogIncludes", "FlavorTrusted",
    }  # fmt: skip
    keys = KeyFiles(central_state.config.keys_dir)
    signing_cert = x509.load_pem_x509_certificate(keys.report_signing_cert.read_bytes())
    claims = verify_attestation_result(report["jwt"], signing_cert)
    assert claims.trusted and claims.report_id == report["id"] and claims.subject == HARDWARE_UUID
    assert dict(claims.parts) == {"PLATFORM": True, "OS": True}
    assert claims.evidence_digest == report["evidence_digest"]
    assert (
        pyjwt.get_unverified_header(report["jwt"])["kid"] == signing_cert.fingerprint(hashes.SHA256()).hex()
    )
    found = api(live_central, headers, "GET", f"/hvs/v2/reports/{report['id']}")
    assert found.status_code == 200 and found.json()["jwt"] == report["jwt"]

    # A changed boot measurement: PCR 4 (boot manager) differs from the flavor.
    golden.reboot_with(4, CHANGED_BOOT)
    changed = _report(live_central, headers, host["id"])
    assert changed["trusted"] is False
    assert changed["flavors_trust"]["PLATFORM"]["trust"] is False and changed["flavors_trust"]["OS"]["trust"]
    (pcr4,) = _faults(changed)  # exactly one fault: PCR 4 of the SHA-256 bank, with both values
    assert pcr4["fault_name"].endswith("PcrValueMismatchSHA256"), pcr4
    assert (pcr4["pcr_index"], pcr4["pcr_bank"]) == (4, "SHA256")
    assert (
        "Host PCR 4 of SHA256" in pcr4["description"] and pcr4["actual_pcrvalue"] != pcr4["expected_pcrvalue"]
    )
    assert verify_attestation_result(changed["jwt"], signing_cert).trusted is False

    # History and the latest per host.
    latest = api(
        live_central,
        headers,
        "GET",
        "/hvs/v2/reports",
        params={"hostId": host["id"], "latestPerHost": "true"},
    )
    assert [r["id"] for r in latest.json()["reports"]] == [changed["id"]]
    history = api(live_central, headers, "GET", "/hvs/v2/reports", params={"hostId": host["id"]})
    assert [r["id"] for r in history.json()["reports"]] == [changed["id"], report["id"]]

    # Someone edits the stored PLATFORM flavor to accept the new PCR 4: its signature no longer verifies.
    database = create_app(central_state.config).extensions["secl.db"]
    with database.sessions() as session:
        stored = session.get(Report, changed["id"])
        new_pcr4 = next(
            p["value"] for p in stored.host_manifest["pcr_manifest"]["sha2pcrs"] if p["index"] == "pcr_4"
        )
        row = session.get(StoredFlavor, flavors["PLATFORM"]["flavor"]["meta"]["id"])
        document = json.loads(row.document)
        for entry in document["pcrs"]:
            if entry["pcr"]["index"] == 4:
                entry["measurement"] = new_pcr4
        row.document = json.dumps(document)
        session.commit()
    database.dispose()
    tampered = _report(live_central, headers, host["id"])
    assert tampered["trusted"] is False
    # The changed boot's manifest is stored once, shared by both reports judged on it.
    with database.sessions() as session:
        shared = {session.get(Report, r).host_manifest_digest for r in (changed["id"], tampered["id"])}
        first = session.get(Report, report["id"]).host_manifest_digest
        assert len(shared) == 1 and first not in shared
        assert session.get(HostManifestRecord, first).document["pcr_manifest"]["sha2pcrs"]
    database.dispose()
    names = {f["fault_name"].rsplit(".", 1)[-1] for f in _faults(tampered)}
    assert "FlavorSignatureNotTrusted" in names, names
    assert not any(
        f["fault_name"].endswith("PcrValueMismatch") for f in _faults(tampered)
    )  # PCR 4 now "fits"
    # The flavor API refuses the tampered flavor with its code.
    refused = api(live_central, headers, "GET", f"/hvs/v2/flavors/{row.id}")
    assert refused.status_code == 409 and refused.json()["code"] == "flavor-signature-invalid"

    # The agent down: a clean 409 naming why, and the host's status.
    golden.stop()
    down = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": host["id"]})
    assert down.status_code == 409 and down.json()["code"] == "agent-unreachable", down.text
    assert api(live_central, headers, "GET", f"/hvs/v2/hosts/{host['id']}").json()["status"] == "unreachable"
    assert "Traceback" not in live_central.output(), live_central.output()


# --- a compromised agent: the real agent's answers, altered on the way ------------------------------------


class AlteredAgent(AgentClient):
    """The real agent over mTLS, with one of its answers changed the way a compromised host would."""

    def __init__(self, connection_string: str, keys: KeyFiles, alter: str, other_aik_pem: str | None = None):
        super().__init__(connection_string, keys)
        self.alter, self.other_aik_pem = alter, other_aik_pem
        self.previous: QuoteResponse | None = None

    def aik(self) -> dict[str, Any]:
        body = super().aik()
        if self.alter == "other-aik":
            body["aik_certificate"] = self.other_aik_pem
        return body

    def quote(self, nonce: bytes, pcrs: list[int], banks: list[str]) -> QuoteResponse:
        if self.alter == "replay" and self.previous is not None:
            return self.previous
        if self.alter == "pcr-outside-selection":
            answer = super().quote(nonce, pcrs[:-1], banks)
            values = copy.deepcopy(answer.pcrs)
            values["sha256"][str(pcrs[-1])] = "00" * 32  # a value the quote does not cover
            return replace(answer, pcrs=values)
        answer = super().quote(nonce, pcrs, banks)
        self.previous = answer
        if self.alter == "pcr-value":
            values = copy.deepcopy(answer.pcrs)
            values["sha256"]["4"] = hashlib.sha256(b"what the verifier should see").hexdigest()
            return replace(answer, pcrs=values)
        return answer


def _certificate(subject: str, public_key: Any, issuer_cert: x509.Certificate | None, issuer_key: Any) -> str:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    cert = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .sign(issuer_key, hashes.SHA384())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_compromised_agent_is_refused_with_named_faults(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, inproc_app: Flask
) -> None:
    headers = admin_headers(live_central, central_state)
    host_id = _register(live_central, headers, "golden", golden.connection_string)["id"]
    keys = KeyFiles(central_state.config.keys_dir)
    privacy = load_issuer(keys.privacy_ca_cert, keys.privacy_ca_key)
    # A certificate from OUR Privacy CA, but for a key that is not the one that signs the agent's quotes.
    impostor = _certificate("impostor AIK", rsa.generate_private_key(65537, 2048).public_key(),
                            privacy.certificate, privacy.key)  # fmt: skip

    expected = {
        "other-aik": "signature-invalid",
        "replay": "quote-nonce-mismatch",
        "pcr-outside-selection": "pcr-not-quoted",
        "pcr-value": "pcr-digest-mismatch",
    }
    with inproc_app.app_context():
        for alter, fault in expected.items():
            client = AlteredAgent(golden.connection_string, keys, alter, impostor)
            with inproc_app.extensions["secl.db"].sessions() as session:
                host = session.get(Host, host_id)
                if alter == "replay":  # the first quote is genuine, the second replays it
                    verifier.collect_evidence(session, services_of(inproc_app), host, client=client)
                with pytest.raises(verifier.EvidenceInvalid) as refused:
                    verifier.collect_evidence(session, services_of(inproc_app), host, client=client)
                assert refused.value.details == {"fault": fault}, (alter, refused.value.message)
        with inproc_app.extensions["secl.db"].sessions() as session:
            host = session.get(Host, host_id)
            assert host.status == "evidence-invalid" and host.status_detail.startswith("pcr-digest-mismatch")

    shown = api(live_central, headers, "GET", f"/hvs/v2/hosts/{host_id}").json()
    assert shown["status"] == "evidence-invalid"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_aik_not_issued_by_our_privacy_ca_fails_aik_certificate_trusted(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, inproc_app: Flask
) -> None:
    headers = admin_headers(live_central, central_state)
    host_id = _register(live_central, headers, "golden", golden.connection_string)["id"]
    assert api(live_central, headers, "POST", "/hvs/v2/flavors/from-host",
               json={"host_id": host_id}).status_code == 201  # fmt: skip
    keys = KeyFiles(central_state.config.keys_dir)
    with inproc_app.app_context(), inproc_app.extensions["secl.db"].sessions() as session:
        host = session.get(Host, host_id)
        genuine = AgentClient(golden.connection_string, keys).aik()["aik_certificate"]
        aik_key = x509.load_pem_x509_certificate(genuine.encode()).public_key()
        rogue_key = ec.generate_private_key(ec.SECP384R1())
        rogue = _certificate("rogue CA", rogue_key.public_key(), None, rogue_key)
        # The real AIK (so the quote verifies), certified by someone else's CA.
        forged = _certificate("AIK", aik_key, x509.load_pem_x509_certificate(rogue.encode()), rogue_key)
        client = AlteredAgent(golden.connection_string, keys, "other-aik", forged)
        evidence = verifier.collect_evidence(session, services_of(inproc_app), host, client=client)
        now = datetime.now(UTC)
        assert not verifier.aik_trusted(services_of(inproc_app), evidence, now)
        verdict = judge(session, services_of(inproc_app), host, evidence, now)
        assert verdict.trusted is False
        faults = [f["fault_name"].rsplit(".", 1)[-1] for r in verdict.trust_report["results"]
                  for f in r.get("faults") or []]  # fmt: skip
        assert "AikCertificateNotTrusted" in faults and set(faults) == {"AikCertificateNotTrusted"}, faults


@pytest.mark.parametrize("backend", ["sqlite"])
def test_agent_tls_name_mismatch_and_unknown_hosts(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    headers = admin_headers(live_central, central_state)
    # The agent's certificate names localhost, not 127.0.0.1: the central does not talk to it.
    by_ip = _register(live_central, headers, "by-ip", f"intel:https://127.0.0.1:{golden.port}")
    refused = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": by_ip["id"]})
    assert refused.status_code == 409 and refused.json()["code"] == "agent-tls-untrusted", refused.text
    assert (
        api(live_central, headers, "GET", f"/hvs/v2/hosts/{by_ip['id']}").json()["status"] == "untrusted-tls"
    )
    missing = api(
        live_central,
        headers,
        "POST",
        "/hvs/v2/reports",
        json={"host_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert missing.status_code == 404 and missing.json()["code"] == "host-not-found"
    unregistered = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host",
                       json={"connection_string": "intel:https://nowhere.example:1443"})  # fmt: skip
    assert unregistered.status_code == 404 and unregistered.json()["code"] == "host-not-found"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_one_attestation_makes_one_mtls_connection_to_the_agent(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    with AgentClient(golden.connection_string, KeyFiles(central_state.config.keys_dir)) as client:
        client.host_info()
        client.aik()
        answer = client.quote(os.urandom(32), list(range(24)), ["SHA256"])
        assert answer.event_log
        pools = client._session.adapters["https://"].poolmanager.pools
        (key,) = pools.keys()
        pool = pools[key]
        # urllib3 counts the connections it opened: the agent kept the first one alive for all three calls.
        assert pool.num_connections == 1 and pool.num_requests == 3
