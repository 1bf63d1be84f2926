"""The host side of AIK certification, for tests: ActivateCredential on a TPM and the two Privacy CA calls.

:func:`activate_credential` is what the trust agent's ``TPMAdapter`` will do (it reaches into the adapter's
ESAPI only because the adapter has no such method yet). The TCG default EK templates (RSA and ECC) carry the
authPolicy PolicySecret(TPM_RH_ENDORSEMENT), so the EK is authorized by a policy session in which
TPM2_PolicySecret was satisfied with the (empty) endorsement hierarchy password; the AIK is authorized by
its (empty) password.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE
from tpm2_pytss.types import TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TPMT_SYM_DEF
from tpm2_pytss.utils import NVReadEK, create_ek_template

from secl.host.tpm import EKInfo, TPMAdapter, TPMKey

_EK_TEMPLATES = {"rsa": "EK-RSA2048", "ecc": "EK-ECC256"}
REQUEST = "/hvs/v2/privacyca/identity-challenge-request"
RESPONSE = "/hvs/v2/privacyca/identity-challenge-response"


def activate_credential(
    adapter: TPMAdapter, aik: TPMKey, credential_blob: bytes, encrypted_secret: bytes, ek_kind: str = "rsa"
) -> bytes:
    """TPM2_ActivateCredential with the AIK (loaded) and the EK (recreated here): return the secret."""
    esapi: Any = adapter._esapi  # see the module docstring
    blob, _ = TPM2B_ID_OBJECT.unmarshal(credential_blob)
    secret, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)
    # The EK is a primary key: the same template gives the same key back (read_ek flushes it after reading).
    _, template = create_ek_template(_EK_TEMPLATES[ek_kind], NVReadEK(esapi))
    ek_handle, _, _, _, _ = esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
    session = ESYS_TR.NONE
    try:
        session = esapi.start_auth_session(
            tpm_key=ESYS_TR.NONE, bind=ESYS_TR.NONE, session_type=TPM2_SE.POLICY,
            symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), auth_hash=TPM2_ALG.SHA256,
        )  # fmt: skip
        esapi.policy_secret(ESYS_TR.ENDORSEMENT, session)  # authorized by the endorsement password (empty)
        cert_info = esapi.activate_credential(
            aik.handle, ek_handle, blob, secret, session1=ESYS_TR.PASSWORD, session2=session
        )
        return bytes(cert_info)
    finally:
        if session != ESYS_TR.NONE:
            # Already gone if the TPM flushed it after the command (continueSession clear).
            with contextlib.suppress(Exception):
                esapi.flush_context(session)
        esapi.flush_context(ek_handle)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def register_swtpm_cas(client: FlaskClient, headers: dict[str, str], ca_dir: Path) -> list[dict[str, Any]]:
    """Trust the swtpm local CA (its root and its intermediate) as endorsement CAs, through the API."""
    added = []
    for path in [*sorted(ca_dir.glob("*rootca-cert.pem")), ca_dir / "issuercert.pem"]:
        response = client.post(
            "/hvs/v2/endorsement-cas", json={"certificate": path.read_text()}, headers=headers
        )
        assert response.status_code == 201, response.get_json()
        added.append(response.get_json())
    return added


def challenge_body(ek: EKInfo, aik_public: bytes, host_name: str = "host-1.example") -> dict[str, str]:
    assert ek.certificate is not None
    return {
        "ek_certificate": b64(ek.certificate), "ek_public": b64(ek.public), "aik_public": b64(aik_public),
        "host_name": host_name,
    }  # fmt: skip


@dataclass(frozen=True)
class Enrollment:
    challenge: dict[str, Any]
    secret: bytes
    certificate: dict[str, Any]


def enroll(
    client: FlaskClient, headers: dict[str, str], adapter: TPMAdapter, aik: TPMKey, *,
    ek_kind: str = "rsa", ek_certificate: bytes | None = None,
) -> Enrollment:  # fmt: skip
    """The whole exchange, as the trust agent's setup does it: request, activate, respond.

    ``ek_certificate`` replaces the one in NV (swtpm_setup certifies only the RSA EK).
    """
    ek = adapter.read_ek(ek_kind)
    if ek_certificate is not None:
        ek = EKInfo(ek.public, ek_certificate)
    response = client.post(REQUEST, json=challenge_body(ek, aik.public), headers=headers)
    assert response.status_code == 201, response.get_json()
    challenge = response.get_json()
    secret = activate_credential(
        adapter, aik, base64.b64decode(challenge["credential_blob"]),
        base64.b64decode(challenge["encrypted_secret"]), ek_kind,
    )  # fmt: skip
    answer = client.post(
        RESPONSE, json={"challenge_id": challenge["challenge_id"], "secret": b64(secret)}, headers=headers
    )
    assert answer.status_code == 201, answer.get_json()
    return Enrollment(challenge, secret, answer.get_json())
