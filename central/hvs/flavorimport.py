"""Flavor import from a golden host: ``POST /hvs/v2/flavors/from-host``.

SecL overloads ``POST /hvs/v2/flavors`` with ``{"connection_string", "partial_flavor_types"}``; here that
path is the manual upload (flavors.py), so import from a host has its own path, with SecL's field names:
``{"host_id" | "connection_string", "partial_flavor_types": ["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"],
"flavorgroup_names": [...]}``. SOFTWARE flavors come from the host's boot measurements (the Measurement
XMLs its agent serves, checked against the quoted PCR 15), one per measurement not stored yet; the others
from the flavor templates. The host must be registered (``POST /hvs/v2/hosts``): the central only
talks to agents it knows, and the host's status and hardware UUID are kept up to date.

The evidence is collected and verified as for a report (:mod:`secl.central.hvs.verifier`), and a golden
host must be fully trustworthy as evidence: its AIK certificate must be issued by our Privacy CA
(409 ``aik-not-trusted``) and its event log must replay to the quoted PCRs (409
``event-log-replay-mismatch``), or its flavors would bake in values nobody vouched for. The active flavor
templates that apply to the host make the flavors (409 ``no-flavor-template-applies`` when none does);
each is signed and stored by the flavor store, in the groups asked for (HOST_UNIQUE in host_unique).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

from flask import current_app
from pydantic import Field, model_validator
from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, NotFound
from secl.central.hvs import flavorstore, softwareflavors, verifier
from secl.central.hvs.hoststore import get_host
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import (
    ConnectionString,
    FlavorCollectionIn,
    FlavorCreate,
    GroupName,
    SignedFlavorCollection,
    UUIDStr,
)
from secl.central.hvs.templatestore import active_templates
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import Host
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from secl.core.errors import EvidenceError
from secl.core.flavortemplate import create_flavors, parse_flavor_template
from secl.core.pcrevents import thaw

log = logging.getLogger("secl.central.hvs")

TemplatePart = Literal["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"]


class FlavorImport(Strict):
    host_id: UUIDStr | None = None
    connection_string: ConnectionString | None = None
    partial_flavor_types: Annotated[list[TemplatePart], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: ["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"]
    )
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)

    @model_validator(mode="after")
    def _one(self) -> FlavorImport:
        if (self.host_id is None) == (self.connection_string is None):
            raise ValueError("give host_id or connection_string (exactly one)")
        if len(set(self.partial_flavor_types)) != len(self.partial_flavor_types):
            raise ValueError("partial_flavor_types lists a part twice")
        return self


def _golden_host(body: FlavorImport) -> Host:
    session = db()
    if body.host_id is not None:
        return get_host(session, body.host_id)
    host = session.scalar(select(Host).where(Host.connection_string == body.connection_string))
    if host is None:
        raise NotFound(
            f"no registered host has the connection string {body.connection_string}: register it first "
            "(POST /hvs/v2/hosts)", code="host-not-found",
        )  # fmt: skip
    return host


@endpoint(bp, "/flavors/from-host", "POST", permission="HVS:flavors:create", body=FlavorImport,
          response=SignedFlavorCollection, status=201,
          summary="Import flavors from a registered golden host: verified evidence from its trust agent, "
                  "the active flavor templates that apply to it, each flavor signed and stored")  # fmt: skip
def import_flavors(body: FlavorImport) -> SignedFlavorCollection:
    session, app, actor = db(), current_app, current_principal().username
    host = _golden_host(body)
    evidence = verifier.collect_evidence(session, app, host)
    if not verifier.aik_trusted(app, evidence, datetime.now(UTC)):
        raise Conflict(
            f"host {host.name}'s AIK certificate is missing or not issued by this central's Privacy CA: run "
            "`secl-trustagent setup` on it", code="aik-not-trusted",
        )  # fmt: skip
    if not evidence.built.log_verified:
        pcrs = sorted(f"{ref.bank}:{ref.index}" for ref in evidence.built.replay_mismatches)
        raise Conflict(
            f"host {host.name}'s event log does not replay to its quoted PCRs ({', '.join(pcrs) or 'banks ' + ', '.join(evidence.built.unreplayed_banks)}): "
            "it cannot be a golden host", code="event-log-replay-mismatch", details={"pcrs": pcrs},
        )  # fmt: skip
    template_parts = [p for p in body.partial_flavor_types if p != "SOFTWARE"]
    software = (
        softwareflavors.flavors_from_measurements(session, evidence.built.manifest, host.name)
        if "SOFTWARE" in body.partial_flavor_types
        else []
    )
    templates = []
    for document in active_templates(session):
        try:
            templates.append(parse_flavor_template(document))
        except EvidenceError as exc:  # stored templates are validated on upload; never fail the import
            log.error("flavor template %s is skipped: %s", document.get("label"), exc)
    try:
        flavors = create_flavors(evidence.built.manifest, templates, source=host.name, parts=template_parts)
    except EvidenceError as exc:
        raise Conflict(f"no flavors from host {host.name}: {exc.message}", code=exc.code) from None
    flavors += software
    if not flavors:
        raise Conflict(
            f"no active flavor template applies to host {host.name} for {', '.join(body.partial_flavor_types)}",
            code="no-flavor-template-applies",
        )
    upload = FlavorCreate(
        flavor_collection=FlavorCollectionIn(
            flavors=[thaw(f.source) if f.source is not None else f.to_json() for f in flavors]
        ),
        flavorgroup_names=body.flavorgroup_names,
    )
    rows = flavorstore.store_flavors(session, app, upload, actor=actor)
    audit.record(
        session, "flavor.imported", actor=actor, outcome="success", target=host.name, host_id=host.id,
        flavors=[{"id": r.id, "flavor_part": r.flavor_part, "label": r.label} for r in rows],
        flavorgroups=body.flavorgroup_names,
    )  # fmt: skip
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "a flavor with the same part and label was stored meanwhile", code="flavor-exists"
        ) from None
    return SignedFlavorCollection(
        signed_flavors=[flavorstore.signed_out(r, flavorstore.verified(app, r)) for r in rows]
    )
