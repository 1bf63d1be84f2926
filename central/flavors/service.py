"""Flavors as the API offers them: manual upload, search, retrieval, export and deletion of signed flavors.

Export is the search itself: the flavors found, each verified first, in SecL's ``signed_flavors`` envelope,
which :func:`secl.core.flavor.parse_signed_flavors` and SecL's own tools read back. A stored flavor whose
signature does not verify is never handed out: the call is refused with ``flavor-signature-invalid``
naming it, and the server log says so as an error (:func:`secl.central.flavors.store.verified`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, NotFound
from secl.central.flavors import store
from secl.central.flavors.schemas import FlavorCreate
from secl.central.store.hvs_flavor_models import StoredFlavor, flavorgroup_flavors


def get_flavor(session: Session, flavor_id: str) -> StoredFlavor:
    row = session.get(StoredFlavor, flavor_id)
    if row is None:
        raise NotFound(f"no flavor {flavor_id}", code="flavor-not-found")
    return row


def commit_flavors(session: Session, message: str) -> None:
    """Commit stored flavors; one stored meanwhile with the same id or part and label is a conflict."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(message, code="flavor-exists") from None


def upload(
    session: Session, services: CentralServices, body: FlavorCreate, *, actor: str
) -> list[StoredFlavor]:
    """Sign and store uploaded flavors in their groups (committed)."""
    rows = store.store_flavors(session, services.keys.flavor_signer, body, actor=actor)
    audit.record(
        session,
        "flavor.created",
        actor=actor,
        outcome="success",
        target=",".join(r.id for r in rows)[:255],
        flavors=[{"id": r.id, "flavor_part": r.flavor_part, "label": r.label} for r in rows],
        flavorgroups=body.flavorgroup_names,
    )
    # The same id or label may have been stored meanwhile by another request.
    commit_flavors(session, "a flavor with the same id or part and label was stored meanwhile")
    return rows


def search(
    session: Session,
    *,
    flavor_id: str | None,
    flavor_part: str | None,
    key: str | None,
    value: str | None,
    flavorgroup_id: str | None,
) -> list[StoredFlavor]:
    """Flavors, oldest first; ``key``/``value`` select on ``meta.description``."""
    statement = select(StoredFlavor).order_by(StoredFlavor.created_at, StoredFlavor.id)
    if flavor_id is not None:
        statement = statement.where(StoredFlavor.id == flavor_id)
    if flavor_part is not None:
        statement = statement.where(StoredFlavor.flavor_part == flavor_part)
    if key is not None:
        statement = statement.where(StoredFlavor.description[key].as_string() == value)
    if flavorgroup_id is not None:
        statement = statement.join(
            flavorgroup_flavors, flavorgroup_flavors.c.flavor_id == StoredFlavor.id
        ).where(flavorgroup_flavors.c.flavorgroup_id == flavorgroup_id)
    return list(session.scalars(statement))


def delete_flavor(session: Session, flavor_id: str, *, actor: str) -> None:
    row = get_flavor(session, flavor_id)
    session.delete(row)
    audit.record(
        session,
        "flavor.deleted",
        actor=actor,
        outcome="success",
        target=row.id,
        flavor_part=row.flavor_part,
        label=row.label[:255],
    )
    session.commit()
