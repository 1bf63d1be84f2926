"""The workload service end to end, on SQLite and PostgreSQL: the host certifies a binding and a signing key
made in its swtpm (signed in with a host assertion); an image flavor names a key of this central; the host
asks /wls/v2/keys for it and gets it wrapped so that it opens in its TPM to exactly the stored key (then
from the cache, and with its flavor through flavor-key); another host's key is refused; once the host is
untrusted the request is refused with the broker's code. A VM report signed in the TPM is accepted, a
tampered one refused.

Real processes: swtpm, the trust agent over mTLS, the central under gunicorn over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tpm2_pytss.constants import TPM2_ALG, TPM2_RH, TPM2_ST
from tpm2_pytss.types import TPM2B_DIGEST, TPMT_SIG_SCHEME, TPMT_TK_HASHCHECK

from secl.host.certifiedkeys import certification_request
from secl.host.tpm import TPMAdapter, TPMKey
from secl.wpm.image_flavor import image_flavor
from tests.agent_harness import CHANGED_BOOT, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.kbs_host import (
    agent_ak,
    agent_state,
    b64,
    host_assertion,
    register_body,
    trusted_host,
    unwrap_in_host_tpm,
    with_agent_stopped,
)
from tests.live_central import LiveCentral
from tests.wls_helpers import WLS, instance_report, signed_report

pytestmark = pytest.mark.swtpm


def _sign_in_tpm(tpm: TPMAdapter, key: TPMKey, data: bytes) -> bytes:
    """TPM2_Sign (RSASSA-SHA256) of SHA-256(data), as SecL's workload agent signs its VM reports."""
    scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.RSASSA)
    scheme.details.rsassa.hashAlg = TPM2_ALG.SHA256
    ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
    signature = tpm._esapi.sign(key.handle, TPM2B_DIGEST(hashlib.sha256(data).digest()), scheme, ticket)
    return bytes(signature.signature.rsassa.sig)


def _host_keys(agent: ProvisionedAgent, report_data: bytes) -> tuple[dict[str, str], dict[str, str], bytes]:
    """In the host's TPM (the agent lets go of it): a binding and a signing key certified by the AIK, and
    ``report_data`` signed with the signing key."""
    aik_certificate = x509.load_pem_x509_certificate(agent_state(agent).aik_cert.read_bytes())
    aik_der = aik_certificate.public_bytes(Encoding.DER)
    with with_agent_stopped(agent) as tpm:
        ak = agent_ak(tpm, aik_certificate)
        binding = certification_request(tpm, tpm.create_key("rsa"), ak, aik_der)
        signing_key = tpm.create_signing_key()
        signing = certification_request(tpm, signing_key, ak, aik_der)
        signature = _sign_in_tpm(tpm, signing_key, report_data)
    return register_body(binding), register_body(signing), signature


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_workload_agent_gets_its_key_only_while_its_host_is_trusted(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent
) -> None:
    live, admin = live_central, admin_headers(live_central, central_state)
    host_id = trusted_host(live, admin)
    # The verifier learns the hardware UUID from the agent on the host's first report.
    first = api(live, admin, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert first.status_code == 201, first.text
    hardware_uuid = api(live, admin, "GET", f"/hvs/v2/hosts/{host_id}").json()["hardware_uuid"]
    assert hardware_uuid

    vm_report = instance_report(hardware_uuid, "vm-e2e")
    report_data = json.dumps(vm_report).encode()
    binding, signing, report_signature = _host_keys(golden, report_data)
    as_host = host_assertion(golden)
    for path, body in (("certify-host-binding-key", binding), ("certify-host-signing-key", signing)):
        certified = api(live, as_host, "POST", f"/hvs/v2/rpc/{path}", json=body)
        assert certified.status_code == 201, certified.text

    # The image owner's key (registered: the test knows what the TPM must give back), its image flavor.
    material = os.urandom(32)
    key = api(live, admin, "POST", "/kbs/v1/keys", json={
        "key_information": {"algorithm": "AES", "key_length": 256, "key_string": b64(material)},
        "label": "vm-image",
    })  # fmt: skip
    assert key.status_code == 201, key.text
    key_id = key.json()["key_information"]["id"]
    key_url = f"{live.url}/kbs/v1/keys/{key_id}/transfer"
    flavor = image_flavor(label="vm-e2e", key_url=key_url, digest=b64(hashlib.sha256(b"image").digest()))
    assert api(live, admin, "POST", f"{WLS}/flavors", json=flavor).status_code == 201
    image_id = str(uuid.uuid4())
    image = api(live, admin, "POST", f"{WLS}/images", json={"id": image_id, "flavor_ids": [flavor["flavor"]["meta"]["id"]]})  # fmt: skip
    assert image.status_code == 201, image.text

    # The workload agent asks as its host: the key opens in its TPM, and only there.
    request = {"hardware_uuid": hardware_uuid, "key_url": key_url}
    released = api(live, as_host, "POST", f"{WLS}/keys", json=request)
    assert released.status_code == 200, released.text
    assert released.json()["key_id"] == key_id
    wrapped = base64.b64decode(released.json()["key"])
    assert material not in wrapped
    assert unwrap_in_host_tpm(golden, wrapped) == material
    # Again: from the cache (same report, young enough), the same wrapped key.
    again = api(live, host_assertion(golden), "POST", f"{WLS}/keys", json=request)
    assert again.status_code == 200 and again.json()["key"] == released.json()["key"]
    flavor_key = api(live, host_assertion(golden), "GET", f"{WLS}/images/{image_id}/flavor-key", params={"hardware_uuid": hardware_uuid})  # fmt: skip
    assert flavor_key.status_code == 200, flavor_key.text
    assert (
        flavor_key.json()["flavor"] == flavor["flavor"] and flavor_key.json()["key"] == released.json()["key"]
    )

    # A key whose policy wants a fresher report than the host's newest: the service attests the host first.
    policy = api(
        live,
        admin,
        "POST",
        "/kbs/v1/key-transfer-policies",
        json={"name": "fresh", "max_report_age_seconds": 6},
    )
    assert policy.status_code == 201, policy.text
    fresh_key = api(live, admin, "POST", "/kbs/v1/keys", json={
        "key_information": {"algorithm": "AES", "key_length": 128}, "transfer_policy_id": policy.json()["id"],
    })  # fmt: skip
    assert fresh_key.status_code == 201, fresh_key.text
    fresh_id = fresh_key.json()["key_information"]["id"]
    time.sleep(2)  # the newest report is now older than the 1 s this policy leaves after the margin
    fresh = api(live, host_assertion(golden), "POST", f"{WLS}/keys", json=dict(request, key_url=f"{live.url}/kbs/v1/keys/{fresh_id}"))  # fmt: skip
    assert fresh.status_code == 200, fresh.text
    events = api(live, admin, "GET", "/aas/v1/audit-events", params={"limit": 1000}).json()
    released_on = {e["target"]: e["details"]["report_id"] for e in events if e["action"] == "wls.key-released" and not e["details"]["cached"]}  # fmt: skip
    assert released_on[fresh_id] != released_on[key_id]

    # Another host's key: refused.
    stranger = dict(request, hardware_uuid=str(uuid.uuid4()))
    mismatch = api(live, host_assertion(golden), "POST", f"{WLS}/keys", json=stranger)
    assert mismatch.status_code == 403 and mismatch.json()["code"] == "host-mismatch"

    # A VM report signed in the TPM is accepted; a tampered one is not.
    body = signed_report(vm_report, report_signature, report_data)
    filed = api(live, host_assertion(golden), "POST", f"{WLS}/reports", json=body)
    assert filed.status_code == 201, filed.text
    forged_data = json.dumps(instance_report(hardware_uuid, "vm-e2e", trusted=False)).encode()
    tampered = {"data": b64(forged_data), "hash_alg": "SHA-256", "signature": body["signature"]}
    refused = api(live, host_assertion(golden), "POST", f"{WLS}/reports", json=tampered)
    assert refused.status_code == 403 and refused.json()["code"] == "report-signature-invalid"
    listed = api(live, admin, "GET", f"{WLS}/reports", params={"instance_id": "vm-e2e"}).json()
    assert [r["id"] for r in listed] == [filed.json()["id"]]

    # The host turns untrusted: its newest report says so, the cache is void, the broker refuses.
    golden.reboot_with(4, CHANGED_BOOT)
    untrusted = api(live, admin, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert untrusted.status_code == 201 and untrusted.json()["trusted"] is False
    refused_key = api(live, host_assertion(golden), "POST", f"{WLS}/keys", json=request)
    assert refused_key.status_code == 403 and refused_key.json()["code"] == "host-untrusted", refused_key.text

    events = api(live, admin, "GET", "/aas/v1/audit-events", params={"limit": 1000}).json()
    released_rows = [e for e in events if e["action"] == "wls.key-released" and e["target"] == key_id]
    assert sorted(e["details"]["cached"] for e in released_rows) == [False, True, True]
    refusals = {e["details"]["code"] for e in events if e["action"] == "wls.key-refused"}
    assert {"host-untrusted", "host-mismatch"} <= refusals
    encodings = (material, material.hex().encode(), base64.b64encode(material))
    assert not any(form in live.log.read_bytes() for form in encodings)
