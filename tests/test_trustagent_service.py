"""The trust agent as a service: `setup` against a live central, `run` as a real process over mutual TLS
with Type=notify readiness and a clean SIGTERM, the systemd unit, and the example configuration.

The agent runs as ``python -m secl.trustagent.cli`` (the console script ``secl-trustagent`` calls the same
``main``) against a fresh swtpm, and the central under real gunicorn (tests/live_central.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import secl.trustagent
from secl.central.keyfiles import KeyFiles
from secl.core.eventlog import parse_event_log, pcr_banks_from_json
from secl.core.quote import verify_quote
from secl.core.tpm import load_ak_public
from secl.host.tpm import TPMAdapter
from secl.trustagent.config import TrustAgentConfig, load_config
from tests.agent_process import (
    AGENT,
    admin_headers,
    agent,
    agent_env,
    enrollment_token,
    free_port,
    setup_args,
    start_agent,
    trust_the_swtpm_ek_ca,
)
from tests.central_fixtures import CentralState
from tests.corpus import corpus_path
from tests.live_central import LiveCentral
from tests.swtpm import RunningSwtpm

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "secl-trustagent.service"
EXAMPLE_CONFIG = Path(secl.trustagent.__file__).parent / "trustagent.example.toml"
OVMF_LOG = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"


# --- the unit and the example configuration ------------------------------------------------------------


def _verify_unit(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )


def test_unit_passes_systemd_analyze_verify_without_any_warning(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    result = _verify_unit(unit)
    # An unknown key only warns with exit status 0: any output on stderr is a failure.
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_systemd_analyze_verify_does_report_a_bad_key(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("[Service]\n", "[Service]\nNoSuchSetting=1\n"))
    assert "NoSuchSetting" in _verify_unit(unit).stderr


def test_unit_is_notify_runs_what_the_tests_run_and_reaches_only_the_tpm() -> None:
    lines = UNIT.read_text().splitlines()
    (exec_start,) = [line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert argv[0] == "/usr/bin/python3" and argv[1:] == [*AGENT[1:], "run"]
    for setting in ("Type=notify", "NotifyAccess=main", "PrivateDevices=no", "DevicePolicy=closed",
                    "DeviceAllow=char-tpmrm rw", "ProtectSystem=strict", "NoNewPrivileges=yes"):  # fmt: skip
        assert setting in lines, setting


def test_example_config_loads_and_equals_the_defaults() -> None:
    assert load_config(EXAMPLE_CONFIG, environ={}) == TrustAgentConfig()


def test_example_config_documents_every_setting_with_its_default() -> None:
    commented = "\n".join(
        line[1:] for line in EXAMPLE_CONFIG.read_text().splitlines() if line.startswith("#") and " = " in line
    )
    values = tomllib.loads(commented)
    assert set(values) == {f.name for f in fields(TrustAgentConfig)}
    assert load_config(EXAMPLE_CONFIG, environ={}, overrides=values) == TrustAgentConfig()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('tcti = "tabrmd"\nlisten = "127.0.0.1:9443"\n')
    config = load_config(file, environ={"SECL_TRUSTAGENT_LISTEN": "[::1]:2443"})
    assert config.tcti == "tabrmd" and config.listen_address() == ("::1", 2443)


# --- helpers (the agent's environment, token and readiness are in tests/agent_process.py) ----------------


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- setup ---------------------------------------------------------------------------------------------


@pytest.mark.swtpm
@pytest.mark.parametrize("backend", ["sqlite"])
def test_setup_gets_tls_and_aik_certificates_and_is_idempotent(
    live_central: LiveCentral, central_state: CentralState, swtpm: RunningSwtpm, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, swtpm.tcti)
    state = tmp_path / "state"
    args = setup_args(live_central, central_state, enrollment_token(live_central, central_state))

    # The central does not trust this TPM's EK CA yet: the TLS part succeeds, AIK enrollment is refused.
    first = agent(env, *args)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "ek-certificate-untrusted" in first.stderr
    assert "EK read (with an NV certificate)" in first.stdout
    ca = _cert(state / "central-ca.pem")
    assert ca == _cert(live_central.ca_file)
    cert = _cert(state / "tls-cert.pem")
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    key = serialization.load_pem_private_key((state / "tls-key.pem").read_bytes(), None)
    assert cert.public_key() == key.public_key()
    assert (state / "tls-key.pem").stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    assert not (state / "aik-cert.pem").exists()

    # Once the operator trusts the TPM vendor's CA, the same run (same token) enrolls the AIK.
    trust_the_swtpm_ek_ca(live_central, central_state, swtpm)
    before = (state / "tls-cert.pem").read_bytes()
    second = agent(env, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "central CA already pinned" in second.stdout and "setup complete" in second.stdout
    assert (state / "tls-cert.pem").read_bytes() == before
    aik_cert = _cert(state / "aik-cert.pem")
    privacy_ca = x509.load_pem_x509_certificates(
        (central_state.config.keys_dir / "privacy-ca.pem").read_bytes()
    )[0]
    aik_cert.verify_directly_issued_by(privacy_ca)
    # ... and the host registered itself, under its own name, with the address the central will dial.
    hosts = requests.get(
        f"{live_central.url}/hvs/v2/hosts", params={"nameEqualTo": "localhost"},
        headers=admin_headers(live_central, central_state), verify=live_central.ca_file, timeout=30,
    ).json()["hosts"]  # fmt: skip
    assert len(hosts) == 1 and hosts[0]["connection_string"].startswith("intel:https://localhost:")

    # Nothing left to do: no token needed, nothing changed.
    at = args.index("--token")
    third = agent(env, *args[:at], *args[at + 2 :])
    assert third.returncode == 0, third.stdout + third.stderr
    assert "AIK certificate already present" in third.stdout
    assert _cert(state / "aik-cert.pem") == aik_cert

    # --force re-provisions: with the used-up token the central refuses the TLS certificate ...
    forced = agent(env, *args, "--force")
    assert forced.returncode == 1 and "enrollment-token-used-up" in forced.stderr, forced.stderr
    assert (state / "tls-cert.pem").read_bytes() == before
    # ... with a fresh one both certificates are re-issued (the AIK itself is the same primary key).
    fresh = setup_args(live_central, central_state, enrollment_token(live_central, central_state))
    renewed = agent(env, *fresh, "--force")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert _cert(state / "tls-cert.pem").serial_number != cert.serial_number
    renewed_aik = _cert(state / "aik-cert.pem")
    assert renewed_aik.serial_number != aik_cert.serial_number
    assert renewed_aik.public_key() == aik_cert.public_key()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_setup_refuses_a_central_whose_ca_does_not_match_the_fingerprint(
    live_central: LiveCentral, central_state: CentralState, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, "swtpm:host=127.0.0.1,port=1")
    args = setup_args(live_central, central_state, "unused-token")
    wrong = "ab" * 48
    args[args.index(central_state.root_ca_fingerprint)] = wrong
    result = agent(env, *args)
    assert result.returncode == 1 and "not pinned" in result.stderr, result.stderr
    assert not (tmp_path / "state" / "central-ca.pem").exists()
    assert not (tmp_path / "state" / "tls-cert.pem").exists()


def test_setup_rejects_a_malformed_fingerprint(tmp_path: Path) -> None:
    env = agent_env(tmp_path, "swtpm:host=127.0.0.1,port=1")
    result = agent(env, "setup", "--central", "https://127.0.0.1:1", "--ca-fingerprint", "abc")
    assert result.returncode == 2 and "96 hex digits" in result.stderr


# --- run -----------------------------------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    directory = Path(tempfile.mkdtemp(prefix="secl-ta-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def other_ca_client(work: Path) -> tuple[Path, Path]:
    """A client certificate from a CA the agent does not trust (right EKU, right everything else)."""
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = work / "intruder.pem", work / "intruder.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.swtpm
@pytest.mark.parametrize("backend", ["sqlite"])
def test_run_serves_mtls_signals_readiness_and_exits_0_on_sigterm(
    live_central: LiveCentral,
    central_state: CentralState,
    swtpm: RunningSwtpm,
    tmp_path: Path,
    short_dir: Path,
) -> None:
    port = free_port()
    env = agent_env(
        tmp_path, swtpm.tcti, listen=f"127.0.0.1:{port}", event_log_path=str(corpus_path(OVMF_LOG))
    )
    setup = agent(
        env, *setup_args(live_central, central_state, enrollment_token(live_central, central_state))
    )
    assert setup.returncode == 3, setup.stdout + setup.stderr
    with TPMAdapter(swtpm.tcti) as tpm:  # the firmware's measurements, as after a boot
        for event in parse_event_log(corpus_path(OVMF_LOG).read_bytes()).iter_extended():
            tpm.extend_pcr(event.pcr, dict(event.digests))

    running = start_agent(env, short_dir, port)
    try:
        server_ca = tmp_path / "state" / "central-ca.pem"
        keys = KeyFiles(central_state.config.keys_dir)
        central_client = (str(keys.tls_cert), str(keys.tls_key))  # what the central presents as a client

        def get(path: str, cert: tuple[str, str] | None = central_client) -> requests.Response:
            return requests.get(f"{running.url}{path}", cert=cert, verify=server_ca, timeout=30)

        # A client that opens a connection and never starts its handshake holds only its own thread.
        with socket.create_connection(("127.0.0.1", port)):
            assert get("/v2/version").json()["service"] == "TA"

        nonce = os.urandom(20)
        quote = requests.post(
            f"{running.url}/v2/tpm/quote", json={"nonce": base64.b64encode(nonce).decode(), "pcrbanks": ["SHA256"]},
            cert=central_client, verify=server_ca, timeout=30,
        )  # fmt: skip
        assert quote.status_code == 200, quote.text
        body = quote.json()
        verified = verify_quote(
            load_ak_public(get("/v2/aik").json()["aik"].encode()),
            base64.b64decode(body["attest"]), base64.b64decode(body["signature"]),
            qualifying_data=hashlib.sha256(nonce).digest(), pcrs=pcr_banks_from_json(body["pcrs"]),
        )  # fmt: skip
        assert verified.pcrs is not None
        parse_event_log(base64.b64decode(body["event_log"])).verify(verified.pcrs.values)

        # Refused at the TLS layer: no client certificate, or one from another CA.
        with pytest.raises(requests.exceptions.ConnectionError):
            get("/v2/version", cert=None)
        with pytest.raises(requests.exceptions.ConnectionError):
            get("/v2/version", cert=tuple(map(str, other_ca_client(tmp_path))))  # type: ignore[arg-type]
        # ... and, after the handshake, any certificate of the central's CA that is not the central's: here
        # this host's own TLS certificate, which another enrolled host could hold the like of.
        state = tmp_path / "state"
        with pytest.raises(requests.exceptions.ConnectionError):
            get("/v2/version", cert=(str(state / "tls-cert.pem"), str(state / "tls-key.pem")))
        assert get("/v2/host").json()["pcr_banks"] == ["SHA1", "SHA256"]  # still serving
    finally:
        running.process.send_signal(signal.SIGTERM)
        try:
            status = running.process.wait(10)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
            pytest.fail(f"the agent did not exit within 10 s of SIGTERM:\n{running.output()}")
    output = running.output()
    assert status == 0, output
    assert "Traceback" not in output, output
    assert "refused: [SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]" in output, output
    assert "refused: [SSL: CERTIFICATE_VERIFY_FAILED]" in output, output
    assert "refused: its certificate is not the central's" in output, output
    assert "stopping" in output


def test_run_before_setup_says_what_to_do(tmp_path: Path) -> None:
    result = agent(agent_env(tmp_path, "swtpm:host=127.0.0.1,port=1"), "run")
    assert result.returncode == 1 and "run `secl-trustagent setup` first" in result.stderr


def test_run_without_a_tpm_fails_fast_with_the_fault(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (state / "central-ca.pem").write_bytes(pem)
    (state / "central-client.sha256").write_text("00" * 32 + "\n")
    (state / "tls-cert.pem").write_bytes(pem)
    (state / "tls-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = agent(agent_env(tmp_path, "swtpm:host=127.0.0.1,port=1"), "run")
    assert result.returncode == 1 and "[tpm-unreachable]" in result.stderr, result.stderr


@pytest.mark.swtpm
def test_info_prints_host_info_json(swtpm: RunningSwtpm, tmp_path: Path) -> None:
    result = agent(agent_env(tmp_path, swtpm.tcti, host_name="info.example"), "info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["host_name"] == "info.example" and info["pcr_banks"] == ["SHA1", "SHA256"]
    no_tpm = agent(agent_env(tmp_path, "swtpm:host=127.0.0.1,port=1"), "info")
    assert no_tpm.returncode == 0 and "TPM unavailable" in no_tpm.stderr
    assert json.loads(no_tpm.stdout)["tpm_enabled"] == "false"
