"""The flavor store: every flavor is signed by the central when stored and verified before every use.

Manual upload takes SecL's ``flavor_collection`` (unsigned flavors) or ``signed_flavors`` (flavors SecL's
HVS signed: that signature is kept as it came, checked when SecL's signer certificate is given, and ours is
added). Our signature (:mod:`secl.core.flavorsign`, the flavor-signing key made by setup) covers the
canonical JSON of the flavor with meta.id zeroed, so it does not depend on how the document is stored.

:func:`load_verified_flavors` is what the verifier calls: a stored flavor whose signature no longer
verifies (the row was edited behind the central's back) is never handed out; it is logged as an error and
refused with ``flavor-signature-invalid`` (a Conflict).

Upload, search and deletion as the API offers them are in :mod:`secl.central.flavors.service`; this module
is what they, flavor import and the verifier share.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.errors import Conflict, Invalid
from secl.central.flavorgroups import service as groups
from secl.central.flavors.schemas import FlavorCreate
from secl.central.keys import FlavorSigner
from secl.central.store.hvs_flavor_models import FlavorGroup, StoredFlavor, flavorgroup_flavors
from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, FlavorError, SignedFlavor, parse_flavor
from secl.core.flavorsign import (
    NIL_UUID,
    SIGNATURE_SCHEME,
    FlavorSignatureError,
    check_secl_signature,
    sign_flavor,
    verify_flavor_signature,
)
from secl.core.pcrevents import thaw

log = logging.getLogger("secl.central.hvs")

# SecL files its default software flavors (made by its workload tools) under these label prefixes.
_DEFAULT_SOFTWARE = {
    "ISecL_Default_Application_Flavor": groups.PLATFORM_SOFTWARE,
    "ISecL_Default_Workload_Flavor": groups.WORKLOAD_SOFTWARE,
}


class FlavorSignatureInvalid(Conflict):
    code = "flavor-signature-invalid"


# --- reading ----------------------------------------------------------------------------------------------


class FlavorText(Protocol):
    """A stored flavor's text and signature: a :class:`StoredFlavor` row, or the verifier's lighter record."""

    @property
    def id(self) -> str: ...
    @property
    def flavor_part(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def document(self) -> str: ...
    @property
    def signature(self) -> str: ...
    @property
    def signature_scheme(self) -> str: ...


def signed_flavor(row: FlavorText) -> SignedFlavor:
    """The stored flavor in its envelope, not verified (FlavorTrusted or :func:`verified` does that)."""
    try:
        flavor = parse_flavor(row.document)
    except FlavorError as exc:
        raise _invalid(row, f"the stored document no longer parses: {exc.message}") from None
    return SignedFlavor(flavor, row.signature, MappingProxyType({"signature_scheme": row.signature_scheme}))


def _invalid(row: FlavorText, reason: str) -> FlavorSignatureInvalid:
    log.error(
        "FLAVOR SIGNATURE INVALID: stored flavor %s (%s %r) fails verification and is refused: %s; the "
        "flavors table was modified outside the central, restore it from a backup or delete and re-import "
        "the flavor",
        row.id,
        row.flavor_part,
        row.label,
        reason,
    )
    return FlavorSignatureInvalid(
        f"flavor {row.id} is refused: its signature does not verify ({reason}); it was changed after the "
        "central signed it",
        details={"flavor_id": row.id},
    )


def verified(services: CentralServices, row: FlavorText) -> SignedFlavor:
    """The stored flavor after verifying its signature (FlavorSignatureInvalid when it fails).

    A row whose exact text, signature and scheme already verified is taken from the central's memo, parsed
    and verified as it was then; any change to them is parsed and checked afresh. The memo is keyed on the
    row's id, scheme and signature and keeps the verified text, which must equal the row's to the byte: a
    comparison rather than a hash of the ~30 KB text, which the verifier would pay on every report.
    """
    signer = services.keys.flavor_signer
    key = _stored_flavor_key(row, signer)
    memo = services.memos.verified_flavors
    found = memo.get(key)
    if found is not None and found[0] == row.document:
        return found[1]
    signed = signed_flavor(row)
    if signed.flavor.id != row.id:
        raise _invalid(row, f"its meta.id is {signed.flavor.id}")
    try:
        verify_flavor_signature(signed, signer.certificate, memo=services.memos.signatures)
    except FlavorSignatureError as exc:
        raise _invalid(row, exc.message) from None
    memo.put(key, (row.document, signed))
    return signed


def _stored_flavor_key(row: FlavorText, signer: FlavorSigner) -> bytes:
    """The memo key of a stored flavor's signature under this signer (the text is compared, not keyed):
    each field length-prefixed so none can run into the next."""
    h = hashlib.sha256(b"stored-flavor\0")
    for part in (
        row.id.encode(),
        row.signature_scheme.encode(),
        row.signature.encode(),
        signer.certificate_der,
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def flavor_hardware_uuid(description: Mapping[str, Any]) -> str | None:
    """The host a flavor belongs to (``meta.description.hardware_uuid``), lower case; None for none."""
    value = description.get("hardware_uuid")
    if value is None:
        return None
    return str(value).strip().lower() or None


def flavor_rows(
    session: Session,
    *,
    flavor_ids: Sequence[str] | None = None,
    flavorgroup_id: str | None = None,
) -> list[StoredFlavor]:
    statement = select(StoredFlavor).order_by(StoredFlavor.created_at, StoredFlavor.id)
    if flavor_ids is not None:
        statement = statement.where(StoredFlavor.id.in_(list(flavor_ids)))
    if flavorgroup_id is not None:
        statement = statement.join(
            flavorgroup_flavors, flavorgroup_flavors.c.flavor_id == StoredFlavor.id
        ).where(flavorgroup_flavors.c.flavorgroup_id == flavorgroup_id)
    return list(session.scalars(statement))


def load_verified_flavors(
    session: Session,
    services: CentralServices,
    *,
    flavor_ids: Sequence[str] | None = None,
    flavorgroup_id: str | None = None,
) -> list[SignedFlavor]:
    """The flavors (oldest first), each after verifying our signature; a bad one raises, never passes."""
    return [
        verified(services, row)
        for row in flavor_rows(session, flavor_ids=flavor_ids, flavorgroup_id=flavorgroup_id)
    ]


# --- upload -----------------------------------------------------------------------------------------------


@dataclass
class _Upload:
    document: dict[str, Any]
    flavor: Flavor
    secl_signature: str | None


def _with_id(raw: dict[str, Any], where: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(raw))  # a private copy, member order kept
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise Invalid(f"{where}: the meta section is missing or not an object", code="flavor-invalid")
    given = meta.get("id")
    if given in (None, "", NIL_UUID):
        meta["id"] = str(uuid.uuid4())
    elif not isinstance(given, str) or not _is_canonical_uuid(given):
        raise Invalid(
            f"{where}: meta.id {given!r} is not a UUID (lower-case, hyphenated)", code="flavor-invalid"
        )
    return doc


def _is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _parse(doc: dict[str, Any], where: str, secl_signature: str | None) -> _Upload:
    try:
        flavor = parse_flavor(doc)
    except FlavorError as exc:
        raise Invalid(f"{where}: {exc.message}", code="flavor-invalid") from None
    if not flavor.label.strip():
        raise Invalid(f"{where}: meta.description.label is missing", code="flavor-label-missing")
    if len(flavor.label) > 512:
        raise Invalid(f"{where}: meta.description.label is longer than 512", code="flavor-invalid")
    return _Upload(doc, flavor, secl_signature)


def _uploads(body: FlavorCreate) -> list[_Upload]:
    items: list[tuple[dict[str, Any], str | None]]
    if body.flavor_collection is not None:
        items = [(f, None) for f in body.flavor_collection.flavors]
    else:
        items = [(s.flavor, s.signature or None) for s in body.signed_flavors or []]
    uploads = [
        _parse(_with_id(raw, f"flavor [{i}]"), f"flavor [{i}]", sig) for i, (raw, sig) in enumerate(items)
    ]
    seen_ids: set[str] = set()
    seen_labels: set[tuple[str, str]] = set()
    for up in uploads:
        key = (up.flavor.flavor_part, up.flavor.label)
        if up.flavor.id in seen_ids or key in seen_labels:
            raise Conflict(
                f"flavor {up.flavor.id} ({key[0]} {key[1]!r}) is given twice", code="flavor-exists"
            )
        seen_ids.add(up.flavor.id)
        seen_labels.add(key)
    return uploads


def _secl_certificate(pem: str | None) -> x509.Certificate | None:
    if pem is None:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise Invalid(f"secl_signing_certificate is not a PEM certificate: {exc}") from None


def _refuse_existing(session: Session, uploads: Iterable[_Upload]) -> None:
    for up in uploads:
        if session.get(StoredFlavor, up.flavor.id) is not None:
            raise Conflict(f"a flavor with id {up.flavor.id} is stored", code="flavor-exists")
        clash = session.scalar(
            select(StoredFlavor.id).where(
                StoredFlavor.flavor_part == up.flavor.flavor_part, StoredFlavor.label == up.flavor.label
            )
        )
        if clash is not None:
            raise Conflict(
                f"a {up.flavor.flavor_part} flavor labelled {up.flavor.label!r} is stored (id {clash})",
                code="flavor-label-exists",
            )


def _groups_for(
    flavor: Flavor, requested: list[FlavorGroup], by_name: dict[str, FlavorGroup]
) -> list[FlavorGroup]:
    """SecL's placement: HOST_UNIQUE and ASSET_TAG in host_unique, SecL's default software flavors in their
    software groups, everything else in the groups asked for."""
    if flavor.flavor_part in ("HOST_UNIQUE", "ASSET_TAG"):
        return [by_name[groups.HOST_UNIQUE]]
    if flavor.flavor_part == "SOFTWARE":
        for prefix, group in _DEFAULT_SOFTWARE.items():
            if prefix in flavor.label:
                return [by_name[group]]
    return requested


def store_flavors(
    session: Session, signer: FlavorSigner, body: FlavorCreate, *, actor: str
) -> list[StoredFlavor]:
    """Validate, sign and store an upload, linking each flavor to its groups; the caller commits."""
    uploads = _uploads(body)
    secl_cert = _secl_certificate(body.secl_signing_certificate)
    requested = groups.groups_by_name(session, body.flavorgroup_names)
    defaults = groups.groups_by_name(session, [groups.HOST_UNIQUE, *_DEFAULT_SOFTWARE.values()])
    by_name = {g.name: g for g in defaults}
    _refuse_existing(session, uploads)
    rows = []
    for up in uploads:
        try:
            ours = sign_flavor(up.flavor, signer.key)
        except EvidenceError as exc:  # not canonicalizable: a lone surrogate, a non-finite number
            raise Invalid(f"flavor {up.flavor.id}: {exc.message}", code="flavor-invalid") from None
        status = detail = None
        if up.secl_signature is not None:
            status, detail = "unchecked", "no secl_signing_certificate was given"
            if secl_cert is not None:
                check = check_secl_signature(SignedFlavor(up.flavor, up.secl_signature), secl_cert)
                status, detail = check.status, check.detail
        row = StoredFlavor(
            id=up.flavor.id,
            flavor_part=up.flavor.flavor_part,
            label=up.flavor.label,
            description=thaw(up.flavor.meta.description),
            signature=ours.signature,
            hardware_uuid=flavor_hardware_uuid(up.flavor.meta.description),
            document=json.dumps(up.document, ensure_ascii=False, separators=(",", ":")),
            signature_scheme=SIGNATURE_SCHEME,
            secl_signature=up.secl_signature,
            secl_signature_status=status,
            secl_signature_detail=detail,
            created_by=actor,
        )
        session.add(row)
        session.flush()
        for group in _groups_for(up.flavor, requested, by_name):
            groups.link_flavor(session, group, row.id)
        rows.append(row)
    return rows
