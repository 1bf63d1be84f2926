"""/hvs/v2/tag-certificates and /hvs/v2/rpc/deploy-tag-certificate: asset tags for hosts.

``POST /tag-certificates {hardware_uuid, selection_content: [{name, value}], validity_days}`` issues SecL's
tag certificate with the central's Tag CA (:mod:`secl.central.hvs.tagstore`); search, get, revoke
(``POST /tag-certificates/{id}/revoke``) and delete follow. A bad selection is a 400 whose code names the
broken rule (``tag-name-duplicate``, ``tag-value-too-long``, ``tag-selection-too-many``, ...).

Deploying (``POST /rpc/deploy-tag-certificate {certificate_id, host_id?}``) refuses a revoked, expired or
not yet valid certificate (409 with its code), and one for another machine than the host's: the host is
the registered host with the certificate's hardware UUID, or ``host_id``, and the hardware UUID its trust
agent reports now must be the certificate's (409 ``tag-certificate-wrong-host``). Then the agent writes the
certificate's SHA-384 into its TPM (``POST /v2/tag``), the host's ASSET_TAG flavor is made from the
certificate, signed and stored in the host_unique group (replacing the host's earlier ASSET_TAG flavors,
whose digests are no longer in the TPM), and the host is attested; the answer carries that report's
verdict and tags, or why attesting failed (the tag and the flavor stay deployed).

Revoking or deleting a certificate queues a report job for its host, so a worker re-attests it and the
host's standing (``GET /hvs/v2/hosts?trusted=true&tag=...``) follows without waiting for the report to
expire.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any

from flask import current_app
from pydantic import BaseModel, Field
from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import APIError, Conflict, NotFound, ValidationFailed
from secl.central.hvs import flavorstore, jobs, tagstore, verifier
from secl.central.hvs.agentclient import AgentError
from secl.central.hvs.hoststore import get_host
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import FlavorCollectionIn, FlavorCreate, UUIDStr
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.store.models import utcnow
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.core.assettag import (
    ASSET_TAG_NV_SIZE,
    AssetTagError,
    TagVerificationError,
    build_asset_tag_flavor,
    parse_tag_selection,
    verify_tag_certificate,
)
from secl.core.pcrevents import thaw

# The core checks the limits in UTF-8 bytes with named codes; these only bound what is parsed at all.
_Text = Annotated[str, Field(max_length=1024)]


class TagIn(Strict):
    name: _Text
    value: _Text


class TagCertificateCreate(Strict):
    """SecL's TagCertificateCreateCriteria, plus the validity (days from now)."""

    hardware_uuid: UUIDStr
    selection_content: Annotated[list[TagIn], Field(max_length=1024)]
    validity_days: Annotated[int, Field(ge=1, le=3650)] = tagstore.DEFAULT_VALIDITY_DAYS


class TagOut(BaseModel):
    name: str
    value: str


class TagCertificateOut(BaseModel):
    id: str
    hardware_uuid: str
    subject: str
    issuer: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    selection_content: list[TagOut]
    sha384: str  # hex: what the host's TPM holds once deployed
    certificate: str  # base64 DER, SecL's field
    revoked: bool
    revoked_at: datetime | None
    revoked_by: str | None
    created_at: datetime
    created_by: str


class TagCertificateCollection(BaseModel):
    tag_certificates: list[TagCertificateOut]


class TagCertificateSearch(Strict):
    id: UUIDStr | None = None
    hardwareUuid: UUIDStr | None = None
    subjectEqualTo: Annotated[str, Field(max_length=255)] | None = None
    subjectContains: Annotated[str, Field(max_length=255)] | None = None
    validOn: datetime | None = None
    revoked: bool | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class DeployTagCertificate(Strict):
    certificate_id: UUIDStr
    host_id: UUIDStr | None = None  # default: the registered host with the certificate's hardware UUID


class DeployOut(BaseModel):
    certificate_id: str
    host_id: str
    host_name: str
    hardware_uuid: str
    flavor_id: str
    replaced_flavor_ids: list[str]
    report_id: str | None  # the report made right after deploying; null when attesting failed
    trusted: bool | None
    tags: dict[str, str]  # what that report verified
    attestation_error: dict[str, Any] | None  # {code, message} when attesting failed


class ClearTag(Strict):
    host_id: UUIDStr


class ClearTagOut(BaseModel):
    host_id: str
    host_name: str
    hardware_uuid: str | None
    removed_flavor_ids: list[str]  # the host's ASSET_TAG flavors, deleted
    report_id: str | None  # the report made right after clearing; null when attesting failed
    trusted: bool | None
    attestation_error: dict[str, Any] | None


def _out(record: TagCertificateRecord) -> TagCertificateOut:
    return TagCertificateOut(
        id=record.id, hardware_uuid=record.hardware_uuid, subject=record.subject, issuer=record.issuer,
        serial_number=record.serial_number, not_before=record.not_before, not_after=record.not_after,
        selection_content=[TagOut(**t) for t in record.tags], sha384=record.sha384,
        certificate=base64.b64encode(record.der).decode(), revoked=record.revoked,
        revoked_at=record.revoked_at, revoked_by=record.revoked_by, created_at=record.created_at,
        created_by=record.created_by,
    )  # fmt: skip


def _reattest_later(session: Session, hardware_uuid: str, reason: str) -> None:
    """Queue a report job for the host carrying this certificate, if it is registered."""
    host_id = session.scalar(select(Host.id).where(Host.hardware_uuid == hardware_uuid))
    if host_id is not None:
        jobs.enqueue(session, [host_id], actor=current_principal().username, reason=reason)


# --- tag certificates -------------------------------------------------------------------------------------


@endpoint(bp, "/tag-certificates", "POST", permission="HVS:tag-certificates:create", body=TagCertificateCreate,
          response=TagCertificateOut, status=201,
          summary="Issue a tag certificate (SecL's format, signed by the central's Tag CA) for a host's "
                  "hardware UUID and a selection of name/value tags")  # fmt: skip
def create_tag_certificate(body: TagCertificateCreate) -> TagCertificateOut:
    session, actor = db(), current_principal().username
    try:
        selection = parse_tag_selection([t.model_dump() for t in body.selection_content])
    except AssetTagError as exc:
        raise ValidationFailed(exc.message, code=exc.code) from None
    record = tagstore.issue(
        session, current_app, hardware_uuid=body.hardware_uuid, selection=selection, actor=actor,
        validity_days=body.validity_days,
    )  # fmt: skip
    audit.record(session, "tag-certificate.created", actor=actor, outcome="success", target=record.id,
                 hardware_uuid=record.hardware_uuid, sha384=record.sha384,
                 tags=[t["name"] for t in record.tags])  # fmt: skip
    session.commit()
    return _out(record)


@endpoint(bp, "/tag-certificates", "GET", permission="HVS:tag-certificates:search", query=TagCertificateSearch,
          response=TagCertificateCollection,
          summary="Search tag certificates, newest first (id, hardwareUuid, subjectEqualTo, subjectContains, "
                  "validOn, revoked, limit)")  # fmt: skip
def search_tag_certificates(query: TagCertificateSearch) -> TagCertificateCollection:
    found = tagstore.search(
        db(), certificate_id=query.id, hardware_uuid=query.hardwareUuid, subject_equal_to=query.subjectEqualTo,
        subject_contains=query.subjectContains, valid_on=query.validOn, revoked=query.revoked, limit=query.limit,
    )  # fmt: skip
    return TagCertificateCollection(tag_certificates=[_out(r) for r in found])


@endpoint(bp, "/tag-certificates/<certificate_id>", "GET", permission="HVS:tag-certificates:retrieve",
          response=TagCertificateOut, summary="One tag certificate")  # fmt: skip
def retrieve_tag_certificate(certificate_id: str) -> TagCertificateOut:
    return _out(tagstore.get(db(), certificate_id))


@endpoint(bp, "/tag-certificates/<certificate_id>/revoke", "POST", permission="HVS:tag-certificates:revoke",
          response=TagCertificateOut,
          summary="Revoke a tag certificate: the next report of a host carrying it fails TagCertificateTrusted "
                  "with TagCertificateRevoked (the host is queued for a new report)")  # fmt: skip
def revoke_tag_certificate(certificate_id: str) -> TagCertificateOut:
    session, actor = db(), current_principal().username
    record = tagstore.get(session, certificate_id)
    if tagstore.revoke(record, actor=actor):
        audit.record(session, "tag-certificate.revoked", actor=actor, outcome="success", target=record.id,
                     hardware_uuid=record.hardware_uuid, sha384=record.sha384)  # fmt: skip
        session.commit()
        _reattest_later(session, record.hardware_uuid, "tag-revoked")
    return _out(record)


@endpoint(bp, "/tag-certificates/<certificate_id>", "DELETE", permission="HVS:tag-certificates:delete",
          summary="Delete a tag certificate and the ASSET_TAG flavors holding it: a host that still carries "
                  "it has a tag no flavor vouches for (RequiredFlavorTypeMissing for ASSET_TAG)")  # fmt: skip
def delete_tag_certificate(certificate_id: str) -> None:
    session, actor = db(), current_principal().username
    record = tagstore.get(session, certificate_id)
    hardware_uuid, sha384 = record.hardware_uuid, record.sha384
    flavors = tagstore.delete(session, record)
    audit.record(session, "tag-certificate.deleted", actor=actor, outcome="success", target=certificate_id,
                 hardware_uuid=hardware_uuid, sha384=sha384, flavors=list(flavors))  # fmt: skip
    session.commit()
    _reattest_later(session, hardware_uuid, "tag-deleted")


# --- deployment -------------------------------------------------------------------------------------------


def _target_host(session: Session, hardware_uuid: str, host_id: str | None) -> Host:
    if host_id is not None:
        host = get_host(session, host_id)
    else:
        host = session.scalar(select(Host).where(Host.hardware_uuid == hardware_uuid))
        if host is None:
            raise NotFound(
                f"no registered host has hardware UUID {hardware_uuid} (a host's hardware UUID is known once it "
                "was attested or its flavors imported; or give host_id)", code="host-not-found",
            )  # fmt: skip
    if host.hardware_uuid is not None and host.hardware_uuid != hardware_uuid:
        raise _wrong_host(hardware_uuid, host.name, host.hardware_uuid)
    return host


def _wrong_host(wanted: str, name: str, actual: object) -> Conflict:
    return Conflict(
        f"the tag certificate is for hardware UUID {wanted}; host {name} is {actual or '(unknown)'}",
        code="tag-certificate-wrong-host",
    )


def _agent_hardware_uuid(host_info: dict[str, Any]) -> str | None:
    try:
        return str(uuid.UUID(str(host_info.get("hardware_uuid"))))
    except ValueError:
        return None


@endpoint(bp, "/rpc/deploy-tag-certificate", "POST", permission="HVS:tag-certificates:deploy",
          body=DeployTagCertificate, response=DeployOut,
          summary="Deploy a tag certificate: its host's trust agent writes its SHA-384 into TPM NV 0x01C10110, "
                  "the host's ASSET_TAG flavor is made, signed and stored, and the host is attested")  # fmt: skip
def deploy_tag_certificate(body: DeployTagCertificate) -> DeployOut:
    session, app, actor = db(), current_app, current_principal().username
    record = tagstore.get(session, body.certificate_id)
    if record.revoked:
        raise Conflict(f"tag certificate {record.id} is revoked", code="tag-certificate-revoked")
    try:
        cert = verify_tag_certificate(
            record.der,
            tagstore.tag_ca_certificates(app),
            at=utcnow(),
            memo=flavorstore.verification_memo(app),
        )
    except TagVerificationError as exc:
        raise Conflict(f"tag certificate {record.id}: {exc.message}", code=exc.code) from None
    host = _target_host(session, cert.hardware_uuid, body.host_id)
    try:
        with verifier.agent_client(app, host.connection_string) as client:
            host_info = client.host_info()
            reported = _agent_hardware_uuid(host_info)
            if reported != cert.hardware_uuid:  # the registry may be stale; the machine answering decides
                raise _wrong_host(cert.hardware_uuid, host.name, reported)
            client.write_tag(cert.sha384, cert.hardware_uuid)
    except AgentError as exc:
        raise verifier.AgentFailed(f"host {host.name}: {exc.message}", code=exc.code) from None
    flavor = build_asset_tag_flavor(cert, host_info=host_info)
    replaced = tagstore.asset_tag_flavors(session, cert.hardware_uuid)
    replaced_ids = [row.id for row in replaced]
    for row in replaced:
        session.delete(row)
    session.flush()
    document = thaw(flavor.source) if flavor.source is not None else flavor.to_json()
    upload = FlavorCreate(flavor_collection=FlavorCollectionIn(flavors=[document]), flavorgroup_names=[])
    (stored,) = flavorstore.store_flavors(session, app, upload, actor=actor)
    audit.record(session, "tag-certificate.deployed", actor=actor, outcome="success", target=host.name,
                 host_id=host.id, certificate_id=record.id, sha384=record.sha384, flavor_id=stored.id,
                 replaced_flavors=replaced_ids)  # fmt: skip
    session.commit()
    result: dict[str, Any] = {"report_id": None, "trusted": None, "tags": {}, "attestation_error": None}
    try:
        report = verifier.attest_host(session, app, host, actor=actor)
        result |= {"report_id": report.id, "trusted": report.trusted, "tags": dict(report.tags or {})}
    except APIError as exc:
        result["attestation_error"] = {"code": exc.code, "message": exc.message}
    return DeployOut(
        certificate_id=record.id, host_id=host.id, host_name=host.name, hardware_uuid=cert.hardware_uuid,
        flavor_id=stored.id, replaced_flavor_ids=replaced_ids, **result,
    )  # fmt: skip


@endpoint(bp, "/rpc/clear-tag", "POST", permission="HVS:tag-certificates:deploy", body=ClearTag,
          response=ClearTagOut,
          summary="Remove a host's asset tag: its trust agent writes zeros into TPM NV 0x01C10110 (no tag), "
                  "the host's ASSET_TAG flavors are deleted, and the host is attested")  # fmt: skip
def clear_tag(body: ClearTag) -> ClearTagOut:
    session, app, actor = db(), current_app, current_principal().username
    host = get_host(session, body.host_id)
    try:
        with verifier.agent_client(app, host.connection_string) as client:
            reported = _agent_hardware_uuid(client.host_info())
            if reported is None or (host.hardware_uuid is not None and reported != host.hardware_uuid):
                raise Conflict(
                    f"host {host.name} is registered as {host.hardware_uuid or '(unknown)'} but its agent "
                    f"reports hardware UUID {reported or '(none)'}: the tag is left alone",
                    code="hardware-uuid-mismatch",
                )  # fmt: skip
            client.write_tag(bytes(ASSET_TAG_NV_SIZE), reported)
    except AgentError as exc:
        raise verifier.AgentFailed(f"host {host.name}: {exc.message}", code=exc.code) from None
    hardware_uuid = host.hardware_uuid or reported
    removed = tagstore.asset_tag_flavors(session, hardware_uuid) if hardware_uuid else []
    removed_ids = [row.id for row in removed]
    for row in removed:
        session.delete(row)
    audit.record(session, "tag.cleared", actor=actor, outcome="success", target=host.name, host_id=host.id,
                 hardware_uuid=hardware_uuid, removed_flavors=removed_ids)  # fmt: skip
    session.commit()
    result: dict[str, Any] = {"report_id": None, "trusted": None, "attestation_error": None}
    try:
        report = verifier.attest_host(session, app, host, actor=actor)
        result |= {"report_id": report.id, "trusted": report.trusted}
    except APIError as exc:
        result["attestation_error"] = {"code": exc.code, "message": exc.message}
    return ClearTagOut(
        host_id=host.id,
        host_name=host.name,
        hardware_uuid=hardware_uuid,
        removed_flavor_ids=removed_ids,
        **result,
    )
