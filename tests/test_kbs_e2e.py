"""Issue 13 end to end, on SQLite and PostgreSQL: a binding key made in the host's swtpm, certified through
the central by the host itself (a host assertion, no password), named in the host's attestation result; a
key released to that host opens in its TPM to exactly the stored key; an untrusted host, a forged result
and a stranger's evidence are refused, each audited; the key is nowhere in plaintext.

Real processes: swtpm, the trust agent over mTLS, the central under gunicorn over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from secl.central.store.db import Database
from secl.core.attestation import verify_attestation_result
from secl.core.hostassertion import sign_host_assertion
from secl.core.tpm import load_ak_public
from secl.host.statefiles import StateFiles
from secl.host.tpm import TPMAdapter
from tests.agent_harness import CHANGED_BOOT, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import PG_BIN, CentralState
from tests.live_central import LiveCentral
from tests.tpmkeys import certification_request, decrypt_in_tpm

pytestmark = pytest.mark.swtpm


def _trusted_host(live: LiveCentral, headers: dict[str, str]) -> str:
    """The host the agent's setup registered (under its enrollment name), with flavors imported from it."""
    found = api(live, headers, "GET", "/hvs/v2/hosts", params={"nameEqualTo": "localhost"})
    assert found.status_code == 200, found.text
    hosts = found.json()["hosts"] if isinstance(found.json(), dict) else found.json()
    (host,) = hosts
    imported = api(live, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host["id"]})
    assert imported.status_code == 201, imported.text
    return host["id"]


def _host_assertion(agent: ProvisionedAgent) -> dict[str, str]:
    """What the workload agent sends: a token signed with the host's enrollment key, no password."""
    state = StateFiles(Path(agent.env["SECL_TRUSTAGENT_STATE_DIR"]))
    certificate = x509.load_pem_x509_certificates(state.tls_cert.read_bytes())[0]
    key = serialization.load_pem_private_key(state.tls_key.read_bytes(), None)
    token = sign_host_assertion(certificate, key, audience="localhost")  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def _certify_binding_key(agent: ProvisionedAgent) -> dict[str, str]:
    """Make the binding key in the host's TPM and have the AIK certify it (the agent lets go of the TPM)."""
    state = StateFiles(Path(agent.env["SECL_TRUSTAGENT_STATE_DIR"]))
    aik_certificate = x509.load_pem_x509_certificate(state.aik_cert.read_bytes())
    agent.stop()
    try:
        with TPMAdapter(agent.tcti) as tpm:
            ak = tpm.create_ak()  # a primary key: its template gives the agent's AIK back
            assert (
                load_ak_public(ak.public).key.public_numbers()
                == aik_certificate.public_key().public_numbers()
            )  # type: ignore[union-attr]
            binding = tpm.create_key("rsa")
            request = certification_request(tpm, binding, ak, aik_certificate.public_bytes(Encoding.DER))
    finally:
        agent.start()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {
        "public_key_modulus": b64(request.public_area),
        "tpm_certify_key": b64(request.certify_info),
        "tpm_certify_key_signature": b64(request.certify_signature),
        "aik_der_certificate": b64(request.aik_certificate),
        "name_digest": b64(b"\x22" + request.name_digest + bytes(34)),  # SecL's padded form
        "tpm_version": "2.0",
        "operating_system": "linux",
    }


def _unwrap_in_host_tpm(agent: ProvisionedAgent, wrapped: bytes) -> bytes:
    agent.stop()
    try:
        with TPMAdapter(agent.tcti) as tpm:
            return decrypt_in_tpm(tpm, tpm.create_key("rsa"), wrapped)
    finally:
        agent.start()


def _evidence(
    live: LiveCentral, headers: dict[str, str], host_id: str, agent: ProvisionedAgent, binding: bytes
) -> tuple[dict, dict]:
    report = api(live, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert report.status_code == 201, report.text
    state = StateFiles(Path(agent.env["SECL_TRUSTAGENT_STATE_DIR"]))
    body = {
        "attestation_result": report.json()["jwt"],
        "aik_certificate": state.aik_cert.read_text(),
        "binding_key_certificate": base64.b64encode(binding).decode(),
    }
    return report.json(), body


def _database_bytes(central: CentralState) -> bytes:
    """Everything the database holds, as bytes: the SQLite files, or a pg_dump."""
    url = central.config.database_url
    if not url:
        return b"".join(p.read_bytes() for p in (central.config.state_dir).glob("central.db*"))
    Database(url).dispose()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(
        [str(PG_BIN / "pg_dump"), plain], check=True, capture_output=True, timeout=120
    ).stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_key_reaches_only_a_trusted_hosts_tpm(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    live, headers = live_central, admin_headers(live_central, central_state)
    host_id = _trusted_host(live, headers)

    # The host has its binding key certified, signing in as itself.
    register = _certify_binding_key(golden)
    as_host = _host_assertion(golden)
    nobody = api(live, {}, "POST", "/hvs/v2/rpc/certify-host-binding-key", json=register)
    assert nobody.status_code == 401
    certified = api(live, as_host, "POST", "/hvs/v2/rpc/certify-host-binding-key", json=register)
    assert certified.status_code == 201, certified.text
    binding = base64.b64decode(certified.json()["binding_key_der_certificate"])
    assert x509.load_der_x509_certificate(binding).subject.rfc4514_string() == "CN=Binding_Key_Certificate"
    # The host's assertion is good for nothing else.
    assert api(live, as_host, "GET", "/hvs/v2/hosts").status_code == 403
    tampered = dict(register, tpm_certify_key=base64.b64encode(b"\x00" * 80).decode())
    refused = api(live, as_host, "POST", "/hvs/v2/rpc/certify-host-binding-key", json=tampered)
    assert refused.status_code == 400 and refused.json()["code"], refused.text

    # The image owner's key: registered, so the test knows what the TPM must give back.
    material = os.urandom(32)
    key = api(live, headers, "POST", "/kbs/v1/keys", json={
        "key_information": {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(material).decode()},
        "label": "vm-image",
    })  # fmt: skip
    assert key.status_code == 201, key.text
    key_id = key.json()["key_information"]["id"]
    assert key.json()["transfer_link"].endswith(f"/kbs/v1/keys/{key_id}/transfer")

    # The report names the binding key; the key opens in the host's TPM, and only there.
    report, evidence = _evidence(live, headers, host_id, golden, binding)
    assert report["trusted"] is True
    signer = x509.load_pem_x509_certificate(
        (central_state.config.keys_dir / "report-signing.pem").read_bytes()
    )
    claims = verify_attestation_result(report["jwt"], signer)
    assert claims.binding_key_certificate_sha384 == hashlib.sha384(binding).hexdigest()
    released = api(live, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=evidence)
    assert released.status_code == 200, released.text
    wrapped = base64.b64decode(released.json()["payload"])
    assert material not in wrapped
    assert _unwrap_in_host_tpm(golden, wrapped) == material

    # A forged result, and a stranger's binding key, are refused.
    head, body, signature = evidence["attestation_result"].split(".")
    forged = dict(evidence, attestation_result=f"{head}.{body}.{signature[:-4]}AAAA")
    assert api(live, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=forged).json()["code"] in (
        "attestation-signature-invalid", "attestation-malformed",
    )  # fmt: skip
    stranger = dict(evidence, binding_key_certificate=(central_state.config.keys_dir / "tls.pem").read_text())
    assert (
        api(live, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=stranger).json()["code"]
        == "binding-key-not-in-report"
    )

    # The host turns untrusted: no key, whatever it presents.
    golden.reboot_with(4, CHANGED_BOOT)
    untrusted_report, untrusted = _evidence(live, headers, host_id, golden, binding)
    assert untrusted_report["trusted"] is False
    refused_untrusted = api(live, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=untrusted)
    assert refused_untrusted.status_code == 403 and refused_untrusted.json()["code"] == "host-untrusted"

    # Every release and refusal is in the audit log, with the host.
    events = api(live, headers, "GET", "/aas/v1/audit-events", params={"limit": 1000}).json()
    transfers = [e for e in events if e["action"].startswith("key.transfer") and e["target"] == key_id]
    assert [e["action"] for e in transfers].count("key.transferred") == 1
    refusals = {e["details"]["code"] for e in transfers if e["action"] == "key.transfer-refused"}
    assert refusals >= {"host-untrusted", "binding-key-not-in-report"}
    assert all(e["details"]["host"] for e in transfers if e["details"].get("code") != "attestation-malformed")

    # The key is nowhere in plaintext: not in the database (files or dump), the audit log, or the logs.
    encodings = (material, material.hex().encode(), base64.b64encode(material))
    stored = _database_bytes(central_state)
    assert not any(form in stored for form in encodings)
    logs = live.log.read_bytes()
    assert not any(form in logs for form in encodings)
    assert not any(form.decode("latin-1") in str(events) for form in encodings[1:])
