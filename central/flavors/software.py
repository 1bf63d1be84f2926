"""SOFTWARE flavors (application integrity): from a manifest measured on a golden host, from the boot-time
measurements a host reports, and manifests deployed to hosts.

- :func:`flavor_from_app_manifest` (``POST /hvs/v2/flavor-from-app-manifest``, SecL's route): the host's
  trust agent measures a SecL Manifest XML now (``POST /v2/host/application-measurement``) and the
  Measurement it answers becomes a SOFTWARE flavor, signed and stored. Labels SecL reserves for the default
  manifests are refused (``manifest-label-reserved``), as SecL does: those flavors come from the hosts' own
  boot measurements (flavor import with ``SOFTWARE``).
- :func:`deploy_manifest` (``POST /hvs/v2/rpc/deploy-software-manifest``, SecL's route): the manifest of a
  SOFTWARE flavor (every File, Dir and Symlink it expects, by literal path) is stored on the host by its
  trust agent (``POST /v2/deploy/manifest``) and measured from the next boot on.
- :func:`flavors_from_measurements`: flavor import's SOFTWARE part. The host's measurement logs become
  flavors only when the evidence vouches for them: each XML replays to its CumulativeHash, its
  APPLICATION_AGENT_MEASUREMENT event is in the PCR 15 log, and that log replays to the *quoted* PCR 15
  (``measurement-log-unverified`` otherwise), or the flavor would bake in claims nobody vouched for.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Invalid, NotFound
from secl.central.evidence.agentclient import AgentError
from secl.central.evidence.fetch import agent_client
from secl.central.flavors import store
from secl.central.flavors.schemas import FlavorCollectionIn, FlavorCreate
from secl.central.flavors.service import commit_flavors
from secl.central.hosts.service import get_host, get_host_by_connection
from secl.central.store.hvs_flavor_models import Host, StoredFlavor
from secl.core.appeventlog import APPLICATION_PCR
from secl.core.appmanifest import ManifestError, parse_manifest
from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, parse_flavor
from secl.core.hostmanifest import HostManifest
from secl.core.measurementlog import MeasurementLog, MeasurementLogError, parse_measurement_xml
from secl.core.pcrevents import replay_events, thaw
from secl.core.softwareflavor import is_default_software_label, software_flavor

log = logging.getLogger("secl.central.hvs")

_MANIFESTS_NS = "lib:wml:manifests:1.0"
_KINDS = {
    "fileMeasurementType": "File",
    "directoryMeasurementType": "Dir",
    "symlinkMeasurementType": "Symlink",
}


def _store(
    session: Session,
    services: CentralServices,
    flavors: list[Flavor],
    groups: Sequence[str],
    *,
    actor: str,
    host: Host,
    event: str,
) -> list[StoredFlavor]:
    upload = FlavorCreate(
        flavor_collection=FlavorCollectionIn(
            flavors=[thaw(f.source) for f in flavors if f.source is not None]
        ),
        flavorgroup_names=list(groups),
    )
    rows = store.store_flavors(session, services.keys.flavor_signer, upload, actor=actor)
    audit.record(
        session,
        event,
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        flavors=[{"id": r.id, "flavor_part": r.flavor_part, "label": r.label} for r in rows],
    )
    return rows


def flavor_from_app_manifest(
    session: Session,
    services: CentralServices,
    *,
    host_id: str | None,
    connection_string: str | None,
    manifest_xml: str,
    flavorgroup_names: Sequence[str],
    actor: str,
) -> tuple[Host, StoredFlavor]:
    """A SOFTWARE flavor of what the registered host's agent measures for ``manifest_xml`` now, signed and
    stored (committed). The manifest is checked before the host is looked up."""
    try:
        manifest = parse_manifest(manifest_xml.encode())
    except ManifestError as exc:
        raise Invalid(f"manifest: {exc.message}", code=exc.code) from None
    if is_default_software_label(manifest.label):
        raise Invalid(
            f"Label {manifest.label!r} is reserved for the default manifests; their flavors come from the "
            "hosts' boot measurements (POST /hvs/v2/flavors/from-host with SOFTWARE)",
            code="manifest-label-reserved",
        )
    host = (
        get_host(session, host_id)
        if host_id is not None
        else get_host_by_connection(session, connection_string)
    )
    try:
        with agent_client(services.files, host.connection_string) as client:
            answer = client.application_measurement(manifest_xml)
    except AgentError as exc:
        raise Conflict(
            f"host {host.name} could not measure the manifest: {exc.message}", code=exc.agent_code or exc.code
        ) from None
    try:
        measured = parse_measurement_xml(answer)
    except MeasurementLogError as exc:
        raise Conflict(
            f"host {host.name} answered an unusable Measurement: {exc.message}", code=exc.code
        ) from None
    if measured.label != manifest.label or (manifest.uuid and measured.uuid != manifest.uuid):
        raise Conflict(
            f"host {host.name} measured {measured.event_tag}, not the manifest {manifest.event_tag}",
            code="measurement-mismatch",
        )
    try:
        flavor = software_flavor(measured, source=host.name)
    except EvidenceError as exc:
        raise Conflict(f"host {host.name}: {exc.message}", code=exc.code) from None
    (row,) = _store(
        session,
        services,
        [flavor],
        flavorgroup_names,
        actor=actor,
        host=host,
        event="flavor.software-created",
    )
    commit_flavors(session, "a flavor with the same id or label was stored meanwhile")
    log.info("SOFTWARE flavor %s (%s) from host %s", row.id, row.label, host.name)
    return host, row


def manifest_for_flavor(flavor: Flavor) -> str:
    """The Manifest XML that measures exactly what a SOFTWARE flavor expects (literal paths, its DigestAlg)."""
    from xml.sax.saxutils import quoteattr

    measurements = flavor.software.measurements if flavor.software else None
    alg = str(flavor.meta.description.get("digest_algorithm", "SHA384"))
    parts = [
        f"<Manifest xmlns={quoteattr(_MANIFESTS_NS)} Label={quoteattr(flavor.label)} "
        f"Uuid={quoteattr(flavor.id)} DigestAlg={quoteattr(alg)}>"
    ]
    for item in (measurements or {}).values():
        kind = _KINDS.get(item.type or "fileMeasurementType")
        if kind is None:
            raise Conflict(
                f"flavor {flavor.id}: unknown measurement type {item.type!r}", code="flavor-invalid"
            )
        attributes = f"Path={quoteattr(item.path)}"
        if kind == "Dir":
            include, exclude = item.extra.get("Include", ""), item.extra.get("Exclude", "")
            attributes += f" Include={quoteattr(str(include))} Exclude={quoteattr(str(exclude))}"
            if item.extra.get("FilterType"):
                attributes += f" FilterType={quoteattr(str(item.extra['FilterType']))}"
        parts.append(f"<{kind} {attributes}/>")
    parts.append("</Manifest>")
    return '<?xml version="1.0" encoding="UTF-8"?>' + "".join(parts)


@dataclass(frozen=True)
class DeployedManifest:
    host: Host
    flavor_id: str
    label: str
    manifest: str


def deploy_manifest(
    session: Session, services: CentralServices, flavor_id: str, host_id: str, *, actor: str
) -> DeployedManifest:
    """Store the manifest of a SOFTWARE flavor on a registered host, through its trust agent (committed)."""
    row = session.get(StoredFlavor, flavor_id)
    if row is None:
        raise NotFound(f"no flavor {flavor_id}", code="flavor-not-found")
    if row.flavor_part != "SOFTWARE":
        raise Invalid(
            f"flavor {row.id} is a {row.flavor_part} flavor, not SOFTWARE", code="flavor-not-software"
        )
    flavor = store.verified(services, row).flavor  # never deploy what our signature does not vouch for
    if is_default_software_label(flavor.label):
        raise Invalid(
            f"flavor {row.id} is a default flavor ({flavor.label}); its manifest ships with the trust agent",
            code="manifest-label-reserved",
        )
    host = get_host(session, host_id)
    xml = manifest_for_flavor(flavor)
    try:
        with agent_client(services.files, host.connection_string) as client:
            client.deploy_manifest(xml)
    except AgentError as exc:
        raise Conflict(
            f"host {host.name} refused the manifest: {exc.message}", code=exc.agent_code or exc.code
        ) from None
    audit.record(
        session,
        "software-manifest.deployed",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        flavor_id=row.id,
    )
    session.commit()
    return DeployedManifest(host, row.id, flavor.label, xml)


# --- flavor import: SOFTWARE flavors from a golden host's boot measurements --------------------------------


def _verified_logs(manifest: HostManifest, host_name: str) -> list[MeasurementLog]:
    events = manifest.event_log(APPLICATION_PCR.bank, APPLICATION_PCR.index) or ()
    quoted = manifest.pcr_value(APPLICATION_PCR.bank, APPLICATION_PCR.index)
    problems = []
    if manifest.measurement_xmls:
        if quoted is None:
            problems.append("PCR 15 of SHA256 was not quoted")
        elif replay_events(APPLICATION_PCR.bank, APPLICATION_PCR.index, tuple(events)).hex() != quoted:
            problems.append("its PCR 15 events do not replay to the quoted PCR 15")
    logged = {e.measurement.lower() for e in events}
    logs = []
    for text in manifest.measurement_xmls:
        try:
            measured = parse_measurement_xml(text)
        except MeasurementLogError as exc:
            problems.append(f"a Measurement XML does not parse ({exc.message})")
            continue
        if measured.replay() != measured.cumulative_hash:
            problems.append(f"{measured.event_tag} does not replay to its CumulativeHash")
        elif hashlib.sha256(bytes.fromhex(measured.cumulative_hash)).hexdigest() not in logged:
            problems.append(f"{measured.event_tag} has no APPLICATION_AGENT_MEASUREMENT event in PCR 15")
        else:
            logs.append(measured)
    if problems:
        raise Conflict(
            f"host {host_name}'s application measurements cannot make flavors: {'; '.join(problems)}",
            code="measurement-log-unverified",
            details={"problems": problems},
        )
    return logs


def flavors_from_measurements(session: Session, manifest: HostManifest, host_name: str) -> list[Flavor]:
    """SOFTWARE flavors for the host's verified measurement logs, except those already stored (same id,
    or a SOFTWARE flavor of the same label: a default flavor is made once, from the first golden host)."""
    flavors = []
    for measured in _verified_logs(manifest, host_name):
        exists = session.get(StoredFlavor, measured.uuid) is not None or session.scalar(
            select(StoredFlavor.id).where(
                StoredFlavor.flavor_part == "SOFTWARE", StoredFlavor.label == measured.label
            )
        )
        if exists:
            log.info("SOFTWARE flavor for %s is stored already; not imported again", measured.event_tag)
            continue
        flavor = software_flavor(measured, source=host_name)
        if is_default_software_label(measured.label):
            # A default manifest's Uuid is the host's own: the flavor gets one of its own, as in SecL.
            document: dict[str, Any] = thaw(flavor.source) if flavor.source is not None else flavor.to_json()
            document["meta"]["id"] = str(uuid.uuid4())
            flavor = parse_flavor(document)
        flavors.append(flavor)
    return flavors
