"""/hvs/v2/flavor-templates: CRUD of flavor templates (see :mod:`secl.central.hvs.templatestore`).

Default templates cannot be deleted; they can be deactivated (``PATCH {"active": false}``), and an inactive
template is not used when flavors are imported from a host.
"""

from __future__ import annotations

import uuid

from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, NotFound
from secl.central.hvs.templatestore import (
    FlavorTemplateIn,
    FlavorTemplateOut,
    FlavorTemplateSearch,
    FlavorTemplateUpdate,
)
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import FlavorTemplate
from secl.central.store.models import utcnow
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def _get(session: Session, template_id: str) -> FlavorTemplate:
    row = session.get(FlavorTemplate, template_id)
    if row is None:
        raise NotFound(f"no flavor template {template_id}", code="flavor-template-not-found")
    return row


def _out(row: FlavorTemplate) -> FlavorTemplateOut:
    doc = row.document
    return FlavorTemplateOut(
        id=row.id, label=row.label, condition=doc["condition"], flavor_parts=doc["flavor_parts"],
        is_default=row.is_default, active=row.active, created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


# --- routes -----------------------------------------------------------------------------------------------


@endpoint(bp, "/flavor-templates", "POST", permission="HVS:flavor-templates:create", body=FlavorTemplateIn,
          response=FlavorTemplateOut, status=201,
          summary="Add a flavor template (SecL's format: label, condition[], flavor_parts with pcr_rules)")  # fmt: skip
def create_flavor_template(body: FlavorTemplateIn) -> FlavorTemplateOut:
    session, actor = db(), current_principal().username
    template_id = body.id or str(uuid.uuid4())
    if session.get(FlavorTemplate, template_id) is not None:
        raise Conflict(f"a flavor template with id {template_id} exists", code="flavor-template-exists")
    if session.scalar(select(FlavorTemplate).where(FlavorTemplate.label == body.label)) is not None:
        raise Conflict(f"a flavor template labelled {body.label} exists", code="flavor-template-exists")
    row = FlavorTemplate(id=template_id, label=body.label, document=body.document(template_id),
                         is_default=False, active=True)  # fmt: skip
    session.add(row)
    audit.record(session, "flavor-template.created", actor=actor, outcome="success", target=body.label,
                 template_id=template_id)  # fmt: skip
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"a flavor template labelled {body.label} exists", code="flavor-template-exists"
        ) from None
    return _out(row)


@endpoint(bp, "/flavor-templates", "GET", permission="HVS:flavor-templates:search", query=FlavorTemplateSearch,
          response=list[FlavorTemplateOut],
          summary="Search flavor templates (id, label, flavorPart; inactive ones with includeInactive=true)")  # fmt: skip
def search_flavor_templates(query: FlavorTemplateSearch) -> list[FlavorTemplateOut]:
    statement = select(FlavorTemplate).order_by(FlavorTemplate.label)
    if query.id is not None:
        statement = statement.where(FlavorTemplate.id == query.id)
    if query.label is not None:
        statement = statement.where(FlavorTemplate.label == query.label)
    if not query.includeInactive:
        statement = statement.where(FlavorTemplate.active.is_(True))
    rows = db().scalars(statement)
    return [
        _out(r) for r in rows if query.flavorPart is None or query.flavorPart in r.document["flavor_parts"]
    ]


@endpoint(bp, "/flavor-templates/<template_id>", "GET", permission="HVS:flavor-templates:retrieve",
          response=FlavorTemplateOut, summary="One flavor template, active or not")  # fmt: skip
def retrieve_flavor_template(template_id: str) -> FlavorTemplateOut:
    return _out(_get(db(), template_id))


@endpoint(bp, "/flavor-templates/<template_id>", "PATCH", permission="HVS:flavor-templates:update",
          body=FlavorTemplateUpdate, response=FlavorTemplateOut,
          summary="Activate or deactivate a flavor template (an inactive one is not used for flavor import)")  # fmt: skip
def update_flavor_template(template_id: str, body: FlavorTemplateUpdate) -> FlavorTemplateOut:
    session, actor = db(), current_principal().username
    row = _get(session, template_id)
    if row.active != body.active:
        row.active, row.updated_at = body.active, utcnow()
        audit.record(session, "flavor-template.activated" if body.active else "flavor-template.deactivated",
                     actor=actor, outcome="success", target=row.label, template_id=row.id)  # fmt: skip
        session.commit()
    return _out(row)


@endpoint(bp, "/flavor-templates/<template_id>", "DELETE", permission="HVS:flavor-templates:delete",
          summary="Delete a flavor template (a default template can only be deactivated)")  # fmt: skip
def delete_flavor_template(template_id: str) -> None:
    session, actor = db(), current_principal().username
    row = _get(session, template_id)
    if row.is_default:
        raise Conflict(
            f'{row.label} is a default flavor template: deactivate it instead (PATCH {{"active": false}})',
            code="flavor-template-default",
        )
    session.delete(row)
    audit.record(session, "flavor-template.deleted", actor=actor, outcome="success", target=row.label,
                 template_id=row.id)  # fmt: skip
    session.commit()
