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

import pytest
from cryptography import x509

from secl.central.store.db import Database
from secl.core.attestation import verify_attestation_result
from tests.agent_harness import CHANGED_BOOT, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import PG_BIN, CentralState
from tests.kbs_host import (
    certify_binding_key,
    host_assertion,
    trusted_host,
    unwrap_in_host_tpm,
)
from tests.kbs_host import evidence as host_evidence
from tests.live_central import LiveCentral

pytestmark = pytest.mark.swtpm


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
    host_id = trusted_host(live, headers)

    # The host has its binding key certified, signing in as itself.
    register = certify_binding_key(golden)
    as_host = host_assertion(golden)
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
    report, evidence = host_evidence(live, headers, host_id, golden, binding)
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
    assert unwrap_in_host_tpm(golden, wrapped) == material

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
    untrusted_report, untrusted = host_evidence(live, headers, host_id, golden, binding)
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
