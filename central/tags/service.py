"""Asset tags for hosts: tag certificates issued, revoked and deleted, and deployed into (or cleared from) a
host's TPM.

Issuing makes SecL's tag certificate with the central's Tag CA (:mod:`secl.central.tags.store`); a bad
selection is refused with a code naming the broken rule (``tag-name-duplicate``, ``tag-value-too-long``,
``tag-selection-too-many``, ...). Revoking or deleting a certificate queues a report job for its host, so a
worker re-attests it and the host's standing follows without waiting for the report to expire.

Deploying refuses a revoked, expired or not yet valid certificate (with its code), and one for another
machine than the host's: the host is the registered host with the certificate's hardware UUID, or the one
given, and the hardware UUID its trust agent claims now must be the certificate's
(``tag-certificate-wrong-host``). Then the agent writes the certificate's SHA-384 into its TPM, the host's
ASSET_TAG flavor is made from the certificate, signed and stored in the host_unique group (replacing the
host's earlier ASSET_TAG flavors, whose digests are no longer in the TPM), and the host is attested; the
outcome carries that report, or why attesting failed (the tag and the flavor stay deployed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Invalid, NotFound, ServiceError
from secl.central.evidence.agentclient import AgentError
from secl.central.evidence.fetch import agent_client
from secl.central.evidence.verify import AgentFailed
from secl.central.flavors.schemas import FlavorCollectionIn, FlavorCreate
from secl.central.flavors.store import store_flavors
from secl.central.hosts.service import get_host
from secl.central.reports import jobs
from secl.central.reports.service import attest_host
from secl.central.reports.sign import StoredReport
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.store.models import utcnow
from secl.central.tags import store
from secl.core.assettag import (
    ASSET_TAG_NV_SIZE,
    AssetTagError,
    TagVerificationError,
    build_asset_tag_flavor,
    parse_tag_selection,
    verify_tag_certificate,
)
from secl.core.pcrevents import thaw


@dataclass(frozen=True)
class Attested:
    """The report made right after a host's tag changed, or the error that kept it from being made."""

    report: StoredReport | None
    error: ServiceError | None


@dataclass(frozen=True)
class Deployed:
    record: TagCertificateRecord
    host: Host
    hardware_uuid: str
    flavor_id: str
    replaced_flavor_ids: list[str]
    attested: Attested


@dataclass(frozen=True)
class Cleared:
    host: Host
    hardware_uuid: str | None
    removed_flavor_ids: list[str]
    attested: Attested


# --- tag certificates -------------------------------------------------------------------------------------


def create_certificate(
    session: Session,
    services: CentralServices,
    *,
    hardware_uuid: str,
    selection_content: Sequence[dict[str, Any]],
    validity_days: int,
    actor: str,
) -> TagCertificateRecord:
    """Issue a tag certificate for the host with ``hardware_uuid`` (committed)."""
    try:
        selection = parse_tag_selection(list(selection_content))
    except AssetTagError as exc:
        raise Invalid(exc.message, code=exc.code) from None
    record = store.issue(
        session,
        services.keys.tag_ca,
        hardware_uuid=hardware_uuid,
        selection=selection,
        actor=actor,
        validity_days=validity_days,
    )
    audit.record(
        session,
        "tag-certificate.created",
        actor=actor,
        outcome="success",
        target=record.id,
        hardware_uuid=record.hardware_uuid,
        sha384=record.sha384,
        tags=[t["name"] for t in record.tags],
    )
    session.commit()
    return record


def _reattest_later(session: Session, hardware_uuid: str, reason: str, *, actor: str) -> None:
    """Queue a report job for the host carrying this certificate, if it is registered."""
    host_id = session.scalar(select(Host.id).where(Host.hardware_uuid == hardware_uuid))
    if host_id is not None:
        jobs.enqueue(session, [host_id], actor=actor, reason=reason)


def revoke_certificate(session: Session, certificate_id: str, *, actor: str) -> TagCertificateRecord:
    """Revoke a tag certificate and queue its host for a new report; revoking again changes nothing."""
    record = store.get(session, certificate_id)
    if store.revoke(record, actor=actor):
        audit.record(
            session,
            "tag-certificate.revoked",
            actor=actor,
            outcome="success",
            target=record.id,
            hardware_uuid=record.hardware_uuid,
            sha384=record.sha384,
        )
        session.commit()
        _reattest_later(session, record.hardware_uuid, "tag-revoked", actor=actor)
    return record


def delete_certificate(session: Session, certificate_id: str, *, actor: str) -> None:
    """Delete a tag certificate and the ASSET_TAG flavors holding it, and queue its host for a new report."""
    record = store.get(session, certificate_id)
    hardware_uuid, sha384 = record.hardware_uuid, record.sha384
    flavors = store.delete(session, record)
    audit.record(
        session,
        "tag-certificate.deleted",
        actor=actor,
        outcome="success",
        target=certificate_id,
        hardware_uuid=hardware_uuid,
        sha384=sha384,
        flavors=list(flavors),
    )
    session.commit()
    _reattest_later(session, hardware_uuid, "tag-deleted", actor=actor)


# --- deployment -------------------------------------------------------------------------------------------


def _target_host(session: Session, hardware_uuid: str, host_id: str | None) -> Host:
    if host_id is not None:
        host = get_host(session, host_id)
    else:
        found = session.scalar(select(Host).where(Host.hardware_uuid == hardware_uuid))
        if found is None:
            raise NotFound(
                f"no registered host has hardware UUID {hardware_uuid} (a host's hardware UUID is known once it "
                "was attested or its flavors imported; or give host_id)",
                code="host-not-found",
            )
        host = found
    if host.hardware_uuid is not None and host.hardware_uuid != hardware_uuid:
        raise _wrong_host(hardware_uuid, host.name, host.hardware_uuid)
    return host


def _wrong_host(wanted: str, name: str, actual: object) -> Conflict:
    return Conflict(
        f"the tag certificate is for hardware UUID {wanted}; host {name} is {actual or '(unknown)'}",
        code="tag-certificate-wrong-host",
    )


def _attest_now(session: Session, services: CentralServices, host: Host, *, actor: str) -> Attested:
    try:
        return Attested(attest_host(session, services, host, actor=actor), None)
    except ServiceError as exc:
        return Attested(None, exc)


def deploy(
    session: Session, services: CentralServices, certificate_id: str, host_id: str | None, *, actor: str
) -> Deployed:
    """Write the certificate's digest into its host's TPM, store the host's ASSET_TAG flavor made from it
    (committed), and attest the host."""
    record = store.get(session, certificate_id)
    if record.revoked:
        raise Conflict(f"tag certificate {record.id} is revoked", code="tag-certificate-revoked")
    try:
        cert = verify_tag_certificate(
            record.der, services.keys.tag_ca_certificates, at=utcnow(), memo=services.memos.signatures
        )
    except TagVerificationError as exc:
        raise Conflict(f"tag certificate {record.id}: {exc.message}", code=exc.code) from None
    host = _target_host(session, cert.hardware_uuid, host_id)
    try:
        with agent_client(services.files, host.connection_string) as client:
            claimed = client.host_info()
            reported = claimed.unverified_hardware_uuid()
            if reported != cert.hardware_uuid:  # the registry may be stale; the machine answering decides
                raise _wrong_host(cert.hardware_uuid, host.name, reported)
            client.write_tag(cert.sha384, cert.hardware_uuid)
    except AgentError as exc:
        raise AgentFailed(f"host {host.name}: {exc.message}", code=exc.code) from None
    flavor = build_asset_tag_flavor(cert, host_info=claimed.document)
    replaced = store.asset_tag_flavors(session, cert.hardware_uuid)
    replaced_ids = [row.id for row in replaced]
    for row in replaced:
        session.delete(row)
    session.flush()
    document = thaw(flavor.source) if flavor.source is not None else flavor.to_json()
    upload = FlavorCreate(flavor_collection=FlavorCollectionIn(flavors=[document]), flavorgroup_names=[])
    (stored,) = store_flavors(session, services.keys.flavor_signer, upload, actor=actor)
    audit.record(
        session,
        "tag-certificate.deployed",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        certificate_id=record.id,
        sha384=record.sha384,
        flavor_id=stored.id,
        replaced_flavors=replaced_ids,
    )
    session.commit()
    return Deployed(
        record,
        host,
        cert.hardware_uuid,
        stored.id,
        replaced_ids,
        _attest_now(session, services, host, actor=actor),
    )


def clear(session: Session, services: CentralServices, host_id: str, *, actor: str) -> Cleared:
    """Zero the host's asset-tag NV index through its agent, delete its ASSET_TAG flavors (committed), and
    attest the host."""
    host = get_host(session, host_id)
    try:
        with agent_client(services.files, host.connection_string) as client:
            reported = client.host_info().unverified_hardware_uuid()
            if reported is None or (host.hardware_uuid is not None and reported != host.hardware_uuid):
                raise Conflict(
                    f"host {host.name} is registered as {host.hardware_uuid or '(unknown)'} but its agent "
                    f"reports hardware UUID {reported or '(none)'}: the tag is left alone",
                    code="hardware-uuid-mismatch",
                )
            client.write_tag(bytes(ASSET_TAG_NV_SIZE), reported)
    except AgentError as exc:
        raise AgentFailed(f"host {host.name}: {exc.message}", code=exc.code) from None
    hardware_uuid = host.hardware_uuid or reported
    removed = store.asset_tag_flavors(session, hardware_uuid) if hardware_uuid else []
    removed_ids = [row.id for row in removed]
    for row in removed:
        session.delete(row)
    audit.record(
        session,
        "tag.cleared",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        hardware_uuid=hardware_uuid,
        removed_flavors=removed_ids,
    )
    session.commit()
    return Cleared(host, hardware_uuid, removed_ids, _attest_now(session, services, host, actor=actor))
