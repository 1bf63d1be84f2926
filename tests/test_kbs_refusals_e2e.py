"""Issue 13's refusals end to end, with swtpm, the trust agent and the central under gunicorn: each is refused
with its own code and audited.

- certify-host-binding-key: host B presenting host A's AIK certificate (``aik-of-another-host``), a software
  key loaded with TPM2_LoadExternal and certified by the AIK (``key-not-tpm-bound``), an AIK certificate
  from another CA (``aik-not-certified``);
- transfer: a report older than the key's policy allows (``report-too-old``), missing and wrong asset tags
  (``asset-tag-missing``/``-mismatch``), a result signed by an unknown key (``report-signer-unknown``),
  tampered, or expired;
- two centrals: the image owner's broker refuses the provider's evidence until it trusts the provider's
  report signer (``report-signer-unknown``) and Privacy CA (``aik-not-certified``), then the key reaches
  the host's TPM.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from secl.central.config import CentralConfig
from secl.central.privacyca.service import prune_challenges
from secl.central.setup import run_setup
from secl.central.store.db import Database
from secl.central.store.hvs_models import AIKChallenge
from secl.central.store.models import utcnow
from tests.agent_harness import ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.kbs_host import (
    agent_state,
    b64,
    certify_binding_key,
    certify_external_key,
    evidence,
    host_assertion,
    now,
    other_host_assertion,
    report_signer,
    resign,
    trusted_host,
    unwrap_in_host_tpm,
)
from tests.live_central import LiveCentral
from tests.tpmkeys import issue_certificate, make_ca

pytestmark = pytest.mark.swtpm

CERTIFY = "/hvs/v2/rpc/certify-host-binding-key"


def _register_key(
    live: LiveCentral, headers: dict[str, str], material: bytes, policy: str | None = None
) -> str:
    body: dict[str, Any] = {
        "key_information": {"algorithm": "AES", "key_length": 256, "key_string": b64(material)}
    }
    if policy:
        body["transfer_policy_id"] = policy
    created = api(live, headers, "POST", "/kbs/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return created.json()["key_information"]["id"]


def _policy(live: LiveCentral, headers: dict[str, str], **fields: Any) -> str:
    created = api(live, headers, "POST", "/kbs/v1/key-transfer-policies", json=fields)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _refused(live: LiveCentral, key_id: str, body: dict[str, str], status: int, code: str) -> None:
    answer = api(live, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=body)
    assert (answer.status_code, answer.json().get("code")) == (status, code), answer.text


def _age_aik_enrollments(central: CentralState, age: timedelta) -> None:
    """Move every AIK challenge ``age`` into the past, then prune as the next enrollment would."""
    database = Database(central.config.sqlalchemy_url)
    try:
        with database.sessions() as session:
            challenges = list(session.scalars(select(AIKChallenge)))
            assert challenges
            for challenge in challenges:
                challenge.created_at -= age
                challenge.expires_at -= age
            session.flush()
            prune_challenges(session, utcnow())
            session.commit()
    finally:
        database.dispose()


def _audit(live: LiveCentral, headers: dict[str, str]) -> list[dict[str, Any]]:
    events = api(live, headers, "GET", "/aas/v1/audit-events", params={"limit": 1000})
    assert events.status_code == 200, events.text
    return events.json()


def test_each_refusal_has_its_code_and_its_audit_row(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    live, headers = live_central, admin_headers(live_central, central_state)
    host_id = trusted_host(live, headers)
    as_host = host_assertion(golden)
    register = certify_binding_key(golden)

    # --- certify-host-binding-key refusals -------------------------------------------------------------
    host_b = other_host_assertion(live, central_state, "host-b.example")
    refused = api(live, host_b, "POST", CERTIFY, json=register)
    assert (refused.status_code, refused.json()["code"]) == (403, "aik-of-another-host"), refused.text
    external = certify_external_key(golden)
    refused = api(live, as_host, "POST", CERTIFY, json=external)
    assert (refused.status_code, refused.json()["code"]) == (400, "key-not-tpm-bound"), refused.text
    aik = x509.load_pem_x509_certificate(agent_state(golden).aik_cert.read_bytes())
    foreign_aik = issue_certificate(make_ca("another Privacy CA"), aik.public_key(), "aik")
    refused = api(live, as_host, "POST", CERTIFY, json=dict(register, aik_der_certificate=b64(foreign_aik.public_bytes(Encoding.DER))))  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (403, "aik-not-certified"), refused.text
    # Two days on, another host's AIK enrollment prunes old challenges: the record of which host this AIK
    # certificate was issued to must survive it (it did not: every certify then failed aik-not-certified).
    _age_aik_enrollments(central_state, timedelta(days=2))
    certified = api(live, as_host, "POST", CERTIFY, json=register)
    assert certified.status_code == 201, certified.text
    binding = base64.b64decode(certified.json()["binding_key_der_certificate"])
    certify_refusals = {
        e["details"]["code"]: e
        for e in _audit(live, headers)
        if e["action"] == "host-key.binding-certify" and e["outcome"] == "failure"
    }
    assert {"aik-of-another-host", "key-not-tpm-bound", "aik-not-certified"} <= set(certify_refusals)
    assert certify_refusals["aik-of-another-host"]["target"] == "host-b.example"
    assert certify_refusals["key-not-tpm-bound"]["target"] == "localhost"

    # --- transfer refusals -----------------------------------------------------------------------------
    material = os.urandom(32)
    plain_key = _register_key(live, headers, material)
    short_key = _register_key(
        live, headers, os.urandom(32), _policy(live, headers, name="short", max_report_age_seconds=1)
    )
    tagged_key = _register_key(live, headers, os.urandom(32), _policy(live, headers, name="xx", usage="country:XX"))  # fmt: skip
    report, body = evidence(live, headers, host_id, golden, binding)
    assert report["trusted"] is True
    released = api(live, {}, "POST", f"/kbs/v1/keys/{plain_key}/transfer", json=body)
    assert released.status_code == 200, released.text
    assert unwrap_in_host_tpm(golden, base64.b64decode(released.json()["payload"])) == material

    _refused(live, tagged_key, body, 403, "asset-tag-missing")
    signer_key, kid = report_signer(central_state)
    token = body["attestation_result"]
    _refused(live, tagged_key, dict(body, attestation_result=resign(token, signer_key, kid, tags={"country": "YY"})), 403, "asset-tag-mismatch")  # fmt: skip
    # The right tag, signed by the real signer, passes the same policy: the refusals above are the tags'.
    tagged = api(live, {}, "POST", f"/kbs/v1/keys/{tagged_key}/transfer",
                 json=dict(body, attestation_result=resign(token, signer_key, kid, tags={"country": "XX"})))  # fmt: skip
    assert tagged.status_code == 200, tagged.text

    time.sleep(2.1)  # the report is now older than the short policy's 1 s
    _refused(live, short_key, body, 403, "report-too-old")

    stranger = ec.generate_private_key(ec.SECP256R1())
    stranger_cert = issue_certificate(make_ca("stranger"), stranger.public_key(), "report signer")
    stranger_kid = stranger_cert.fingerprint(hashes.SHA256()).hex()
    _refused(live, plain_key, dict(body, attestation_result=resign(token, stranger, stranger_kid)), 403, "report-signer-unknown")  # fmt: skip
    _refused(live, plain_key, dict(body, attestation_result=resign(token, stranger, kid)), 403, "attestation-signature-invalid")  # fmt: skip
    head, _claims, signature = token.split(".")
    _head2, forged_claims, _sig2 = resign(token, signer_key, kid, tags={"country": "XX"}).split(".")
    _refused(live, plain_key, dict(body, attestation_result=f"{head}.{forged_claims}.{signature}"), 403, "attestation-signature-invalid")  # fmt: skip
    expired = resign(token, signer_key, kid, issued_at=now() - 7200, expires_at=now() - 3600)
    _refused(live, plain_key, dict(body, attestation_result=expired), 403, "attestation-expired")

    transfers = [e for e in _audit(live, headers) if e["action"] == "key.transfer-refused"]
    by_code = {e["details"]["code"]: e for e in transfers}
    assert {
        "asset-tag-missing", "asset-tag-mismatch", "report-too-old", "report-signer-unknown",
        "attestation-signature-invalid", "attestation-expired",
    } <= set(by_code)  # fmt: skip
    subject = jwt.decode(token, options={"verify_signature": False})["sub"]
    for code, event in by_code.items():
        assert event["outcome"] == "failure", (code, event)
        assert event["details"]["host"].lower() == subject.lower(), (code, event)
    assert by_code["report-too-old"]["target"] == short_key
    assert by_code["asset-tag-missing"]["target"] == tagged_key


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_image_owners_central_releases_to_a_host_the_providers_central_attested(
    live_central: LiveCentral,
    central_state: CentralState,
    golden: ProvisionedAgent,
    start_central: Callable[[CentralConfig], LiveCentral],
    tmp_path: Path,
) -> None:
    provider, provider_headers = live_central, admin_headers(live_central, central_state)
    host_id = trusted_host(provider, provider_headers)
    certified = api(provider, host_assertion(golden), "POST", CERTIFY, json=certify_binding_key(golden))
    assert certified.status_code == 201, certified.text
    binding = base64.b64decode(certified.json()["binding_key_der_certificate"])

    # The image owner's own central: it holds the key, attests nothing.
    owner_config = CentralConfig(state_dir=tmp_path / "owner-central", database_url="", hostname="localhost")
    setup = run_setup(owner_config)
    assert setup.admin_credential is not None
    username, password = setup.admin_credential.read_text().strip().split(":", 1)
    owner_state = CentralState(owner_config, username, password, setup.root_ca_fingerprint_sha384)
    owner = start_central(owner_config)
    owner_headers = admin_headers(owner, owner_state)
    material = os.urandom(32)
    key_id = _register_key(owner, owner_headers, material)

    _report, body = evidence(provider, provider_headers, host_id, golden, binding)
    _refused(owner, key_id, body, 403, "report-signer-unknown")
    signer_pem = (central_state.config.keys_dir / "report-signing.pem").read_text()
    trusted = api(owner, owner_headers, "POST", "/kbs/v1/saml-certificates", json={"certificate": signer_pem})
    assert trusted.status_code == 201, trusted.text
    _refused(owner, key_id, body, 403, "aik-not-certified")
    privacy_ca = api(provider, provider_headers, "GET", "/hvs/v2/privacyca/certificate").json()["certificate"]
    trusted = api(
        owner, owner_headers, "POST", "/kbs/v1/tpm-identity-certificates", json={"certificate": privacy_ca}
    )
    assert trusted.status_code == 201, trusted.text

    released = api(owner, {}, "POST", f"/kbs/v1/keys/{key_id}/transfer", json=body)
    assert released.status_code == 200, released.text
    assert unwrap_in_host_tpm(golden, base64.b64decode(released.json()["payload"])) == material
    # The provider never saw the key; the owner audited the refusals and the release.
    assert api(provider, provider_headers, "GET", f"/kbs/v1/keys/{key_id}").status_code == 404
    events = [e for e in _audit(owner, owner_headers) if e["target"] == key_id]
    refusals = sorted(e["details"]["code"] for e in events if e["action"] == "key.transfer-refused")
    assert refusals == ["aik-not-certified", "report-signer-unknown"]
    assert [e["action"] for e in events].count("key.transferred") == 1
