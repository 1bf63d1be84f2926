"""What a host does with the key broker, for the end-to-end tests: have its TPM binding key certified (as
itself, with a host assertion), gather its transfer evidence, unwrap a released key in its TPM; and the odd
evidence a refusal test needs (a key loaded from outside the TPM, another host's identity, results signed
by the central's report signer with claims of the test's choosing)."""

from __future__ import annotations

import base64
import dataclasses
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE

from secl.central.keyfiles import KeyFiles
from secl.core.attestation import AttestationResult, sign_attestation_result
from secl.core.certifiedkey import KeyCertificationRequest
from secl.core.hostassertion import sign_host_assertion
from secl.core.tpm import load_ak_public
from secl.host.certifiedkeys import certification_request, register_key_info
from secl.host.statefiles import StateFiles
from secl.host.tpm import TPMAdapter, TPMKey
from tests.agent_harness import ProvisionedAgent, api
from tests.agent_process import enrollment_token
from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral
from tests.tpmkeys import decrypt_in_tpm


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def trusted_host(live: LiveCentral, headers: dict[str, str]) -> str:
    """The host the agent's setup registered (under its enrollment name), with flavors imported from it."""
    found = api(live, headers, "GET", "/hvs/v2/hosts", params={"nameEqualTo": "localhost"})
    assert found.status_code == 200, found.text
    hosts = found.json()["hosts"] if isinstance(found.json(), dict) else found.json()
    (host,) = hosts
    imported = api(live, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host["id"]})
    assert imported.status_code == 201, imported.text
    return host["id"]


def agent_state(agent: ProvisionedAgent) -> StateFiles:
    return StateFiles(Path(agent.env["SECL_TRUSTAGENT_STATE_DIR"]))


def host_assertion(agent: ProvisionedAgent, audience: str = "localhost") -> dict[str, str]:
    """What the workload agent sends: a token signed with the host's enrollment key, no password."""
    state = agent_state(agent)
    certificate = x509.load_pem_x509_certificates(state.tls_cert.read_bytes())[0]
    key = serialization.load_pem_private_key(state.tls_key.read_bytes(), None)
    token = sign_host_assertion(certificate, key, audience=audience)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def other_host_assertion(live: LiveCentral, central: CentralState, host: str) -> dict[str, str]:
    """A host assertion of another enrolled host (a TLS client certificate this central issued to ``host``)."""
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .sign(key, hashes.SHA384())
    )
    token = enrollment_token(live, central, host=host)
    issued = api(live, {"Authorization": f"Bearer {token}"}, "POST", "/cms/v1/certificates",
                 json={"csr": csr.public_bytes(Encoding.PEM).decode(), "kind": "tls"})  # fmt: skip
    assert issued.status_code == 201, issued.text
    certificate = x509.load_pem_x509_certificate(issued.json()["certificate"].encode())
    return {"Authorization": f"Bearer {sign_host_assertion(certificate, key, audience='localhost')}"}


def register_body(request: KeyCertificationRequest) -> dict[str, str]:
    """SecL's RegisterKeyInfo JSON, with the name in the padded form SecL's verifier expects."""
    return register_key_info(replace(request, name_digest=b"\x22" + request.name_digest + bytes(34)))


def with_agent_stopped(agent: ProvisionedAgent) -> Any:
    class _Stopped:
        def __enter__(self) -> TPMAdapter:
            agent.stop()  # the swtpm serves one connection at a time
            self.tpm = TPMAdapter(agent.tcti)
            return self.tpm.__enter__()

        def __exit__(self, *exc: object) -> None:
            try:
                self.tpm.__exit__(*exc)
            finally:
                agent.start()

    return _Stopped()


def agent_ak(tpm: TPMAdapter, aik_certificate: x509.Certificate) -> TPMKey:
    ak = tpm.create_ak()  # a primary key: its template gives the agent's AIK back
    assert load_ak_public(ak.public).key.public_numbers() == aik_certificate.public_key().public_numbers()  # type: ignore[union-attr]
    return ak


def certify_binding_key(agent: ProvisionedAgent) -> dict[str, str]:
    """Make the binding key in the host's TPM and have the AIK certify it: SecL's RegisterKeyInfo."""
    aik_certificate = x509.load_pem_x509_certificate(agent_state(agent).aik_cert.read_bytes())
    with with_agent_stopped(agent) as tpm:
        ak = agent_ak(tpm, aik_certificate)
        request = certification_request(
            tpm, tpm.create_key("rsa"), ak, aik_certificate.public_bytes(Encoding.DER)
        )
    return register_body(request)


def certify_external_key(agent: ProvisionedAgent) -> dict[str, str]:
    """A key made outside the TPM (software RSA), loaded with TPM2_LoadExternal and certified by the AIK:
    the TPM signs for it, but it was never TPM-generated nor bound to the TPM."""
    aik_certificate = x509.load_pem_x509_certificate(agent_state(agent).aik_cert.read_bytes())
    software = rsa.generate_private_key(65537, 2048)
    pem = software.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    attributes = TPMA_OBJECT.DECRYPT | TPMA_OBJECT.USERWITHAUTH
    public = TPM2B_PUBLIC.from_pem(pem, objectAttributes=attributes)
    with with_agent_stopped(agent) as tpm:
        ak = agent_ak(tpm, aik_certificate)
        handle = tpm._esapi.load_external(public, TPM2B_SENSITIVE.from_pem(pem), ESYS_TR.NULL)
        _, loaded_name, _ = tpm._esapi.read_public(handle)
        key = TPMKey(handle, public.marshal(), bytes(loaded_name))
        request = certification_request(tpm, key, ak, aik_certificate.public_bytes(Encoding.DER))
    return register_body(request)


def unwrap_in_host_tpm(agent: ProvisionedAgent, wrapped: bytes) -> bytes:
    with with_agent_stopped(agent) as tpm:
        return decrypt_in_tpm(tpm, tpm.create_key("rsa"), wrapped)


def evidence(
    live: LiveCentral, headers: dict[str, str], host_id: str, agent: ProvisionedAgent, binding: bytes
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new report of the host, and the transfer body made of it: (report, evidence)."""
    report = api(live, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert report.status_code == 201, report.text
    body = {
        "attestation_result": report.json()["jwt"],
        "aik_certificate": agent_state(agent).aik_cert.read_text(),
        "binding_key_certificate": b64(binding),
    }
    return report.json(), body


def report_signer(central: CentralState) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The central's report-signing key and its kid (SHA-256 of its certificate)."""
    files = KeyFiles(central.config.keys_dir)
    certificate = x509.load_pem_x509_certificate(files.report_signing_cert.read_bytes())
    key = serialization.load_pem_private_key(files.report_signing_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, certificate.fingerprint(hashes.SHA256()).hex()


def resign(token: str, key: ec.EllipticCurvePrivateKey, kid: str, **changes: Any) -> str:
    """The result in ``token`` with ``changes``, signed by ``key`` under ``kid``."""
    claims = jwt.decode(token, options={"verify_signature": False})
    result = dataclasses.replace(AttestationResult.from_claims(claims), **changes)
    return sign_attestation_result(result, key, kid)


def now() -> int:
    return int(time.time())
