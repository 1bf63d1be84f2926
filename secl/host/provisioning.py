"""AIK enrollment through the central's Privacy CA (TPM2 MakeCredential / ActivateCredential).

1. The host sends its EK certificate (from NV), EK public area and AIK public area to
   ``POST /hvs/v2/privacyca/identity-challenge-request``, authorized by the host's enrollment token.
2. The central checks the EK certificate against its endorsement CAs and the AIK's attributes, and answers
   with a credential only the TPM holding both this EK and this AIK can open.
3. ActivateCredential recovers the secret, which ``…/identity-challenge-response`` trades for an AIK
   certificate signed by the Privacy CA.

The host checks that the certificate's key is its AIK before storing it at ``state.aik_cert`` (the trust
agent serves it at ``GET /v2/aik``). TLS to the central is verified against the CA pinned by ``setup``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secl.host.statefiles import StateFiles
from secl.host.tpm import EKInfo, TPMAdapter, TPMKey

_TIMEOUT = 30


class AIKProvisioningError(Exception):
    """AIK enrollment failed; ``code`` names why (the central's error code when it refused)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def provision_aik(
    *,
    central_url: str,
    state: StateFiles,
    tpm: TPMAdapter,
    ek: EKInfo,
    aik: TPMKey,
    host_name: str,
    token: str | None,
) -> Path:
    """Enroll ``aik`` with the central's Privacy CA and return the path of the stored AIK certificate."""
    if not token:
        raise AIKProvisioningError(
            "--token (an enrollment token for this host, allowing 'aik') is needed to enroll the AIK",
            "enrollment-token-missing",
        )
    if ek.certificate is None:
        raise AIKProvisioningError(
            "the TPM has no EK certificate in NV; the Privacy CA cannot check this TPM",
            "ek-certificate-missing",
        )
    base = central_url.rstrip("/") + "/hvs/v2/privacyca"
    challenge = _post(
        f"{base}/identity-challenge-request",
        {
            "ek_certificate": _b64(ek.certificate),
            "ek_public": _b64(ek.public),
            "aik_public": _b64(aik.public),
            "host_name": host_name,
        },
        token,
        state,
    )
    secret = tpm.activate_credential(
        aik, base64.b64decode(challenge["credential_blob"]), base64.b64decode(challenge["encrypted_secret"])
    )
    issued = _post(
        f"{base}/identity-challenge-response",
        {"challenge_id": challenge["challenge_id"], "secret": _b64(secret)},
        token,
        state,
    )
    certificate = x509.load_pem_x509_certificate(issued["aik_certificate"].encode())
    if _spki(certificate.public_key()) != _spki(serialization.load_pem_public_key(aik.pem())):
        raise AIKProvisioningError(
            "the central certified a key that is not this AIK", "aik-certificate-mismatch"
        )
    state.aik_cert.write_text(issued["aik_certificate"])
    return state.aik_cert


def _post(url: str, body: dict[str, Any], token: str, state: StateFiles) -> dict[str, Any]:
    try:
        response = requests.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=str(state.central_ca),
            timeout=_TIMEOUT,
        )
    except requests.RequestException as exc:
        raise AIKProvisioningError(
            f"cannot reach the central at {url}: {exc}", "central-unreachable"
        ) from None
    if response.status_code >= 400:
        try:
            error = response.json()
            message, code = error.get("message", response.text), error.get("code", "central-error")
        except ValueError:
            message, code = response.text[:200], "central-error"
        raise AIKProvisioningError(f"the central refused AIK enrollment: {message}", code)
    return response.json()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def register_host(
    *, central_url: str, state: StateFiles, host_name: str, port: int, token: str | None
) -> str:
    """Register this host with the central (``POST /hvs/v2/hosts``) under its own name, with the
    connection string the central uses to reach this host's agent; returns "registered" or "already registered"."""
    if not token:
        raise AIKProvisioningError("--token is needed to register the host", "enrollment-token-missing")
    body = {"host_name": host_name, "connection_string": f"intel:https://{host_name}:{port}"}
    try:
        _post(central_url.rstrip("/") + "/hvs/v2/hosts", body, token, state)
    except AIKProvisioningError as exc:
        if exc.code in ("host-exists", "already-exists"):
            return "already registered"
        raise
    return "registered"
