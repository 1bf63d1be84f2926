"""/hvs/v2/flavor-templates: CRUD of flavor templates (see :mod:`secl.central.flavortemplates.service`)."""

from __future__ import annotations

from flask import Blueprint

from secl.central.endpoints import current_principal, db, endpoint
from secl.central.flavortemplates import service
from secl.central.flavortemplates.schemas import (
    FlavorTemplateIn,
    FlavorTemplateOut,
    FlavorTemplateSearch,
    FlavorTemplateUpdate,
)
from secl.central.store.hvs_flavor_models import FlavorTemplate

bp = Blueprint("flavortemplates", __name__, url_prefix="/hvs/v2")


def _out(row: FlavorTemplate) -> FlavorTemplateOut:
    doc = row.document
    return FlavorTemplateOut(
        id=row.id,
        label=row.label,
        condition=doc["condition"],
        flavor_parts=doc["flavor_parts"],
        is_default=row.is_default,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@endpoint(
    bp,
    "/flavor-templates",
    "POST",
    permission="HVS:flavor-templates:create",
    body=FlavorTemplateIn,
    response=FlavorTemplateOut,
    status=201,
    summary="Add a flavor template (SecL's format: label, condition[], flavor_parts with pcr_rules)",
)
def create_flavor_template(body: FlavorTemplateIn) -> FlavorTemplateOut:
    return _out(service.create_template(db(), body, actor=current_principal().username))


@endpoint(
    bp,
    "/flavor-templates",
    "GET",
    permission="HVS:flavor-templates:search",
    query=FlavorTemplateSearch,
    response=list[FlavorTemplateOut],
    summary="Search flavor templates (id, label, flavorPart; inactive ones with includeInactive=true)",
)
def search_flavor_templates(query: FlavorTemplateSearch) -> list[FlavorTemplateOut]:
    found = service.search_templates(
        db(),
        template_id=query.id,
        label=query.label,
        flavor_part=query.flavorPart,
        include_inactive=query.includeInactive,
    )
    return [_out(r) for r in found]


@endpoint(
    bp,
    "/flavor-templates/<template_id>",
    "GET",
    permission="HVS:flavor-templates:retrieve",
    response=FlavorTemplateOut,
    summary="One flavor template, active or not",
)
def retrieve_flavor_template(template_id: str) -> FlavorTemplateOut:
    return _out(service.get_template(db(), template_id))


@endpoint(
    bp,
    "/flavor-templates/<template_id>",
    "PATCH",
    permission="HVS:flavor-templates:update",
    body=FlavorTemplateUpdate,
    response=FlavorTemplateOut,
    summary="Activate or deactivate a flavor template (an inactive one is not used for flavor import)",
)
def update_flavor_template(template_id: str, body: FlavorTemplateUpdate) -> FlavorTemplateOut:
    return _out(service.set_active(db(), template_id, body.active, actor=current_principal().username))


@endpoint(
    bp,
    "/flavor-templates/<template_id>",
    "DELETE",
    permission="HVS:flavor-templates:delete",
    summary="Delete a flavor template (a default template can only be deactivated)",
)
def delete_flavor_template(template_id: str) -> None:
    service.delete_template(db(), template_id, actor=current_principal().username)
