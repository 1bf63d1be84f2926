"""The trust agent's API on a real TPM (swtpm) that holds a real firmware's measurements.

The digests of a UEFI event log captured on this kind of machine (corpus ovmf/, OVMF under QEMU with a
swtpm vTPM) are extended into a fresh swtpm, and the agent is pointed at that log: the agent cannot tell it
from a booted host. A quote it returns must verify with secl.core.quote (qualifying data SHA-256(nonce)),
and the log it returns must replay to the quoted PCRs — the core of the end-to-end demo.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from secl.core.errors import QuoteError, ReplayError
from secl.core.eventlog import parse_event_log, pcr_banks_from_json
from secl.core.hashalg import HashAlg
from secl.core.quote import verify_quote
from secl.core.tpm import load_ak_public
from secl.host.tpm import TPMAdapter
from secl.trustagent.agenttpm import AgentTPM
from secl.trustagent.api import create_app
from tests.corpus import corpus_path
from tests.firmware_boot import OVMF_LOG
from tests.inprocess_agent import Agent, agent_config
from tests.swtpm import RunningSwtpm

pytestmark = pytest.mark.swtpm


def verify(agent: Agent, body: dict, nonce: bytes):
    aik = load_ak_public(agent.client.get("/v2/aik").json["aik"].encode())
    pcrs = pcr_banks_from_json(body["pcrs"])
    return verify_quote(
        aik,
        base64.b64decode(body["attest"]),
        base64.b64decode(body["signature"]),
        qualifying_data=hashlib.sha256(nonce).digest(),
        pcrs=pcrs,
    )


def test_quote_verifies_and_the_event_log_replays_to_the_quoted_pcrs(agent: Agent) -> None:
    nonce = os.urandom(20)
    body = agent.quote(nonce, pcrs=list(range(10)), pcrbanks=["SHA1", "SHA256"])
    verified = verify(agent, body, nonce)
    assert dict(verified.selection) == {HashAlg.SHA1: tuple(range(10)), HashAlg.SHA256: tuple(range(10))}
    assert body["pcr_banks"] == ["SHA1", "SHA256"]
    log_bytes = base64.b64decode(body["event_log"])
    assert log_bytes == corpus_path(OVMF_LOG).read_bytes()
    assert verified.pcrs is not None
    replayed = parse_event_log(log_bytes).verify(verified.pcrs.values)
    assert {event.pcr for event in replayed.events} == {0, 1, 2, 3, 4, 5, 6, 7, 9}
    assert body["aik_name"] == agent.client.get("/v2/aik").json["aik_name"]


def test_default_request_quotes_all_pcrs_of_every_active_bank(agent: Agent) -> None:
    nonce = b"n" * 32
    body = agent.quote(nonce)
    verified = verify(agent, body, nonce)
    assert dict(verified.selection) == {HashAlg.SHA1: tuple(range(24)), HashAlg.SHA256: tuple(range(24))}
    assert verified.pcrs is not None
    parse_event_log(base64.b64decode(body["event_log"])).verify(verified.pcrs.values)


def test_a_measurement_not_in_the_log_is_detected(agent: Agent) -> None:
    # Something the log does not record was measured into PCR 7 (a changed Secure Boot setting, say).
    # The swtpm serves one connection at a time: the agent lets go of it and reopens it on next use.
    agent.tpm.close()
    with TPMAdapter(agent.config.tcti) as tpm:
        tpm.extend_pcr(7, {HashAlg.SHA1: b"\x01" * 20, HashAlg.SHA256: b"\x01" * 32})
    nonce = b"fresh nonce"
    body = agent.quote(nonce, pcrs=[0, 7], pcrbanks=["sha256"])
    verified = verify(agent, body, nonce)  # the quote itself is genuine
    assert verified.pcrs is not None
    with pytest.raises(ReplayError) as err:
        parse_event_log(base64.b64decode(body["event_log"])).verify(verified.pcrs.values)
    assert "sha256:7" in str(err.value)
    with pytest.raises(QuoteError) as qerr:  # and a replayed quote fails on the nonce
        verify(agent, body, b"another nonce")
    assert qerr.value.code == "quote-nonce-mismatch"


def test_version_host_and_aik(agent: Agent) -> None:
    version = agent.client.get("/v2/version").json
    assert version["service"] == "TA" and version["api"] == "v2"
    host = agent.client.get("/v2/host").json
    assert host["hardware_uuid"] == "88888888-8887-1615-0115-071ba5a5a5a5"
    assert host["host_name"] == "agent.example" and host["pcr_banks"] == ["SHA1", "SHA256"]
    assert host["hardware_features"]["TPM"]["meta"] == {"tpm_version": "2.0", "pcr_banks": "SHA1_SHA256"}
    aik = agent.client.get("/v2/aik").json
    assert aik["aik"].startswith("-----BEGIN PUBLIC KEY-----") and aik["aik_certificate"] is None
    load_ak_public(base64.b64decode(aik["aik_public"]))  # a restricted signing key's TPM2B_PUBLIC
    agent.config.state_dir.mkdir()
    agent.config.state.aik_cert.write_text("-----BEGIN CERTIFICATE-----\n...\n")
    assert agent.client.get("/v2/aik").json["aik_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_the_aik_is_the_same_after_a_restart(agent: Agent) -> None:
    first = agent.client.get("/v2/aik").json["aik_public"]
    again = AgentTPM.from_config(agent.config)
    agent.tpm.close()  # one connection at a time: the swtpm has no resource manager
    try:
        assert base64.b64encode(again.aik().public).decode() == first
    finally:
        again.close()


NONCE = base64.b64encode(b"0123456789").decode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid-nonce"),
        ({"nonce": "not base64!"}, "invalid-nonce"),
        ({"nonce": ""}, "invalid-nonce"),
        ({"nonce": base64.b64encode(bytes(257)).decode()}, "invalid-nonce"),
        ({"nonce": 12}, "invalid-nonce"),
        ({"nonce": NONCE, "pcrs": []}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": [24]}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": [-1]}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": [1, 1]}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": ["0"]}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": [True]}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrs": 0}, "invalid-pcrs"),
        ({"nonce": NONCE, "pcrbanks": []}, "invalid-pcr-banks"),
        ({"nonce": NONCE, "pcrbanks": ["MD5"]}, "invalid-pcr-banks"),
        ({"nonce": NONCE, "pcrbanks": ["SHA1", "sha1"]}, "invalid-pcr-banks"),
        ({"nonce": NONCE, "pcrbanks": "SHA1"}, "invalid-pcr-banks"),
        ({"nonce": NONCE, "pcrbanks": ["SHA384"]}, "pcr-bank-not-active"),
        ({"nonce": NONCE, "extra": 1}, "unknown-field"),
        ([NONCE], "invalid-json"),
    ],
)
def test_bad_quote_requests_are_400_with_a_code(agent: Agent, body: object, code: str) -> None:
    response = agent.client.post("/v2/tpm/quote", json=body)
    assert response.status_code == 400 and response.json["code"] == code, response.json
    assert response.json["message"]


def test_every_error_is_json(agent: Agent) -> None:
    cases = [
        (agent.client.post("/v2/tpm/quote", data=b"{not json", content_type="application/json"), 400),
        (agent.client.post("/v2/tpm/quote", data=b"x" * 70_000, content_type="application/json"), 413),
        (agent.client.get("/v2/tpm/quote"), 405),
        (agent.client.get("/v2/nothing"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status
        assert response.is_json and response.json["code"] and response.json["message"]


def test_missing_event_log_is_reported_not_invented(agent: Agent, tmp_path: Path) -> None:
    nonce = b"nonce"
    app = create_app(replace(agent.config, event_log_path=tmp_path / "none"), agent.tpm)
    response = app.test_client().post("/v2/tpm/quote", json={"nonce": base64.b64encode(nonce).decode()})
    assert response.status_code == 200
    assert response.json["event_log"] is None and "cannot read" in response.json["event_log_error"]


def test_a_tpm_that_goes_away_is_503_with_its_code(agent: Agent, swtpm: RunningSwtpm) -> None:
    agent.quote(b"before")
    # Shut the TPM down through swtpm's control channel: the connection the agent holds dies.
    subprocess.run(
        ["swtpm_ioctl", "--tcp", f"127.0.0.1:{swtpm.ctrl_port}", "-s"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    response = agent.client.post("/v2/tpm/quote", json={"nonce": NONCE})
    assert response.status_code == 503 and response.json["code"] == "tpm-unreachable", response.json
    # It stays unavailable (the agent tries to reconnect on each request) and says so each time.
    for path in ("/v2/aik", "/v2/host"):
        again = agent.client.get(path)
        assert again.status_code == 503 and again.json["code"] == "tpm-unreachable", again.json


def test_no_tpm_at_all_is_503(tmp_path: Path) -> None:
    config = agent_config(tmp_path, "swtpm:host=127.0.0.1,port=1")
    client = create_app(config, AgentTPM.from_config(config)).test_client()
    response = client.get("/v2/host")
    assert response.status_code == 503 and response.json["code"] == "tpm-unreachable"
    assert "TPM" in response.json["message"]
    assert client.get("/v2/version").status_code == 200  # what needs no TPM still answers
