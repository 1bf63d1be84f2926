"""Flavor import from a golden host (``POST /hvs/v2/flavors/from-host``).

SecL overloads ``POST /hvs/v2/flavors`` with ``{"connection_string", "partial_flavor_types"}``; here that
path is the manual upload, so import from a host has its own path, with SecL's field names:
``{"host_id" | "connection_string", "partial_flavor_types": ["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"],
"flavorgroup_names": [...]}``. SOFTWARE flavors come from the host's boot measurements (the Measurement
XMLs its agent serves, checked against the quoted PCR 15), one per measurement not stored yet; the others
from the flavor templates. The host must be registered: the central only talks to agents it knows, and
the host's status and hardware UUID are kept up to date.

The evidence is collected and verified as for a report (:mod:`secl.central.evidence.verify`), and a golden
host must be fully trustworthy as evidence: its AIK certificate must be issued by our Privacy CA
(``aik-not-trusted``) and its event log must replay to the quoted PCRs (``event-log-replay-mismatch``), or
its flavors would bake in values nobody vouched for. The active flavor templates that apply to the host
make the flavors (``no-flavor-template-applies`` when none does); each is signed and stored by the flavor
store, in the groups asked for (HOST_UNIQUE in host_unique).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict
from secl.central.evidence.verify import aik_trusted, collect_evidence
from secl.central.flavors import software, store
from secl.central.flavors.schemas import FlavorCollectionIn, FlavorCreate
from secl.central.flavors.service import commit_flavors
from secl.central.flavortemplates.service import active_templates
from secl.central.store.hvs_flavor_models import Host, StoredFlavor
from secl.core.errors import EvidenceError
from secl.core.flavortemplate import create_flavors, parse_flavor_template
from secl.core.pcrevents import thaw

log = logging.getLogger("secl.central.hvs")


def import_from_host(
    session: Session,
    services: CentralServices,
    host: Host,
    *,
    parts: Sequence[str],
    flavorgroup_names: Sequence[str],
    actor: str,
) -> list[StoredFlavor]:
    """Flavors of ``parts`` made from the golden host's verified evidence, signed and stored (committed)."""
    evidence = collect_evidence(session, services, host)
    if not aik_trusted(services, evidence, datetime.now(UTC)):
        raise Conflict(
            f"host {host.name}'s AIK certificate is missing or not issued by this central's Privacy CA: run "
            "`secl-trustagent setup` on it",
            code="aik-not-trusted",
        )
    built = evidence.built
    if not built.log_verified:
        pcrs = sorted(f"{ref.bank}:{ref.index}" for ref in built.replay_mismatches)
        mismatched = ", ".join(pcrs) or "banks " + ", ".join(built.unreplayed_banks)
        raise Conflict(
            f"host {host.name}'s event log does not replay to its quoted PCRs ({mismatched}): "
            "it cannot be a golden host",
            code="event-log-replay-mismatch",
            details={"pcrs": pcrs},
        )
    template_parts = [p for p in parts if p != "SOFTWARE"]
    measured = (
        software.flavors_from_measurements(session, built.manifest, host.name) if "SOFTWARE" in parts else []
    )
    templates = []
    for document in active_templates(session):
        try:
            templates.append(parse_flavor_template(document))
        except EvidenceError as exc:  # stored templates are validated on upload; never fail the import
            log.error("flavor template %s is skipped: %s", document.get("label"), exc)
    try:
        made = create_flavors(built.manifest, templates, source=host.name, parts=template_parts)
    except EvidenceError as exc:
        raise Conflict(f"no flavors from host {host.name}: {exc.message}", code=exc.code) from None
    made += measured
    if not made:
        raise Conflict(
            f"no active flavor template applies to host {host.name} for {', '.join(parts)}",
            code="no-flavor-template-applies",
        )
    upload = FlavorCreate(
        flavor_collection=FlavorCollectionIn(
            flavors=[thaw(f.source) if f.source is not None else f.to_json() for f in made]
        ),
        flavorgroup_names=list(flavorgroup_names),
    )
    rows = store.store_flavors(session, services.keys.flavor_signer, upload, actor=actor)
    audit.record(
        session,
        "flavor.imported",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        flavors=[{"id": r.id, "flavor_part": r.flavor_part, "label": r.label} for r in rows],
        flavorgroups=list(flavorgroup_names),
    )
    commit_flavors(session, "a flavor with the same part and label was stored meanwhile")
    return rows
