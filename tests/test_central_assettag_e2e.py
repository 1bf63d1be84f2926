"""Asset tags end to end, with real processes: swtpm, `secl-trustagent run` over mTLS, the central under
gunicorn, the `secl` CLI against it, and a report worker.

The golden host (a swtpm holding a real OVMF boot, its agent set up through the central, which defined the
asset-tag NV index) gets flavors from itself, then:

- without a tag it attests trusted (ASSET_TAG is REQUIRED_IF_DEFINED, and nothing defines it);
- `secl tags create` + `secl tags deploy`: the agent writes the certificate's SHA-384 into NV 0x01C10110,
  the ASSET_TAG flavor is stored, the host is trusted, and the report, the JWT, `secl report` and the host
  search (`?trusted=true&tag=country=DE`) carry the tags; a worker re-uses the report for unchanged evidence;
- another digest written into the NV index (the TPM owner, behind the central's back) -> AssetTagMismatch;
- a revoked certificate -> TagCertificateRevoked (the worker re-evaluates instead of re-using);
- a deleted certificate (and with it the ASSET_TAG flavor) while the TPM still holds the tag ->
  RequiredFlavorTypeMissing for ASSET_TAG;
- an expired certificate -> TagCertificateExpired; a certificate for another hardware UUID is not deployed;
- an agent that reports another tag digest (or none) than the one its quote binds is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from flask import Flask

from secl.central import create_app
from secl.central.context import services_of
from secl.central.evidence import verify as verifier
from secl.central.evidence.agentclient import AgentClient, QuoteResponse
from secl.central.keyfiles import KeyFiles
from secl.central.reports.worker import Worker
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_report_models import Report
from secl.central.tags import store as tagstore
from secl.cli.main import cli
from secl.core.assettag import ASSET_TAG_NV_INDEX, TagSelection
from secl.core.attestation import verify_attestation_result
from secl.host.tpm import TPMAdapter
from tests.agent_harness import HARDWARE_UUID, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral

pytestmark = pytest.mark.swtpm

TAGS = {"country": "DE", "rack": "R12"}


@pytest.fixture
def inproc_app(central_state: CentralState) -> Iterator[Flask]:
    """The same central in this process (same database and keys), for the worker and for certificates
    with a validity of seconds."""
    app = create_app(central_state.config)
    yield app
    app.extensions["secl.db"].dispose()


class Secl:
    """The `secl` CLI, logged in to the live central, with its own HOME."""

    def __init__(self, live: LiveCentral, central: CentralState, home: Path) -> None:
        self.home = home
        home.mkdir(exist_ok=True)
        password = home / "password"
        password.write_text(central.admin_password + "\n")
        login = self("login", "--url", live.url, "--ca-file", str(live.ca_file),
                     "--username", central.admin_username, "--password-file", str(password))  # fmt: skip
        assert login.exit_code == 0, login.output

    def __call__(self, *args: str) -> Result:
        env = {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config")}
        return CliRunner().invoke(cli, list(args), env=env)

    def json(self, *args: str) -> Any:
        result = self(*args, "-o", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def _faults(report: dict[str, Any]) -> list[str]:
    return [
        f["fault_name"].rsplit(".", 1)[-1]
        for r in report["trust_report"]["results"]
        for f in r.get("faults") or []
    ]


def _report(live: LiveCentral, headers: dict[str, str], host_id: str) -> dict[str, Any]:
    made = api(live, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert made.status_code == 201, made.text
    return made.json()


def _host_names(live: LiveCentral, headers: dict[str, str], query: list[tuple[str, str]]) -> list[str]:
    found = api(live, headers, "GET", "/hvs/v2/hosts", params=query)
    assert found.status_code == 200, found.text
    return [h["host_name"] for h in found.json()["hosts"]]


def _golden_with_flavors(live: LiveCentral, headers: dict[str, str], golden: ProvisionedAgent) -> str:
    host = api(live, headers, "POST", "/hvs/v2/hosts",
               json={"host_name": "golden", "connection_string": golden.connection_string}).json()  # fmt: skip
    imported = api(live, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host["id"]})
    assert imported.status_code == 201, imported.text
    return host["id"]


def _write_nv(golden: ProvisionedAgent, digest: bytes) -> None:
    """What the TPM owner can do on the host: write the index directly (the agent lets go of the swtpm)."""
    golden.stop()
    with TPMAdapter(golden.tcti) as tpm:
        tpm.nv_write(ASSET_TAG_NV_INDEX, digest)
    golden.start()


def _manifest_tag(app: Flask, report_id: str) -> bytes | None:
    """The asset-tag digest in the host manifest a stored report was judged on."""
    with app.extensions["secl.db"].sessions() as session:
        encoded = session.get(Report, report_id).host_manifest.get("asset_tag_digest")
    return None if encoded is None else base64.b64decode(encoded)


def _work_once(app: Flask) -> dict[str, Any]:
    with app.app_context():
        (outcome,) = Worker(services_of(app), name="test", refresh=False).run_once()
    assert outcome.status == "done", outcome
    return outcome.result


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_tags_deploy_bind_and_invalidate(
    live_central: LiveCentral,
    central_state: CentralState,
    golden: ProvisionedAgent,
    inproc_app: Flask,
    tmp_path: Path,
) -> None:
    headers = admin_headers(live_central, central_state)
    host_id = _golden_with_flavors(live_central, headers, golden)
    signing_cert = x509.load_pem_x509_certificate(
        KeyFiles(central_state.config.keys_dir).report_signing_cert.read_bytes()
    )

    # No tag (setup defined the index with zeros): trusted, no ASSET_TAG part, no tags.
    untagged = _report(live_central, headers, host_id)
    assert untagged["trusted"] is True, _faults(untagged)
    assert "ASSET_TAG" not in untagged["flavors_trust"] and untagged["tags"] == {}
    assert _manifest_tag(inproc_app, untagged["id"]) is None
    assert verify_attestation_result(untagged["jwt"], signing_cert).tags == {}

    # Create and deploy through the CLI.
    secl = Secl(live_central, central_state, tmp_path / "home")
    cert = secl.json("tags", "create", "--host", "golden", "--tag", "country=DE", "--tag", "rack=R12")
    assert cert["hardware_uuid"] == HARDWARE_UUID and cert["selection_content"] == [
        {"name": "country", "value": "DE"}, {"name": "rack", "value": "R12"}
    ]  # fmt: skip
    deployed = secl.json("tags", "deploy", cert["id"])
    assert deployed["trusted"] is True and deployed["tags"] == TAGS, deployed
    assert deployed["host_id"] == host_id and deployed["attestation_error"] is None
    report = api(live_central, headers, "GET", f"/hvs/v2/reports/{deployed['report_id']}").json()
    assert report["tags"] == TAGS and report["flavors_trust"]["ASSET_TAG"]["trust"] is True
    rules = {r["rule"]["rule_name"].rsplit(".", 1)[-1] for r in report["flavors_trust"]["ASSET_TAG"]["rules"]}
    assert {"TagCertificateTrusted", "AssetTagMatches", "FlavorTrusted"} <= rules
    assert _manifest_tag(inproc_app, report["id"]) == bytes.fromhex(cert["sha384"])  # bound by the quote
    claims = verify_attestation_result(report["jwt"], signing_cert)
    assert claims.trusted and dict(claims.tags) == TAGS and claims.subject == HARDWARE_UUID
    flavor = api(live_central, headers, "GET", f"/hvs/v2/flavors/{deployed['flavor_id']}").json()["flavor"]
    assert flavor["meta"]["description"]["flavor_part"] == "ASSET_TAG"
    assert flavor["external"]["asset_tag"]["tag_certificate"]["fingerprint_sha384"] == cert["sha384"]

    # `secl report` shows the tags; the host search selects by trust and tags.
    shown = secl("report", "golden")
    assert shown.exit_code == 0 and "tags: country=DE, rack=R12" in shown.stdout, shown.output
    assert _host_names(
        live_central, headers, [("trusted", "true"), ("tag", "country=DE"), ("tag", "rack=R12")]
    ) == ["golden"]
    assert _host_names(live_central, headers, [("tag", "country=FR")]) == []
    # The agent's setup registered the same machine as "localhost": never attested, so not trusted.
    assert _host_names(live_central, headers, [("trusted", "false")]) == ["localhost"]
    listed = secl("hosts", "list", "--trusted", "--tag", "country=DE")
    assert listed.exit_code == 0 and "golden" in listed.stdout and "country=DE, rack=R12" in listed.stdout
    assert [c["id"] for c in secl.json("tags", "list", "--host", "golden")] == [cert["id"]]

    # The worker: a full report, then the same one re-used for unchanged evidence, tags included.
    for reused in (False, True):
        assert (
            api(
                live_central, headers, "POST", "/hvs/v2/reports/queue", json={"host_ids": [host_id]}
            ).status_code
            == 202
        )
        result = _work_once(inproc_app)
        assert result["trusted"] is True and result["reused"] is reused, result
        assert (
            api(live_central, headers, "GET", f"/hvs/v2/reports/{result['report_id']}").json()["tags"] == TAGS
        )

    # The TPM owner writes another digest: the quote binds it, and it is not the certificate's.
    _write_nv(golden, hashlib.sha384(b"some other certificate").digest())
    mismatch = _report(live_central, headers, host_id)
    assert mismatch["trusted"] is False and _faults(mismatch) == ["AssetTagMismatch"], _faults(mismatch)
    assert mismatch["tags"] == {} and verify_attestation_result(mismatch["jwt"], signing_cert).tags == {}
    assert _host_names(live_central, headers, [("trusted", "true"), ("tag", "country=DE")]) == []
    assert _host_names(live_central, headers, [("trusted", "false")]) == ["golden", "localhost"]

    # Deploying again puts the digest back.
    again = secl.json("tags", "deploy", cert["id"])
    assert again["trusted"] is True and again["replaced_flavor_ids"] == [deployed["flavor_id"]]

    # Revoked: the revocation queues the host; the worker evaluates afresh (the basis changed).
    revoked = secl("tags", "revoke", cert["id"])
    assert revoked.exit_code == 0, revoked.output
    jobs = api(live_central, headers, "GET", "/hvs/v2/report-jobs", params={"hostId": host_id}).json()
    assert jobs["jobs"][0]["reason"] == "tag-revoked" and jobs["jobs"][0]["status"] == "queued", jobs
    result = _work_once(inproc_app)
    assert result["reused"] is False and result["trusted"] is False, result
    after = api(live_central, headers, "GET", f"/hvs/v2/reports/{result['report_id']}").json()
    assert _faults(after) == ["TagCertificateRevoked"] and after["tags"] == {}
    refused = secl("tags", "deploy", cert["id"])
    assert refused.exit_code == 4 and "tag-certificate-revoked" in refused.stderr

    # Deleted (with its ASSET_TAG flavor) while the TPM still holds the tag: nothing vouches for it.
    assert secl("tags", "delete", cert["id"]).exit_code == 0
    assert api(live_central, headers, "GET", f"/hvs/v2/flavors/{again['flavor_id']}").status_code == 404
    orphan = _report(live_central, headers, host_id)
    assert orphan["trusted"] is False and _faults(orphan) == ["RequiredFlavorTypeMissing"], _faults(orphan)
    assert orphan["flavors_trust"]["ASSET_TAG"]["trust"] is False

    # Cleared from the central: NV back to zeros, the host untagged and trusted again.
    cleared = secl("tags", "clear", "golden", "-o", "json")
    assert cleared.exit_code == 0, cleared.output + cleared.stderr
    answer = json.loads(cleared.stdout)
    assert answer["trusted"] is True and answer["attestation_error"] is None, answer
    assert _manifest_tag(inproc_app, answer["report_id"]) is None  # the agent now quotes without a tag
    untagged = api(live_central, headers, "GET", f"/hvs/v2/reports/{answer['report_id']}").json()
    assert untagged["tags"] == {} and "ASSET_TAG" not in untagged["flavors_trust"]
    bad = api(live_central, headers, "POST", "/hvs/v2/rpc/clear-tag", json={"host_id": "not-a-uuid"})
    assert bad.status_code == 400
    assert "Traceback" not in live_central.output()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_expired_certificate_and_another_hosts_certificate(
    live_central: LiveCentral,
    central_state: CentralState,
    golden: ProvisionedAgent,
    inproc_app: Flask,
) -> None:
    headers = admin_headers(live_central, central_state)
    host_id = _golden_with_flavors(live_central, headers, golden)
    assert _report(live_central, headers, host_id)["trusted"] is True  # the central learns the hardware UUID

    # A certificate for another machine cannot be deployed to this host, nor anywhere (no such host).
    other_uuid = "00000000-1111-4222-8333-444444444444"
    other = api(live_central, headers, "POST", "/hvs/v2/tag-certificates",
                json={"hardware_uuid": other_uuid, "selection_content": [{"name": "country", "value": "FR"}]}).json()  # fmt: skip
    deploy = "/hvs/v2/rpc/deploy-tag-certificate"
    wrong = api(
        live_central, headers, "POST", deploy, json={"certificate_id": other["id"], "host_id": host_id}
    )
    assert wrong.status_code == 409 and wrong.json()["code"] == "tag-certificate-wrong-host", wrong.text
    nowhere = api(live_central, headers, "POST", deploy, json={"certificate_id": other["id"]})
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "host-not-found", nowhere.text
    assert _report(live_central, headers, host_id)["tags"] == {}  # nothing was written

    # A certificate valid for a few seconds: trusted while valid, TagCertificateExpired after.
    start = datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(seconds=8)
    with inproc_app.app_context(), inproc_app.extensions["secl.db"].sessions() as session:
        record = tagstore.issue(session, services_of(inproc_app).keys.tag_ca, hardware_uuid=HARDWARE_UUID, actor="test",
                                selection=TagSelection.of(TAGS), not_before=start, not_after=end)  # fmt: skip
        session.commit()
        short_id, digest = record.id, bytes.fromhex(record.sha384)
    deployed = api(live_central, headers, "POST", deploy, json={"certificate_id": short_id})
    assert deployed.status_code == 200 and deployed.json()["trusted"] is True, deployed.text
    assert _manifest_tag(inproc_app, deployed.json()["report_id"]) == digest
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.5)
    expired = _report(live_central, headers, host_id)
    assert expired["trusted"] is False and _faults(expired) == ["TagCertificateExpired"], _faults(expired)
    assert expired["tags"] == {}
    late = api(live_central, headers, "POST", deploy, json={"certificate_id": short_id})
    assert late.status_code == 409 and late.json()["code"] == "tag-certificate-expired"
    assert "Traceback" not in live_central.output()


class TagLiar(AgentClient):
    """The real agent over mTLS, its quote answer's tag digest changed on the way (a compromised host)."""

    def __init__(self, connection_string: str, keys: KeyFiles, reported: bytes | None) -> None:
        super().__init__(connection_string, keys)
        self.reported = reported

    def quote(self, nonce: bytes, pcrs: list[int], banks: list[str]) -> QuoteResponse:
        return dataclasses.replace(super().quote(nonce, pcrs, banks), asset_tag=self.reported)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_tag_digest_the_quote_does_not_bind_is_refused(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, inproc_app: Flask
) -> None:
    headers = admin_headers(live_central, central_state)
    host_id = _golden_with_flavors(live_central, headers, golden)
    assert _report(live_central, headers, host_id)["trusted"] is True
    cert = api(live_central, headers, "POST", "/hvs/v2/tag-certificates",
               json={"hardware_uuid": HARDWARE_UUID, "selection_content": [{"name": "country", "value": "DE"}]}).json()  # fmt: skip
    deployed = api(
        live_central,
        headers,
        "POST",
        "/hvs/v2/rpc/deploy-tag-certificate",
        json={"certificate_id": cert["id"]},
    )
    assert deployed.status_code == 200 and deployed.json()["trusted"] is True, deployed.text
    keys = KeyFiles(central_state.config.keys_dir)
    other = hashlib.sha384(b"the certificate of a host in another country").digest()
    services = services_of(inproc_app)
    with inproc_app.app_context(), inproc_app.extensions["secl.db"].sessions() as session:
        host = session.get(Host, host_id)
        genuine = verifier.collect_evidence(
            session,
            services,
            host,
            client=TagLiar(golden.connection_string, keys, bytes.fromhex(cert["sha384"])),
        )
        assert genuine.built.manifest.asset_tag_digest == bytes.fromhex(cert["sha384"])  # the control case
        # Claiming another tag, or none, with a quote bound to the real one: the qualifying data differs.
        for reported in (other, None):
            with pytest.raises(verifier.EvidenceInvalid) as refused:
                verifier.collect_evidence(
                    session, services, host, client=TagLiar(golden.connection_string, keys, reported)
                )
            assert refused.value.details == {"fault": "quote-nonce-mismatch"}, refused.value.message
