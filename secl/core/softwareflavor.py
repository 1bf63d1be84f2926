"""SOFTWARE flavors: what a host's Measurement XML becomes when an operator accepts it as the good state.

A SOFTWARE flavor is SecL's shape (``meta.schema.uri`` ``lib:wml:measurements:1.0``, ``description`` with
``flavor_part`` SOFTWARE, the Label and the DigestAlg; ``software.measurements`` keyed by the path with its
slashes turned into dashes, each ``{"type", "value", "Path", ...}``; ``software.cumulative_hash``). Its id
is the Measurement's Uuid, which is how XmlMeasurementLogIntegrity and XmlMeasurementLogEquals find the
host's log for it (and the PCR 15 event tag ``<Label>-<Uuid>``).

One addition to SecL's shape: a ``pcrs`` entry for PCR 15 of the SHA-256 bank that expects the
measurement's APPLICATION_AGENT_MEASUREMENT event (``eventlog_includes``). It gives the flavor the
PcrEventLogIncludes and PcrEventLogIntegrity rules, so the PCR 15 events a host reports must replay to the
*quoted* PCR 15; SecL's three XML rules alone compare the XML with the event log but never the event log
with the TPM. Events are identified by type and digest (not tag), so a default flavor, whose Uuid differs
per host, still matches every host that measured the same files. The register's value is not pinned
(``pcr_matches`` false): it depends on every manifest the host measured and their order.
"""

from __future__ import annotations

from typing import Any

from secl.core.appeventlog import APPLICATION_PCR, application_event
from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, parse_flavor
from secl.core.measurementlog import MeasurementLog

__all__ = [
    "DEFAULT_SOFTWARE_PREFIXES",
    "SOFTWARE_SCHEMA_URI",
    "SoftwareFlavorError",
    "is_default_software_label",
    "measurement_key",
    "software_flavor",
]

SOFTWARE_SCHEMA_URI = "lib:wml:measurements:1.0"
#: Labels SecL reserves for the manifests an installation ships (its own agents' files).
DEFAULT_SOFTWARE_PREFIXES = ("ISecL_Default_Application_Flavor", "ISecL_Default_Workload_Flavor")


class SoftwareFlavorError(EvidenceError):
    """A measurement cannot make a SOFTWARE flavor (no Uuid or Label)."""

    code = "software-flavor-invalid"


def is_default_software_label(label: str) -> bool:
    return label.startswith(DEFAULT_SOFTWARE_PREFIXES)


def measurement_key(path: str) -> str:
    """SecL's name for a measurement: the path without its leading slash, slashes turned into dashes."""
    return path.lstrip("/").replace("/", "-") or "-"


def software_flavor(log: MeasurementLog, *, source: str | None = None) -> Flavor:
    """The SOFTWARE flavor that accepts exactly ``log`` (unsigned; its id is the log's Uuid).

    The log should be one whose replay was checked (the verifier's rules do that for a host's logs); an
    inconsistent log is refused here too, so no flavor expects a CumulativeHash its entries do not make.
    """
    if not log.uuid or not log.label:
        raise SoftwareFlavorError("the Measurement has no Uuid or no Label; a SOFTWARE flavor needs both")
    if log.replay() != log.cumulative_hash:
        raise SoftwareFlavorError(
            f"the Measurement {log.event_tag} does not replay to its CumulativeHash "
            f"({log.replay()} != {log.cumulative_hash})",
            code="software-flavor-inconsistent",
        )
    measurements: dict[str, dict[str, str]] = {}
    seen: set[tuple[str, str]] = set()
    for entry in log.entries:
        # SecL leaves out an empty Include or Exclude (Go's omitempty); the rules never read them.
        item = {
            k: v for k, v in entry.as_flavor_measurement().items() if v or k not in ("Include", "Exclude")
        }
        identity = (item["type"], item["Path"])
        if identity in seen:
            continue  # a manifest that names one path twice: the rules compare by (type, Path) anyway
        seen.add(identity)
        key = measurement_key(entry.path)
        if key in measurements:
            key = f"{key}-{item['type']}"
        measurements[key] = item
    description: dict[str, Any] = {
        "flavor_part": "SOFTWARE",
        "label": log.label,
        "digest_algorithm": log.digest_alg,
    }
    if source:
        description["source"] = source
    document: dict[str, Any] = {
        "meta": {"schema": {"uri": SOFTWARE_SCHEMA_URI}, "id": log.uuid, "description": description},
        "pcrs": [
            {
                "pcr": APPLICATION_PCR.to_json(),
                "measurement": "",
                "pcr_matches": False,
                "eventlog_includes": [application_event(log).to_json()],
            }
        ],
        "software": {"measurements": measurements, "cumulative_hash": log.cumulative_hash},
    }
    if not measurements:
        del document["software"]["measurements"]  # as SecL writes a manifest that measured nothing
    return parse_flavor(document)
