"""Flavor templates: stored, searched, (de)activated and deleted, and the shipped defaults kept current.

A template (SecL's flavor-template format, :mod:`secl.central.flavortemplates.schemas`) has conditions over
the host manifest (all must hold for it to apply) and, per flavor part (PLATFORM, OS, HOST_UNIQUE), PCR
rules: the PCR index and banks in order of preference, whether the value must match (``pcr_matches``), and
whether its event log must equal the host's (``eventlog_equals``, minus events carrying ``excluding_tags``)
or include the events with given tags (``eventlog_includes``).

Our default templates (UEFI, UEFI Secure Boot, TXT/tboot, CBNT) are JSON files in ``default_templates/``;
:func:`ensure_default_templates`, run by ``secl-central setup``, stores them (``is_default``) and refreshes
their content when a release changes it. Default templates cannot be deleted; they can be deactivated, and
an inactive template is not used when flavors are imported from a host (:func:`active_templates`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.errors import Conflict, NotFound
from secl.central.flavortemplates.schemas import FlavorTemplateIn, TemplatePart
from secl.central.store.hvs_flavor_models import FlavorTemplate
from secl.central.store.models import utcnow

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "default_templates"


def default_templates() -> list[FlavorTemplateIn]:
    """The shipped defaults, validated like an upload (a broken file fails setup, not an attestation)."""
    paths = sorted(DEFAULT_TEMPLATES.glob("*.json"))
    if not paths:  # an installation without its package data must not silently run without defaults
        raise FileNotFoundError(
            f"no default flavor templates in {DEFAULT_TEMPLATES}: the installation is incomplete"
        )
    return [FlavorTemplateIn.model_validate(json.loads(path.read_text())) for path in paths]


def ensure_default_templates(session: Session) -> list[str]:
    """Store the default templates, or bring them up to date; keeps whether each is active. Idempotent.

    Returns the labels of the templates created or changed (empty when all were current), and commits.
    """
    changed = []
    for template in default_templates():
        assert template.id is not None, f"default template {template.label} has no id"
        document = template.document(template.id)
        row = session.get(FlavorTemplate, template.id)
        if row is None:
            clash = session.scalar(select(FlavorTemplate).where(FlavorTemplate.label == template.label))
            if clash is not None:
                raise RuntimeError(
                    f"a flavor template labelled {template.label} (id {clash.id}) takes the label of a default "
                    "template: rename or delete it, then run setup again"
                )
            session.add(
                FlavorTemplate(
                    id=template.id, label=template.label, document=document, is_default=True, active=True
                )
            )
        elif row.document != document or row.label != template.label or not row.is_default:
            row.document, row.label, row.is_default, row.updated_at = document, template.label, True, utcnow()
        else:
            continue
        changed.append(template.label)
    if changed:
        audit.record(
            session,
            "flavor-template.defaults-installed",
            actor="setup",
            outcome="success",
            target=",".join(changed)[:255],
        )
    session.commit()
    return changed


def active_templates(session: Session) -> list[dict[str, Any]]:
    """The documents of the active templates, for flavor import from a host."""
    rows = session.scalars(
        select(FlavorTemplate).where(FlavorTemplate.active.is_(True)).order_by(FlavorTemplate.label)
    )
    return [row.document for row in rows]


# --- operations -------------------------------------------------------------------------------------------


def get_template(session: Session, template_id: str) -> FlavorTemplate:
    row = session.get(FlavorTemplate, template_id)
    if row is None:
        raise NotFound(f"no flavor template {template_id}", code="flavor-template-not-found")
    return row


def create_template(session: Session, template: FlavorTemplateIn, *, actor: str) -> FlavorTemplate:
    template_id = template.id or str(uuid.uuid4())
    if session.get(FlavorTemplate, template_id) is not None:
        raise Conflict(f"a flavor template with id {template_id} exists", code="flavor-template-exists")
    if session.scalar(select(FlavorTemplate).where(FlavorTemplate.label == template.label)) is not None:
        raise Conflict(f"a flavor template labelled {template.label} exists", code="flavor-template-exists")
    row = FlavorTemplate(
        id=template_id,
        label=template.label,
        document=template.document(template_id),
        is_default=False,
        active=True,
    )
    session.add(row)
    audit.record(
        session,
        "flavor-template.created",
        actor=actor,
        outcome="success",
        target=template.label,
        template_id=template_id,
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"a flavor template labelled {template.label} exists", code="flavor-template-exists"
        ) from None
    return row


def search_templates(
    session: Session,
    *,
    template_id: str | None,
    label: str | None,
    flavor_part: TemplatePart | None,
    include_inactive: bool,
) -> list[FlavorTemplate]:
    statement = select(FlavorTemplate).order_by(FlavorTemplate.label)
    if template_id is not None:
        statement = statement.where(FlavorTemplate.id == template_id)
    if label is not None:
        statement = statement.where(FlavorTemplate.label == label)
    if not include_inactive:
        statement = statement.where(FlavorTemplate.active.is_(True))
    return [
        row
        for row in session.scalars(statement)
        if flavor_part is None or flavor_part in row.document["flavor_parts"]
    ]


def set_active(session: Session, template_id: str, active: bool, *, actor: str) -> FlavorTemplate:
    row = get_template(session, template_id)
    if row.active != active:
        row.active, row.updated_at = active, utcnow()
        audit.record(
            session,
            "flavor-template.activated" if active else "flavor-template.deactivated",
            actor=actor,
            outcome="success",
            target=row.label,
            template_id=row.id,
        )
        session.commit()
    return row


def delete_template(session: Session, template_id: str, *, actor: str) -> None:
    row = get_template(session, template_id)
    if row.is_default:
        raise Conflict(
            f'{row.label} is a default flavor template: deactivate it instead (PATCH {{"active": false}})',
            code="flavor-template-default",
        )
    session.delete(row)
    audit.record(
        session,
        "flavor-template.deleted",
        actor=actor,
        outcome="success",
        target=row.label,
        template_id=row.id,
    )
    session.commit()
