"""A host's certified TPM keys: what a workload agent sends the central to have them certified.

The binding key (decrypt-only) and the signing key (sign-only) are made in the TPM by
:meth:`secl.host.tpm.TPMAdapter.create_key` / ``create_signing_key``; :func:`certification_request` has the
host's AIK certify one (TPM2_Certify) and returns SecL's ``RegisterKeyInfo`` as the core's typed request,
which :func:`register_key_info` turns into the JSON body of ``POST /hvs/v2/rpc/certify-host-binding-key``
(``…-signing-key``). The central checks it with :func:`secl.core.certifiedkey.verify_certified_key`.
"""

from __future__ import annotations

import base64

from secl.core.certifiedkey import KeyCertificationRequest
from secl.host.tpm import TPMAdapter, TPMKey


def certification_request(
    tpm: TPMAdapter, key: TPMKey, ak: TPMKey, aik_certificate: bytes = b""
) -> KeyCertificationRequest:
    """``key`` certified by ``ak`` in this TPM; ``aik_certificate`` is the AIK's certificate (DER)."""
    attestation = tpm.certify(key, ak)
    return KeyCertificationRequest(
        public_area=key.public,
        certify_info=attestation.attest,
        certify_signature=attestation.signature,
        aik_certificate=aik_certificate,
        name_digest=key.name,
    )


def register_key_info(request: KeyCertificationRequest) -> dict[str, str]:
    """SecL's RegisterKeyInfo JSON: the binary fields in standard base64."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "public_key_modulus": b64(request.public_area),
        "tpm_certify_key": b64(request.certify_info),
        "tpm_certify_key_signature": b64(request.certify_signature),
        "aik_der_certificate": b64(request.aik_certificate),
        "name_digest": b64(request.name_digest),
        "tpm_version": request.tpm_version,
        "operating_system": request.operating_system,
    }
