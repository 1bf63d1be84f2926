"""/hvs/v2/flavors: manual upload, search, retrieval, export and deletion of signed flavors.

Export is the search itself: ``GET /hvs/v2/flavors`` (with or without filters) answers SecL's
``{"signed_flavors": [{"flavor", "signature", ...}]}``, each flavor verified first, which
:func:`secl.core.flavor.parse_signed_flavors` and SecL's own tools read back; ``GET /hvs/v2/flavors/<id>``
answers one envelope. A stored flavor whose signature does not verify is never returned: the request is
refused with 409 ``flavor-signature-invalid`` naming it, and the server log says so as an error.

Import from a live host (a connection string and flavor parts, driven by the flavor templates) is a separate
path of the same POST, done elsewhere.
"""

from __future__ import annotations

from flask import current_app
from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, NotFound
from secl.central.hvs import flavorstore
from secl.central.hvs.store_schemas import FlavorCreate, FlavorSearch, SignedFlavorCollection, SignedFlavorOut
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import StoredFlavor, flavorgroup_flavors
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError


def _get(flavor_id: str) -> StoredFlavor:
    row = db().get(StoredFlavor, flavor_id)
    if row is None:
        raise NotFound(f"no flavor {flavor_id}", code="flavor-not-found")
    return row


def _verified_out(row: StoredFlavor) -> SignedFlavorOut:
    return flavorstore.signed_out(row, flavorstore.verified(current_app, row))


@endpoint(bp, "/flavors", "POST", permission="HVS:flavors:create", body=FlavorCreate,
          response=SignedFlavorCollection, status=201,
          summary="Upload flavors (SecL's flavor_collection, or signed_flavors whose SecL signature is kept); "
                  "each is signed with the central's flavor-signing key and added to its flavor groups")  # fmt: skip
def create_flavors(body: FlavorCreate) -> SignedFlavorCollection:
    session, actor = db(), current_principal().username
    rows = flavorstore.store_flavors(session, current_app, body, actor=actor)
    audit.record(
        session, "flavor.created", actor=actor, outcome="success", target=",".join(r.id for r in rows)[:255],
        flavors=[{"id": r.id, "flavor_part": r.flavor_part, "label": r.label} for r in rows],
        flavorgroups=body.flavorgroup_names,
    )  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # the same id or label stored meanwhile by another request
        session.rollback()
        raise Conflict(
            "a flavor with the same id or part and label was stored meanwhile", code="flavor-exists"
        ) from None
    return SignedFlavorCollection(signed_flavors=[_verified_out(r) for r in rows])


@endpoint(bp, "/flavors", "GET", permission="HVS:flavors:search", query=FlavorSearch,
          response=SignedFlavorCollection,
          summary="Search and export signed flavors (id, flavorgroupId, flavorPart, key/value on "
                  "meta.description); every flavor is verified before it is returned")  # fmt: skip
def search_flavors(query: FlavorSearch) -> SignedFlavorCollection:
    statement = select(StoredFlavor).order_by(StoredFlavor.created_at, StoredFlavor.id)
    if query.id is not None:
        statement = statement.where(StoredFlavor.id == query.id)
    if query.flavorPart is not None:
        statement = statement.where(StoredFlavor.flavor_part == query.flavorPart)
    if query.key is not None:
        statement = statement.where(StoredFlavor.description[query.key].as_string() == query.value)
    if query.flavorgroupId is not None:
        statement = statement.join(
            flavorgroup_flavors, flavorgroup_flavors.c.flavor_id == StoredFlavor.id
        ).where(flavorgroup_flavors.c.flavorgroup_id == query.flavorgroupId)
    return SignedFlavorCollection(signed_flavors=[_verified_out(r) for r in db().scalars(statement)])


@endpoint(bp, "/flavors/<flavor_id>", "GET", permission="HVS:flavors:retrieve", response=SignedFlavorOut,
          summary="One signed flavor {flavor, signature}, after verifying the central's signature over it")  # fmt: skip
def retrieve_flavor(flavor_id: str) -> SignedFlavorOut:
    return _verified_out(_get(flavor_id))


@endpoint(bp, "/flavors/<flavor_id>", "DELETE", permission="HVS:flavors:delete",
          summary="Delete a flavor and its flavor group links")  # fmt: skip
def delete_flavor(flavor_id: str) -> None:
    session, actor = db(), current_principal().username
    row = _get(flavor_id)
    session.delete(row)
    audit.record(session, "flavor.deleted", actor=actor, outcome="success", target=row.id,
                 flavor_part=row.flavor_part, label=row.label[:255])  # fmt: skip
    session.commit()
