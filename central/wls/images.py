"""Images and image flavors as SecL's WLS v4 kept them: an image flavor (SecL's JSON, what ``secl-wpm``
writes) is signed with the central's flavor-signing key when it is uploaded and checked before it is served;
an image links to the flavors that describe it.

The signature covers the RFC 8785 canonical JSON of the flavor as stored (meta.id included: the image
owner chose it and it is part of what is vouched for), made by :func:`secl.core.flavorsign.sign_payload`,
the same signature the HVS flavors carry.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Invalid, NotFound
from secl.central.store.wls_models import ImageFlavorLink, ImageFlavorRecord, ImageRecord
from secl.core.canonicaljson import canonicalize
from secl.core.flavorsign import FlavorSignatureError, sign_payload, verify_payload


@dataclass(frozen=True)
class SignedImageFlavor:
    flavor: dict[str, Any]
    signature: str


# --- flavors -----------------------------------------------------------------------------------------------


def create_flavor(
    session: Session, services: CentralServices, flavor: dict[str, Any], *, actor: str
) -> SignedImageFlavor:
    """Store and sign an image flavor (already shape-checked by the schema)."""
    meta = flavor["meta"]
    payload = canonicalize(flavor)
    signature = sign_payload(payload, services.keys.flavor_signer.key)
    row = ImageFlavorRecord(
        id=meta["id"],
        label=meta["description"]["label"],
        key_url=(flavor.get("encryption") or {}).get("key_url", ""),
        document=payload.decode(),
        signature=signature,
        created_by=actor,
    )
    session.add(row)
    audit.record(
        session, "wls.flavor-created", actor=actor, outcome="success", target=row.id, label=row.label
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("an image flavor with this id or label exists", code="already-exists") from None
    return SignedImageFlavor(flavor, signature)


def _flavor_row(session: Session, flavor_id: str) -> ImageFlavorRecord:
    row = session.get(ImageFlavorRecord, flavor_id)
    if row is None:
        raise NotFound(f"no image flavor {flavor_id}", code="flavor-not-found")
    return row


def verified_flavor(services: CentralServices, row: ImageFlavorRecord) -> SignedImageFlavor:
    """The stored flavor once its signature verifies: a row changed behind the central's back is refused."""
    try:
        verify_payload(
            row.document.encode(),
            base64.b64decode(row.signature, validate=True),
            services.keys.flavor_signer.certificate,
        )
    except (FlavorSignatureError, binascii.Error, ValueError):
        raise Conflict(
            f"image flavor {row.id} is refused: its signature does not verify (changed after it was signed)",
            code="flavor-signature-invalid",
        ) from None
    return SignedImageFlavor(json.loads(row.document), row.signature)


def get_flavor(session: Session, services: CentralServices, flavor_id: str) -> SignedImageFlavor:
    return verified_flavor(services, _flavor_row(session, flavor_id))


def search_flavors(
    session: Session, services: CentralServices, *, label: str | None
) -> list[SignedImageFlavor]:
    query = select(ImageFlavorRecord).order_by(ImageFlavorRecord.created_at, ImageFlavorRecord.id)
    if label:
        query = query.where(ImageFlavorRecord.label == label)
    return [verified_flavor(services, row) for row in session.scalars(query)]


def delete_flavor(session: Session, flavor_id: str, *, actor: str) -> None:
    row = _flavor_row(session, flavor_id)
    linked = session.scalar(select(ImageFlavorLink.image_id).where(ImageFlavorLink.flavor_id == flavor_id))
    if linked is not None:
        raise Conflict(f"image {linked} uses this flavor: delete the image first", code="flavor-in-use")
    session.delete(row)
    audit.record(session, "wls.flavor-deleted", actor=actor, outcome="success", target=flavor_id)
    session.commit()


# --- images ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    id: str
    flavor_ids: list[str]


def create_image(session: Session, image_id: str, flavor_ids: Sequence[str], *, actor: str) -> Image:
    ids = list(dict.fromkeys(flavor_ids))
    known = set(session.scalars(select(ImageFlavorRecord.id).where(ImageFlavorRecord.id.in_(ids))))
    missing = [f for f in ids if f not in known]
    if missing:
        raise Invalid(
            f"no image flavor {missing[0]}", code="flavor-not-found", details={"flavor_ids": missing}
        )
    session.add(ImageRecord(id=image_id, created_by=actor))
    try:
        session.flush()  # the image row first: a duplicate id fails here, and the links reference it
        session.add_all(ImageFlavorLink(image_id=image_id, flavor_id=f) for f in ids)
        audit.record(session, "wls.image-created", actor=actor, outcome="success", target=image_id)
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"image {image_id} exists", code="already-exists") from None
    return Image(image_id, ids)


def _image_flavor_ids(session: Session, image_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ImageFlavorLink.flavor_id)
            .where(ImageFlavorLink.image_id == image_id)
            .order_by(ImageFlavorLink.flavor_id)
        )
    )


def get_image(session: Session, image_id: str) -> Image:
    if session.get(ImageRecord, image_id) is None:
        raise NotFound(f"no image {image_id}", code="image-not-found")
    return Image(image_id, _image_flavor_ids(session, image_id))


def search_images(session: Session, *, flavor_id: str | None) -> list[Image]:
    query = select(ImageRecord.id).order_by(ImageRecord.created_at, ImageRecord.id)
    if flavor_id:
        query = query.join(ImageFlavorLink, ImageFlavorLink.image_id == ImageRecord.id).where(
            ImageFlavorLink.flavor_id == flavor_id
        )
    return [Image(i, _image_flavor_ids(session, i)) for i in session.scalars(query)]


def delete_image(session: Session, image_id: str, *, actor: str) -> None:
    row = session.get(ImageRecord, image_id)
    if row is None:
        raise NotFound(f"no image {image_id}", code="image-not-found")
    for link in session.scalars(select(ImageFlavorLink).where(ImageFlavorLink.image_id == image_id)):
        session.delete(link)
    session.delete(row)
    audit.record(session, "wls.image-deleted", actor=actor, outcome="success", target=image_id)
    session.commit()


def image_flavor(session: Session, services: CentralServices, image_id: str) -> SignedImageFlavor:
    """The image's IMAGE flavor (SecL links one per image), verified."""
    image = get_image(session, image_id)
    for flavor_id in image.flavor_ids:
        signed = get_flavor(session, services, flavor_id)
        if signed.flavor["meta"]["description"].get("flavor_part") == "IMAGE":
            return signed
    raise NotFound(f"image {image_id} has no image flavor", code="flavor-not-found")
