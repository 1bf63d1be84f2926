"""Flavor templates in the store: their shape (SecL's flavor-template schema) and the shipped defaults.

A template has conditions over the host manifest (all must hold for it to apply) and, per flavor part
(PLATFORM, OS, HOST_UNIQUE), PCR rules: the PCR index and banks in order of preference, whether the value
must match (``pcr_matches``), and whether its event log must equal the host's (``eventlog_equals``, minus
events carrying ``excluding_tags``) or include the events with given tags (``eventlog_includes``).

Our default templates (UEFI, UEFI Secure Boot, TXT/tboot, CBNT) are JSON files in ``default_templates/``;
:func:`ensure_default_templates`, run by ``secl-central setup``, stores them (``is_default``) and refreshes
their content when a release changes it. This module does not import the views, so setup and the flavor
import can use it without the web layer.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator
from secl.central import audit
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import UUIDStr
from secl.central.store.hvs_flavor_models import FlavorTemplate
from secl.central.store.models import utcnow
from sqlalchemy import select
from sqlalchemy.orm import Session

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "default_templates"

DigestAlgorithm = Literal["SHA1", "SHA256", "SHA384", "SHA512"]
TemplatePart = Literal["PLATFORM", "OS", "HOST_UNIQUE"]
Tag = Annotated[str, Field(min_length=1, max_length=255)]
Tags = Annotated[list[Tag], Field(min_length=1, max_length=256)]


class TemplatePcr(Strict):
    index: Annotated[int, Field(ge=0, le=23, strict=True)]
    bank: Annotated[list[DigestAlgorithm], Field(min_length=1, max_length=4)]


class EventlogEquals(Strict):
    excluding_tags: Tags | None = None


class PcrRule(Strict):
    pcr: TemplatePcr
    pcr_matches: Annotated[bool, Field(strict=True)] | None = None
    eventlog_equals: EventlogEquals | None = None
    eventlog_includes: Tags | None = None

    @model_validator(mode="after")
    def _one_log_rule(self) -> PcrRule:
        if self.eventlog_equals is not None and self.eventlog_includes is not None:
            raise ValueError("a PCR rule has eventlog_equals or eventlog_includes, not both")
        return self


class FlavorPartTemplate(Strict):
    meta: Annotated[dict[str, Any], Field(max_length=64)]  # copied into the flavor's meta.description
    pcr_rules: Annotated[list[PcrRule], Field(min_length=1, max_length=96)]


class FlavorTemplateIn(Strict):
    id: UUIDStr | None = None
    label: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S(.*\S)?$")]
    condition: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=2048)]], Field(min_length=1, max_length=64)
    ]
    flavor_parts: Annotated[dict[TemplatePart, FlavorPartTemplate], Field(min_length=1)]

    def document(self, template_id: str) -> dict[str, Any]:
        return {**self.model_dump(mode="json", exclude_none=True), "id": template_id}


class FlavorTemplateOut(BaseModel):
    id: str
    label: str
    condition: list[str]
    flavor_parts: dict[str, Any]
    is_default: bool
    active: bool
    created_at: datetime
    updated_at: datetime


class FlavorTemplateSearch(Strict):
    id: UUIDStr | None = None
    label: Annotated[str, Field(max_length=255)] | None = None
    flavorPart: TemplatePart | None = None
    includeInactive: bool = False


class FlavorTemplateUpdate(Strict):
    active: bool


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
            session.add(FlavorTemplate(id=template.id, label=template.label, document=document, is_default=True,
                                       active=True))  # fmt: skip
        elif row.document != document or row.label != template.label or not row.is_default:
            row.document, row.label, row.is_default, row.updated_at = document, template.label, True, utcnow()
        else:
            continue
        changed.append(template.label)
    if changed:
        audit.record(session, "flavor-template.defaults-installed", actor="setup", outcome="success",
                     target=",".join(changed)[:255])  # fmt: skip
    session.commit()
    return changed


def active_templates(session: Session) -> list[dict[str, Any]]:
    """The documents of the active templates, for flavor import from a host."""
    rows = session.scalars(
        select(FlavorTemplate).where(FlavorTemplate.active.is_(True)).order_by(FlavorTemplate.label)
    )
    return [row.document for row in rows]
