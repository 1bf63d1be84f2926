"""Application integrity on the trust agent: manifests deployed for the next boot, measuring on request,
default manifests, and the measurements a quote carries — on a real swtpm.

The quote test runs the installed ``secl-measure`` (as the initrd does) against a tree standing for the
host's root, extending the swtpm's PCR 15; the agent's quote must then carry the Measurement XML and the
PCR 15 events, and those events must replay to the PCR 15 value the quote signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from werkzeug.test import Client

from secl.core.appeventlog import parse_event_log, replay
from secl.core.appmanifest import MAX_MANIFEST_BYTES, parse_manifest
from secl.core.eventlog import pcr_banks_from_json
from secl.core.hashalg import HashAlg
from secl.core.measurementlog import parse_measurement_xml
from secl.core.pcrevents import PcrRef
from secl.core.quote import verify_quote
from secl.core.tpm import load_ak_public
from secl.host.measure import measure
from secl.trustagent.agenttpm import AgentTPM
from secl.trustagent.api import create_app
from secl.trustagent.appintegrity import install_default_manifests, render_default_manifest
from secl.trustagent.config import TrustAgentConfig
from tests.corpus import corpus_path
from tests.firmware_boot import OVMF_LOG, boot
from tests.inprocess_agent import agent_config
from tests.measure_command import run
from tests.swtpm import RunningSwtpm

pytestmark = pytest.mark.swtpm

UUID = "0f6a4b0e-5a57-4f0e-9d3a-2f0c1b7c9a11"
MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><Manifest xmlns="lib:wml:manifests:1.0" Label="app" '
    f'Uuid="{UUID}" DigestAlg="SHA384"><Dir Path="/opt/app/bin" Include=".*" Exclude=""/>'
    '<File Path="/opt/app/bin/.*" SearchType="regex"/></Manifest>'
)


@dataclass
class Agent:
    client: Client
    config: TrustAgentConfig
    root: Path
    tpm: AgentTPM


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "sysroot"
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/bin/app").write_bytes(b"application")
    (root / "opt/app/bin/helper.sh").write_bytes(b"#!/bin/sh\n")
    return root


@pytest.fixture
def agent(swtpm: RunningSwtpm, tmp_path: Path, host_root: Path) -> Iterator[Agent]:
    boot(swtpm.tcti, corpus_path(OVMF_LOG).read_bytes())
    config = replace(
        agent_config(tmp_path, swtpm.tcti),
        manifest_dir=str(tmp_path / "manifests"),
        measurement_dir=tmp_path / "run/measurements",
        application_event_log=tmp_path / "run/measure-log.json",
        measurement_root=host_root,
    )
    tpm = AgentTPM.from_config(config)
    tpm.start()
    try:
        yield Agent(create_app(config, tpm).test_client(), config, host_root, tpm)
    finally:
        tpm.close()


def _post_xml(agent: Agent, path: str, body: str | bytes) -> tuple[int, dict | str]:
    response = agent.client.post(path, data=body, headers={"Content-Type": "application/xml"})
    text = response.get_data(as_text=True)
    if response.mimetype == "application/json":
        return response.status_code, response.json
    return response.status_code, text


def test_deploy_stores_the_manifest_for_the_next_boot(agent: Agent) -> None:
    status, body = _post_xml(agent, "/v2/deploy/manifest", MANIFEST)
    assert status == 200, body
    assert body == {"label": "app", "uuid": UUID, "digest_alg": "SHA384"}
    stored = agent.config.manifest_path / f"manifest_{UUID}.xml"
    assert stored.read_text() == MANIFEST
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    # The same Uuid again replaces it (a new version of the manifest for the next boot).
    status, _ = _post_xml(agent, "/v2/deploy/manifest", MANIFEST.replace('Include=".*"', 'Include="app"'))
    assert status == 200 and 'Include="app"' in stored.read_text()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not xml", "manifest-malformed"),
        (
            '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "x">]><Manifest xmlns="lib:wml:manifests:1.0" '
            'Label="&e;" Uuid="' + UUID + '" DigestAlg="SHA384"/>',
            "manifest-xml-forbidden",
        ),
        (MANIFEST.replace(f'Uuid="{UUID}"', ""), "manifest-uuid-missing"),
        (
            MANIFEST.replace('Label="app"', 'Label="ISecL_Default_Application_Flavor_v9_TPM2.0"'),
            "manifest-label-reserved",
        ),
        (MANIFEST.replace('Path="/opt/app/bin"', 'Path="../etc"'), "manifest-path-invalid"),
        (MANIFEST.replace('DigestAlg="SHA384"', 'DigestAlg="MD5"'), "digest-alg-unsupported"),
    ],
)
def test_deploy_refuses_bad_manifests(agent: Agent, body: str, code: str) -> None:
    status, answer = _post_xml(agent, "/v2/deploy/manifest", body)
    assert status == 400, answer
    assert isinstance(answer, dict) and answer["code"] == code, answer
    assert not list(agent.config.manifest_path.glob("*.xml"))


def test_deploy_refuses_to_clobber_a_default_manifest(agent: Agent) -> None:
    ((path, outcome),) = install_default_manifests(agent.config.manifest_path)
    assert outcome == "installed"
    default = parse_manifest(path.read_bytes())
    before = path.read_bytes()
    status, answer = _post_xml(agent, "/v2/deploy/manifest", MANIFEST.replace(UUID, default.uuid))
    assert status == 409 and isinstance(answer, dict) and answer["code"] == "manifest-clobbers-default", (
        answer
    )
    assert path.read_bytes() == before


def test_a_manifest_of_many_files_deploys_and_a_huge_body_is_refused(agent: Agent) -> None:
    # 3,000 files (~150 KB): more than the 64 KiB JSON routes take, well within the manifest parser's cap.
    files = "".join(f'<File Path="/opt/app/lib/module-{n:05d}.so"/>' for n in range(3000))
    many = MANIFEST.replace("</Manifest>", files + "</Manifest>")
    assert len(many) > 64 * 1024
    status, answer = _post_xml(agent, "/v2/deploy/manifest", many)
    assert status == 200, answer
    huge = MANIFEST.replace("</Manifest>", "<!--" + "x" * MAX_MANIFEST_BYTES + "--></Manifest>")
    status, answer = _post_xml(agent, "/v2/deploy/manifest", huge)
    assert status == 413, answer
    status, answer = _post_xml(agent, "/v2/host/application-measurement", huge)
    assert status == 413, answer


def test_application_measurement_measures_now(agent: Agent) -> None:
    status, xml = _post_xml(agent, "/v2/host/application-measurement", MANIFEST)
    assert status == 200, xml
    log = parse_measurement_xml(xml)
    assert (log.label, log.uuid) == ("app", UUID)
    assert [e.path for e in log.entries] == ["/opt/app/bin", "/opt/app/bin/app", "/opt/app/bin/helper.sh"]
    content = {e.path: e.digest for e in log.entries}
    assert content["/opt/app/bin/app"] == hashlib.sha384(b"application").hexdigest()
    assert log.replay() == log.cumulative_hash
    # A manifest without a Uuid (as SecL's central posts them) gets one.
    status, xml = _post_xml(agent, "/v2/host/application-measurement", MANIFEST.replace(f'Uuid="{UUID}"', ""))
    assert status == 200 and parse_measurement_xml(xml).uuid not in ("", UUID)
    # Nothing was extended or logged: measuring on request leaves PCR 15 alone.
    assert not agent.config.application_event_log.exists()


def test_application_measurement_names_a_missing_file(agent: Agent) -> None:
    body = MANIFEST.replace("</Manifest>", '<File Path="/opt/app/bin/gone"/></Manifest>')
    status, answer = _post_xml(agent, "/v2/host/application-measurement", body)
    assert status == 409 and isinstance(answer, dict), answer
    assert answer["code"] == "path-missing" and "/opt/app/bin/gone" in answer["message"]


def test_quote_carries_the_boot_measurements_and_they_replay(agent: Agent, swtpm: RunningSwtpm) -> None:
    manifests = agent.config.manifest_path
    manifests.mkdir()
    (manifests / f"manifest_{UUID}.xml").write_text(MANIFEST)
    # The swtpm serves one connection at a time: the agent lets go of it (and reopens it on the next
    # request) while secl-measure extends PCR 15, as the initrd does before the agent starts.
    agent.tpm.close()
    done = run(
        "--manifest-dir", manifests, "--root", agent.root, "--tcti", swtpm.tcti,
        "--output", agent.config.measurement_dir, "--event-log", agent.config.application_event_log,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nonce = os.urandom(16)
    response = agent.client.post("/v2/tpm/quote", json={"nonce": base64.b64encode(nonce).decode()})
    assert response.status_code == 200, response.json
    body = response.json
    (xml,) = body["tcb_measurements"]
    log = parse_measurement_xml(xml)
    assert (log.label, log.uuid) == ("app", UUID)
    aik = load_ak_public(agent.client.get("/v2/aik").json["aik"].encode())
    verified = verify_quote(
        aik, base64.b64decode(body["attest"]), base64.b64decode(body["signature"]),
        qualifying_data=hashlib.sha256(nonce).digest(), pcrs=pcr_banks_from_json(body["pcrs"]),
    )  # fmt: skip
    assert verified.pcrs is not None
    events = parse_event_log(json.dumps(body["measure_log"]).encode())
    (entry,) = events
    (event,) = entry.events
    assert event.tags == (f"app-{UUID}",)
    assert event.measurement == hashlib.sha256(bytes.fromhex(log.cumulative_hash)).hexdigest()
    assert replay(events)[PcrRef(15, "SHA256")] == verified.pcrs.values[HashAlg.SHA256][15]
    assert "measurement_error" not in body


def test_quote_says_why_measurements_are_missing(agent: Agent) -> None:
    agent.config.application_event_log.parent.mkdir(parents=True, exist_ok=True)
    agent.config.application_event_log.write_text("{not json")
    response = agent.client.post("/v2/tpm/quote", json={"nonce": base64.b64encode(b"n").decode()})
    assert response.status_code == 200, response.json
    assert response.json["tcb_measurements"] == [] and response.json["measure_log"] == []
    assert "measure-log.json" in response.json["measurement_error"]


def test_default_manifests_measure_the_installed_agent(tmp_path: Path) -> None:
    directory = tmp_path / "manifests"
    ((path, outcome),) = install_default_manifests(directory)
    assert outcome == "installed" and stat.S_IMODE(path.stat().st_mode) == 0o640
    manifest = parse_manifest(path.read_bytes())
    assert manifest.label.startswith("ISecL_Default_Application_Flavor_v") and manifest.uuid
    # Idempotent, and the Uuid is kept.
    assert install_default_manifests(directory) == [(path, "unchanged")]
    assert render_default_manifest("secl-trustagent.xml", manifest.uuid) == path.read_text()
    # Every path it names exists in this installation: measuring it against / leaves nothing out.
    result = measure(manifest, "/")
    paths = {e.path for e in result.log.entries}
    assert any(p.endswith("/server.py") for p in paths) and any(p.endswith("/secl-measure") for p in paths)
    assert any(p.endswith("module-setup.sh") for p in paths), sorted(paths)[:20]
    assert not result.skipped
