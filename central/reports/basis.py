"""What a report depends on besides the evidence digest, hashed: when it is unchanged for a host whose
evidence is unchanged, the host's newest report can be re-used instead of judged again.

The basis is over-inclusive on purpose (a change here only costs a full evaluation): the host's flavor
groups and their policies, the flavors with their signatures, the trust anchors, the AIK certificate and
whether it is trusted now, the host and its host info, the reported asset tag and the state of the host's
tag certificates (:func:`secl.central.reports.judge.tag_basis`). Digests are stored with the jobs that made
the reports, so this function's output must not change for the same inputs across releases.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from secl.central.context import CentralServices
from secl.central.evidence.verify import Evidence, aik_trusted
from secl.central.reports.hostpolicy import HostPolicy
from secl.central.store.hvs_flavor_models import Host
from secl.core.attestation import certificate_sha384


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def basis_digest(
    services: CentralServices,
    host: Host,
    evidence: Evidence,
    *,
    policy: HostPolicy,
    tags: dict[str, Any],
    at: datetime,
) -> str:
    """SHA-256 over what the host's trust report depends on besides the evidence digest: its groups and
    flavors (``policy``), the trust anchors, the AIK, the host and the asset-tag state (``tags``)."""
    groups = policy.groups
    flavors = {f for g in groups for f in g.flavors}
    signer = services.keys.flavor_signer
    aik = evidence.built.manifest.aik_certificate
    basis = {
        "groups": [[g.id, g.name, [p.model_dump(mode="json") for p in g.match_policies]] for g in groups],
        "flavors": sorted(
            {
                (f.id, hashlib.sha256(f.document.encode()).hexdigest(), f.signature, f.signature_scheme)
                for f in flavors
            }
        ),
        "anchors": [
            _fingerprint(services.keys.privacy_ca.issuer.certificate),
            *map(_fingerprint, signer.chain),
        ],
        "flavor_signer_valid": signer.certificate.not_valid_before_utc
        <= at
        <= signer.certificate.not_valid_after_utc,
        "aik": certificate_sha384(aik) if aik else None,
        "aik_trusted": aik_trusted(services, evidence, at),
        "host": [host.name, host.hardware_uuid],
        "host_info": evidence.host_info.document,
        # The reported tag, the Tag CA, and revocation and expiry of the host's tag certificates.
        "asset_tag": tags,
    }
    if policy.binding_key_certificate_sha384:
        # Only when there is one, so the basis of a host without a binding key stays what it was.
        basis["binding_key"] = policy.binding_key_certificate_sha384
    return hashlib.sha256(
        orjson.dumps(basis, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    ).hexdigest()
