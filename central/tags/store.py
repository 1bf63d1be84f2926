"""Tag certificates in the store: issued by the central's Tag CA, searched, revoked, deleted.

Issuing makes SecL's X.509 tag certificate (:func:`secl.core.assettag.create_tag_certificate`) for one
host's hardware UUID from a validated selection, valid from now for ``validity_days``, and keeps it with
copies of its fields for searching. Revoking flags the row: the verifier passes the revoked digests of a
host to TagCertificateTrusted, so the next report of a host carrying it says TagCertificateRevoked.
Deleting removes the row and the ASSET_TAG flavors that hold the certificate, so the next report of a
host that still carries the tag in its TPM says RequiredFlavorTypeMissing for ASSET_TAG (see
:mod:`secl.central.reports.judge`). The functions add to the session; the caller commits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central.cms.pki import Issuer
from secl.central.errors import Invalid, NotFound
from secl.central.store.hvs_flavor_models import StoredFlavor
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.store.models import utcnow
from secl.core.assettag import (
    AssetTagError,
    TagCertificate,
    TagSelection,
    create_tag_certificate,
    parse_tag_certificate,
)

DEFAULT_VALIDITY_DAYS = 365


def issue(
    session: Session,
    tag_ca: Issuer,
    *,
    hardware_uuid: str,
    selection: TagSelection,
    actor: str,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> TagCertificateRecord:
    """Issue and add a tag certificate; bad input raises :class:`Invalid` with the core's code.

    The validity is ``validity_days`` from now unless ``not_before``/``not_after`` are given (tests make
    certificates that expire in a few seconds that way; the API offers days only).
    """
    start = not_before or utcnow().replace(microsecond=0)
    end = not_after or start + timedelta(days=validity_days)
    try:
        cert = create_tag_certificate(
            ca_certificate=tag_ca.certificate,
            ca_key=tag_ca.key,
            hardware_uuid=hardware_uuid,
            selection=selection,
            not_before=start,
            not_after=end,
            serial_number=x509.random_serial_number(),
        )
    except AssetTagError as exc:
        raise Invalid(exc.message, code=exc.code) from None
    record = TagCertificateRecord(
        hardware_uuid=cert.hardware_uuid,
        subject=cert.certificate.subject.rfc4514_string(),
        issuer=cert.issuer,
        serial_number=format(cert.serial_number, "x"),
        tags=[t.to_json() for t in cert.tags],
        not_before=cert.not_before,
        not_after=cert.not_after,
        sha384=cert.digest_hex,
        der=cert.der,
        revoked=False,
        created_by=actor,
    )
    session.add(record)
    session.flush()
    return record


def certificate(record: TagCertificateRecord) -> TagCertificate:
    """The stored certificate, parsed (it was made here, so it parses; the DER is what is trusted)."""
    return parse_tag_certificate(record.der)


def get(session: Session, certificate_id: str) -> TagCertificateRecord:
    record = session.get(TagCertificateRecord, certificate_id)
    if record is None:
        raise NotFound(f"no tag certificate {certificate_id}", code="tag-certificate-not-found")
    return record


def search(
    session: Session,
    *,
    certificate_id: str | None = None,
    hardware_uuid: str | None = None,
    subject_equal_to: str | None = None,
    subject_contains: str | None = None,
    valid_on: datetime | None = None,
    revoked: bool | None = None,
    limit: int = 100,
) -> list[TagCertificateRecord]:
    """Tag certificates, newest first. ``valid_on``: within their validity then (revoked or not)."""
    statement = select(TagCertificateRecord).order_by(
        TagCertificateRecord.created_at.desc(), TagCertificateRecord.id
    )
    if certificate_id is not None:
        statement = statement.where(TagCertificateRecord.id == certificate_id)
    if hardware_uuid is not None:
        statement = statement.where(TagCertificateRecord.hardware_uuid == hardware_uuid.lower())
    if subject_equal_to is not None:
        statement = statement.where(TagCertificateRecord.subject == subject_equal_to)
    if subject_contains is not None:
        statement = statement.where(TagCertificateRecord.subject.contains(subject_contains, autoescape=True))
    if valid_on is not None:
        statement = statement.where(
            TagCertificateRecord.not_before <= valid_on, TagCertificateRecord.not_after >= valid_on
        )
    if revoked is not None:
        statement = statement.where(TagCertificateRecord.revoked == revoked)
    return list(session.scalars(statement.limit(limit)))


def revoke(record: TagCertificateRecord, *, actor: str) -> bool:
    """Flag the certificate revoked; False when it already was (the first revocation's time is kept)."""
    if record.revoked:
        return False
    record.revoked, record.revoked_at, record.revoked_by = True, utcnow(), actor
    return True


def asset_tag_flavors(session: Session, hardware_uuid: str) -> list[StoredFlavor]:
    """The host's ASSET_TAG flavors, oldest first."""
    return list(
        session.scalars(
            select(StoredFlavor)
            .where(
                StoredFlavor.flavor_part == "ASSET_TAG", StoredFlavor.hardware_uuid == hardware_uuid.lower()
            )
            .order_by(StoredFlavor.created_at, StoredFlavor.id)
        )
    )


def flavor_certificate_sha384(row: StoredFlavor) -> str | None:
    """Hex SHA-384 of the tag certificate an ASSET_TAG flavor row holds; None when it holds none."""
    try:
        encoded = json.loads(row.document)["external"]["asset_tag"]["tag_certificate"]["encoded"]
        return hashlib.sha384(base64.b64decode(encoded, validate=True)).hexdigest()
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def flavors_holding(session: Session, record: TagCertificateRecord) -> list[StoredFlavor]:
    """The ASSET_TAG flavors whose tag certificate is this one."""
    return [
        row
        for row in asset_tag_flavors(session, record.hardware_uuid)
        if flavor_certificate_sha384(row) == record.sha384
    ]


def delete(session: Session, record: TagCertificateRecord) -> Sequence[str]:
    """Delete the certificate and the ASSET_TAG flavors that hold it; returns the deleted flavors' ids."""
    flavors = flavors_holding(session, record)
    for row in flavors:
        session.delete(row)
    session.delete(record)
    return [row.id for row in flavors]
