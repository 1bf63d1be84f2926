"""Judging verified evidence: the host's trust report against every flavor group it is in.

Each group's flavors are verified (:func:`secl.central.flavors.store.verified`) and evaluated under the
group's match policies with the central's trust anchors: the Privacy CA, the flavor-signing chain, the Tag CA
and the host's revoked tag certificates. The host is trusted only if every group trusts it.

Asset tags: a host that carries a tag is a host for which ASSET_TAG is defined: under REQUIRED_IF_DEFINED,
a tag that no ASSET_TAG flavor vouches for (its flavor or certificate was deleted) is
RequiredFlavorTypeMissing; a host without a tag needs no ASSET_TAG flavor. The verdict carries the tags of
the certificate of a trusted ASSET_TAG flavor, and only those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.errors import Conflict
from secl.central.evidence.verify import Evidence
from secl.central.flavors import store as flavorstore
from secl.central.flavors.store import FlavorSignatureInvalid
from secl.central.reports.hostpolicy import FlavorRecord, GroupPolicy, HostPolicy, load_host_policy
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.core.assettag import AssetTagError, parse_tag_certificate
from secl.core.flavor import SignedFlavor
from secl.core.hostmanifest import HostManifest
from secl.core.rules_assettag import tag_certificate_der
from secl.core.trustreport import (
    FlavorVerdict,
    TrustAnchors,
    TrustPolicyError,
    TrustReport,
    build_trust_report,
)

_TAG_CERTIFICATES = select(
    TagCertificateRecord.sha384,
    TagCertificateRecord.revoked,
    TagCertificateRecord.not_before,
    TagCertificateRecord.not_after,
).where(TagCertificateRecord.hardware_uuid == bindparam("hardware_uuid"))


def trust_anchors(
    services: CentralServices, at: datetime, revoked_tags: frozenset[bytes] = frozenset()
) -> TrustAnchors:
    """What the verifier trusts at ``at``: the Privacy CA, the flavor-signing chain, the Tag CA, and the
    revoked tag certificates given."""
    keys = services.keys
    signer = keys.flavor_signer
    return TrustAnchors(
        at=at,
        privacy_cas=(keys.privacy_ca.issuer.certificate,),
        flavor_signing_cert=signer.certificate,
        flavor_cas=signer.chain[1:],
        flavor_intermediates=signer.chain[1:],
        memo=services.memos.signatures,
        tag_cas=keys.tag_ca_certificates,
        revoked_tag_certificates=revoked_tags,
    )


def host_anchors(services: CentralServices, policy: HostPolicy, at: datetime) -> TrustAnchors:
    """The trust anchors for one host's report: the central's, and the host's revoked tag certificates."""
    return trust_anchors(services, at, policy.revoked_tag_certificates)


def _for_evaluation(services: CentralServices, record: FlavorRecord) -> SignedFlavor:
    """The stored flavor, verified; one whose signature fails is still evaluated, so FlavorTrusted reports
    it in the trust report (a document that no longer parses is refused: flavor-signature-invalid)."""
    try:
        return flavorstore.verified(services, record)
    except FlavorSignatureInvalid:
        return flavorstore.signed_flavor(record)


def _group_report(
    services: CentralServices, group: GroupPolicy, *, manifest: HostManifest, anchors: TrustAnchors
) -> tuple[TrustReport, dict[str, str]]:
    """The group's trust report, and the tags its trusted ASSET_TAG flavor vouches for ({} if none)."""
    match = group.match_types()
    flavors = [_for_evaluation(services, record) for record in group.flavors]
    latest: dict[str, SignedFlavor] = {}
    for flavor in flavors:  # oldest first: the last of a LATEST part wins
        if match.get(flavor.flavor.flavor_part) == "LATEST":
            latest[flavor.flavor.flavor_part] = flavor
    flavors = [
        f for f in flavors if match.get(f.flavor.flavor_part) != "LATEST" or latest[f.flavor.flavor_part] is f
    ]
    required = group.required_parts()
    if manifest.asset_tag_digest and "ASSET_TAG" in match and "ASSET_TAG" not in required:
        required.append("ASSET_TAG")  # the host carries a tag: ASSET_TAG is defined for it
    report = build_trust_report(
        flavors,
        manifest,
        anchors,
        match_policy={part: ("ANY_OF" if kind == "LATEST" else kind) for part, kind in match.items()},
        required_parts=required,
    )
    return report, _vouched_tags(report, flavors)


def _vouched_tags(report: TrustReport, flavors: Sequence[SignedFlavor]) -> dict[str, str]:
    part = report.parts.get("ASSET_TAG")
    if part is None or not part.trusted:
        return {}
    trusted: FlavorVerdict = next(f for f in part.flavors if f.trusted)
    flavor = next(f for f in flavors if f.flavor.id == trusted.flavor_id)
    der = tag_certificate_der(flavor.flavor)
    try:
        return dict(parse_tag_certificate(der).tag_map) if der else {}
    except AssetTagError:  # cannot happen for a flavor whose TagCertificateTrusted passed
        return {}


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    trust_report: dict[str, Any]
    flavors_trust: dict[str, Any]
    # The asset tags a trusted ASSET_TAG flavor vouches for: what the report and its JWT carry.
    tags: Mapping[str, str] = field(default_factory=dict)
    # The host's certified binding key (hex SHA-384 of its certificate), named in the attestation result.
    binding_key_certificate_sha384: str | None = None

    @property
    def parts(self) -> dict[str, bool]:
        """Per flavor part, trusted or not (what the attestation result JWT carries)."""
        return {part: bool(entry["trust"]) for part, entry in self.flavors_trust.items()}


def judge(
    session: Session,
    services: CentralServices,
    host: Host,
    evidence: Evidence,
    at: datetime,
    *,
    policy: HostPolicy | None = None,
) -> Verdict:
    """The trust report of the host against every flavor group it is in (trusted only if all are).

    ``policy`` is the host's groups and flavors when the caller has read them already (the worker does).
    """
    if policy is None:
        policy = load_host_policy(session, services, host)
    anchors = host_anchors(services, policy, at)
    manifest = evidence.built.manifest
    try:
        judged = [(g, *_group_report(services, g, manifest=manifest, anchors=anchors)) for g in policy.groups]
    except TrustPolicyError as exc:
        # The host's flavors cannot be applied to it (its OS names no vendor, or a flavor's vendor has no
        # policy): no report can be made until the host or the flavors change, so a Conflict naming why,
        # which the report queue records as the job's failure without retrying.
        raise Conflict(f"host {host.name} cannot be judged: {exc.message}", code=exc.code) from None
    reports = [(g, r) for g, r, _ in judged]
    trusted = bool(reports) and all(r.trusted for _, r in reports)
    results: list[Any] = []
    flavors_trust: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for _group, report, vouched in judged:
        tags |= vouched
        doc = report.to_json()
        results += doc["results"]
        for part, entry in report.flavors_trust_json().items():
            merged = flavors_trust.setdefault(part, {"trust": True, "rules": []})
            merged["trust"] = merged["trust"] and entry["trust"]
            merged["rules"] += entry["rules"]
    policy_name = " / ".join(sorted({r.policy_name for _, r in reports if r.policy_name}))
    if not flavors_trust.get("ASSET_TAG", {}).get("trust"):
        tags = {}  # another group found the host's ASSET_TAG flavors wanting
    return Verdict(
        trusted,
        {
            "policy_name": policy_name,
            "results": results,
            "trusted": trusted,
            "flavorgroups": [g.name for g, _ in reports],
        },
        flavors_trust,
        tags,
        policy.binding_key_certificate_sha384,
    )


def tag_basis(
    session: Session, services: CentralServices, host: Host, evidence: Evidence, at: datetime
) -> dict[str, Any]:
    """What a report's asset-tag verdict depends on besides the flavors and the evidence digest: the
    reported tag, the Tag CA, and the host's tag certificates (revoked or not, valid at ``at`` or not)."""
    digest = evidence.built.manifest.asset_tag_digest
    records = (
        session.connection().execute(_TAG_CERTIFICATES, {"hardware_uuid": host.hardware_uuid}).all()
        if host.hardware_uuid is not None
        else []
    )
    return {
        "asset_tag": digest.hex() if digest else None,
        "tag_cas": [c.fingerprint(hashes.SHA256()).hex() for c in services.keys.tag_ca_certificates],
        "certificates": sorted((r.sha384, r.revoked, r.not_before <= at <= r.not_after) for r in records),
    }
