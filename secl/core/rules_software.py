"""SOFTWARE flavor rules over the application measurement logs (``measurement_xmls``):
XmlMeasurementsDigestEquals, XmlMeasurementLogIntegrity, XmlMeasurementLogEquals.

A measurement log is SecL's ``lib:wml:measurements:1.0`` XML: ``<Measurement Label Uuid DigestAlg>`` holding
``File``/``Dir``/``Symlink`` elements (attribute ``Path``, text = hex digest) in measurement order and a
``CumulativeHash``: a chain from zeros over those digests in the DigestAlg. The initrd extends SHA-256(cumulative)
into PCR 15 as an event tagged ``<Label>-<Uuid>``, which ties the XML to the quoted PCRs.

The XML is parsed by :mod:`secl.core.measurementlog` (defusedxml: DTDs and entities are refused).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from secl.core.flavor import Flavor
from secl.core.hostmanifest import HostManifest
from secl.core.measurementlog import MeasurementLog, MeasurementLogError, parse_measurement_xml
from secl.core.pcrevents import thaw
from secl.core.rules import Fault, FaultName, RuleName, RuleResult

__all__ = [
    "MeasurementLog",
    "XmlMeasurementLogEquals",
    "XmlMeasurementLogIntegrity",
    "XmlMeasurementsDigestEquals",
    "parse_measurement_xml",
]

_MARKER = "SOFTWARE"
_DEFAULT_PREFIXES = ("ISecL_Default_Application_Flavor", "ISecL_Default_Workload_Flavor")


def _missing(flavor_id: str) -> Fault:
    return Fault(
        FaultName.XML_MEASUREMENT_LOG_MISSING,
        f"Host report does not contain XML Measurement log for flavor {flavor_id}.",
        flavor_id=flavor_id,
    )


def _invalid() -> Fault:
    return Fault(
        FaultName.XML_MEASUREMENT_LOG_INVALID,
        "Unable to parse one of the measurements present in HostManifest",
    )


def _log_for_flavor(manifest: HostManifest, flavor_id: str, label: str) -> MeasurementLog | None:
    """The manifest's measurement log for this flavor: same Uuid, else same Label (SecL matches either)."""
    logs = [parse_measurement_xml(x) for x in manifest.measurement_xmls]
    for log in logs:
        if log.uuid == flavor_id:
            return log
    return next((log for log in logs if log.label == label), None)


@dataclass(frozen=True)
class XmlMeasurementsDigestEquals:
    """Every measurement log on the host uses the flavor's digest algorithm."""

    digest_algorithm: str
    flavor_id: str
    name: str = RuleName.XML_MEASUREMENTS_DIGEST_EQUALS

    def apply(self, manifest: HostManifest) -> RuleResult:
        faults: list[Fault] = []
        if not manifest.measurement_xmls:
            faults.append(_missing(self.flavor_id))
        for text in manifest.measurement_xmls:
            try:
                log = parse_measurement_xml(text)
            except MeasurementLogError:
                faults.append(_invalid())
                continue
            if log.digest_alg != self.digest_algorithm:
                faults.append(
                    Fault(
                        FaultName.XML_MEASUREMENTS_DIGEST_VALUE_MISMATCH,
                        f"XML measurement log for flavor {self.flavor_id} has {self.digest_algorithm} algorithm does "
                        f"not match with measurement {log.uuid} - {log.digest_alg} algorithm.",
                        flavor_id=self.flavor_id,
                        details={
                            "flavor_digest_alg": self.digest_algorithm,
                            "measurement_digest_alg": log.digest_alg,
                        },
                    )
                )
        return RuleResult(self.name, (_MARKER,), tuple(faults))


@dataclass(frozen=True)
class XmlMeasurementLogIntegrity:
    """The flavor's measurement log replays to its CumulativeHash, the flavor's, and the PCR 15 event."""

    flavor_id: str
    flavor_label: str
    expected_cumulative_hash: str
    name: str = RuleName.XML_MEASUREMENT_LOG_INTEGRITY

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it)."""
        return {"flavor_id": self.flavor_id, "flavor_name": self.flavor_label}

    def apply(self, manifest: HostManifest) -> RuleResult:
        return RuleResult(self.name, (_MARKER,), tuple(self._faults(manifest)), expected=self.body)

    def _faults(self, manifest: HostManifest) -> list[Fault]:
        if not manifest.measurement_xmls:
            return [_missing(self.flavor_id)]
        try:
            log = _log_for_flavor(manifest, self.flavor_id, self.flavor_label)
        except MeasurementLogError:
            return [_invalid()]
        if log is None:
            return [_missing(self.flavor_id)]
        calculated = log.replay()
        mismatch = FaultName.XML_MEASUREMENT_VALUE_MISMATCH
        for expected in (log.cumulative_hash, self.expected_cumulative_hash.lower()):
            if calculated != expected:
                return [
                    Fault(
                        mismatch,
                        f"Host XML measurement log final hash with value '{calculated}' does not match expected "
                        f"value '{expected}'",
                        expected_value=expected,
                        actual_value=calculated,
                    )
                ]
        events = manifest.event_log("SHA256", 15)
        if events is None:
            return [
                Fault(
                    FaultName.PCR_EVENT_LOG_MISSING,
                    "Host report does not include a PCR Event Log for PCR 15 of SHA256 value",
                    pcr_index=15,
                    pcr_bank="SHA256",
                )
            ]
        wanted = f"{self.flavor_label}-{self.flavor_id}"
        default = self.flavor_label.startswith(_DEFAULT_PREFIXES)
        # SecL's default flavors get a fresh uuid per host, so their PCR 15 tag is matched by label prefix.
        measured = next(
            (
                e.measurement.lower()
                for e in events
                for t in e.tags
                if t == wanted or (default and t.startswith(self.flavor_label))
            ),
            None,
        )
        digest = hashlib.sha256(bytes.fromhex(calculated)).hexdigest()
        if measured is None:
            return [
                Fault(
                    mismatch,
                    f"The pcr event log did not contain a measurement with label '{self.flavor_label}'",
                    actual_value=digest,
                )
            ]
        if measured != digest:
            return [
                Fault(
                    mismatch,
                    f"Host XML measurement log final hash with value '{digest}' does not match the pcr event log "
                    f"measurement '{measured}'",
                    expected_value=measured,
                    actual_value=digest,
                )
            ]
        return []


@dataclass(frozen=True)
class XmlMeasurementLogEquals:
    """The flavor's measurement log has exactly the flavor's files/dirs/symlinks with the flavor's digests."""

    flavor_id: str
    flavor_label: str
    expected: tuple[Mapping[str, str], ...]
    name: str = RuleName.XML_MEASUREMENT_LOG_EQUALS

    @classmethod
    def from_flavor(cls, flavor: Flavor) -> XmlMeasurementLogEquals:
        measurements = flavor.software.measurements if flavor.software else None
        # Normalize v1 entries ("Value", no "type") to the v3 shape the XML comparison uses.
        expected = tuple(
            {"type": m.type or "", "value": m.value, "Path": m.path, **m.extra}
            for m in (measurements or {}).values()
        )
        return cls(flavor.id, flavor.label, expected)

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it)."""
        measurements = [thaw(m) for m in self.expected]  # JSON-ready: a measurement's extra is frozen
        return {
            "flavor_id": self.flavor_id,
            "flavor_name": self.flavor_label,
            "expected_measurements": measurements,
        }

    def apply(self, manifest: HostManifest) -> RuleResult:
        return RuleResult(self.name, (_MARKER,), tuple(self._faults(manifest)), expected=self.body)

    def _faults(self, manifest: HostManifest) -> list[Fault]:
        if not manifest.measurement_xmls:
            return [_missing(self.flavor_id)]
        try:
            log = _log_for_flavor(manifest, self.flavor_id, self.flavor_label)
        except MeasurementLogError:
            return [_invalid()]
        if log is None:
            return [_missing(self.flavor_id)]
        expected = {(m["type"], m["Path"]): m for m in self.expected}
        actual = {(m["type"], m["Path"]): m for m in (e.as_flavor_measurement() for e in log.entries)}
        missing = [m for k, m in expected.items() if k not in actual]
        unexpected = [m for k, m in actual.items() if k not in expected]
        changed = [
            m for k, m in expected.items() if k in actual and actual[k]["value"].lower() != m["value"].lower()
        ]
        faults = []
        fid = self.flavor_id
        if missing:
            faults.append(
                Fault(
                    FaultName.XML_MEASUREMENT_LOG_MISSING_EXPECTED_ENTRIES,
                    f"XML measurement log for flavor {fid} missing {len(missing)} expected entries: "
                    + ", ".join(m["Path"] for m in missing),
                    flavor_id=fid,
                    missing_measurements=tuple(missing),
                )
            )
        if unexpected:
            faults.append(
                Fault(
                    FaultName.XML_MEASUREMENT_LOG_CONTAINS_UNEXPECTED_ENTRIES,
                    f"XML measurement log of flavor {fid} contains {len(unexpected)} unexpected entries: "
                    + ", ".join(m["Path"] for m in unexpected),
                    flavor_id=fid,
                    unexpected_measurements=tuple(unexpected),
                )
            )
        if changed:
            faults.append(
                Fault(
                    FaultName.XML_MEASUREMENT_LOG_VALUE_MISMATCH_ENTRIES_384,
                    f"XML measurement log for flavor {fid} contains {len(changed)} entries for which the values are "
                    "modified: " + ", ".join(m["Path"] for m in changed),
                    flavor_id=fid,
                    mismatch_measurements=tuple(changed),
                )
            )
        return faults
