"""AIK provisioning through the central's Privacy CA: the seam `secl-trustagent setup` calls.

Not implemented yet: the central's Privacy CA (the two ``/hvs/v2`` challenge endpoints) is being built.
When it is, :func:`provision_aik` sends the EK (public area and NV certificate) and the AIK's public area
to the central over mTLS, answers its MakeCredential challenge with TPM2_ActivateCredential, stores the
AIK certificate the Privacy CA issues at ``state.aik_cert`` (PEM, which ``GET /v2/aik`` serves), and
registers the host (hardware UUID, name, connection URL ``intel:https://<host>:<port>``).
"""

from __future__ import annotations

from pathlib import Path

from secl.trustagent.config import StateFiles
from secl.trustagent.tpm import EKInfo, TPMAdapter, TPMKey


class AIKProvisioningUnavailable(NotImplementedError):
    """This build cannot enroll the AIK yet; ``code`` names the condition for callers and scripts."""

    code = "aik-provisioning-unavailable"


def provision_aik(
    *,
    central_url: str,
    state: StateFiles,
    tpm: TPMAdapter,
    ek: EKInfo,
    aik: TPMKey,
    host_name: str,
    force: bool = False,
) -> Path:
    """Enroll ``aik`` with the central's Privacy CA and return the path of the stored AIK certificate.

    ``state`` holds the pinned central CA (``state.central_ca``, verify the central with it) and the agent's
    TLS key pair (``state.tls_cert``/``state.tls_key``, the client certificate for the central). ``tpm`` is
    open, with ``aik`` loaded; ActivateCredential needs the EK too (recreate it from its template).
    """
    raise AIKProvisioningUnavailable("AIK enrollment through the Privacy CA is not available yet")
