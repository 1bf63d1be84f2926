"""The PCR and event-log rules: PcrMatchesConstant, PcrEventLogEquals(Excluding), PcrEventLogIncludes,
PcrEventLogIntegrity.

Event comparison follows SecL: an event is identified by (type id, measurement) and the logs are compared
as *sets* of such identities. Order and multiplicity are deliberately not compared here, for two reasons:
SecL's flavors repeat entries (the UnknownVendor PLATFORM flavor lists PCR 0's EV_SEPARATOR twice while
the host logged it once, and SecL calls that trusted), and the exact sequence is already pinned by the
PCR value, which PcrMatchesConstant compares and PcrEventLogIntegrity ties to the log by replay. A flavor
part that uses an event-log rule always gets PcrEventLogIntegrity next to it for that reason.

A rule depends on its flavor only, so what it derives from the flavor (its JSON body, the set of expected
event identities) is computed once per rule object and kept on it; secl.core.trustreport keeps the rule
objects of a flavor for as long as the flavor. Only the comparison with the manifest runs per report.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from secl.core.flavor import FlavorPcr
from secl.core.hostmanifest import HostManifest
from secl.core.pcrevents import PcrRef, SeclJSONError, TpmEvent, replay_events, thaw
from secl.core.rules import Fault, FaultName, RuleName, RuleResult

__all__ = [
    "PcrEventLogEquals",
    "PcrEventLogIncludes",
    "PcrEventLogIntegrity",
    "PcrMatchesConstant",
    "subtract_events",
]


def subtract_events(events: tuple[TpmEvent, ...], remove: tuple[TpmEvent, ...]) -> tuple[TpmEvent, ...]:
    """The events of ``events`` whose (type id, measurement) is not among ``remove``'s, in order, once each."""
    gone = {e.key for e in remove}
    seen: set[tuple[str, str]] = set()
    out = []
    for event in events:
        if event.key not in gone and event.key not in seen:
            seen.add(event.key)
            out.append(event)
    return tuple(out)


def _events_body(pcr: PcrRef, events: tuple[TpmEvent, ...]) -> dict[str, Any]:
    body = {"expected_values": {"pcr": pcr.to_json(), "tpm_events": [e.to_json() for e in events]}}
    return thaw(body)  # JSON-ready all the way down (an event's extra members are frozen)


def _keys(events: tuple[TpmEvent, ...]) -> frozenset[tuple[str, str]]:
    return frozenset(e.key for e in events)


def _pcr_manifest_missing() -> Fault:
    return Fault(FaultName.PCR_MANIFEST_MISSING, "Host report does not include a PCR Manifest")


def _event_log_missing(pcr: PcrRef) -> Fault:
    return Fault(
        FaultName.PCR_EVENT_LOG_MISSING,
        f"Host report does not include a PCR Event Log for PCR {pcr.index} of {pcr.bank} value",
        pcr_index=pcr.index,
        pcr_bank=pcr.bank,
    )


def _value_missing(pcr: PcrRef) -> Fault:
    return Fault(
        FaultName.PCR_VALUE_MISSING,
        f"Host report does not include required PCR {pcr.index}, bank {pcr.bank}",
        pcr_index=pcr.index,
        pcr_bank=pcr.bank,
    )


def _entries_fault(name: str, pcr: PcrRef, events: tuple[TpmEvent, ...], verb: str) -> Fault:
    listed = "; ".join(e.describe() for e in events)
    missing = name == FaultName.PCR_EVENT_LOG_MISSING_EXPECTED_ENTRIES
    return Fault(
        name,
        f"Module manifest for PCR {pcr.index} of {pcr.bank} value {verb} {len(events)} "
        f"{'expected' if missing else 'unexpected'} entries: {listed}",
        pcr_index=pcr.index,
        pcr_bank=pcr.bank,
        missing_entries=events if missing else (),
        unexpected_entries=() if missing else events,
    )


@dataclass(frozen=True)
class PcrMatchesConstant:
    """The host's value of one PCR equals the flavor's ``measurement``."""

    expected: FlavorPcr
    marker: str
    name: str = RuleName.PCR_MATCHES_CONSTANT

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it)."""
        return {
            "pcr": self.expected.pcr.to_json(),
            "measurement": self.expected.measurement,
            "pcr_matches": True,
        }

    @cached_property
    def _value(self) -> str:
        return self.expected.measurement.lower()

    def apply(self, manifest: HostManifest) -> RuleResult:
        fault = self._fault(manifest)
        return RuleResult(self.name, (self.marker,), () if fault is None else (fault,), None, self.body)

    def _fault(self, manifest: HostManifest) -> Fault | None:
        pcr = self.expected.pcr
        if not manifest.has_pcr_manifest:
            return _pcr_manifest_missing()
        actual = manifest.pcr_values.get(pcr)
        expected = self._value
        if not actual or not expected:
            return _value_missing(pcr)
        if actual == expected:
            return None
        return Fault(
            FaultName.PCR_VALUE_MISMATCH + pcr.bank,
            f"Host PCR {pcr.index} of {pcr.bank} with value '{actual}' does not match expected value '{expected}'",
            pcr_index=pcr.index,
            pcr_bank=pcr.bank,
            expected_value=expected,
            actual_value=actual,
        )


class _ExpectsEvents:
    """What the two event-log rules share: their JSON body and the identities of the expected events, each
    computed once per rule (a rule lives as long as its flavor)."""

    pcr: PcrRef
    events: tuple[TpmEvent, ...]

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it)."""
        return _events_body(self.pcr, self.events)

    @cached_property
    def _expected_keys(self) -> frozenset[tuple[str, str]]:
        return _keys(self.events)


@dataclass(frozen=True)
class PcrEventLogEquals(_ExpectsEvents):
    """The PCR's event log holds exactly the expected events, after dropping events with excluded tags.

    With ``exclude_tags`` this is SecL's PcrEventLogEqualsExcluding (VMware flavors exclude per-boot
    components such as the command line), otherwise PcrEventLogEquals.
    """

    pcr: PcrRef
    events: tuple[TpmEvent, ...]
    marker: str
    exclude_tags: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        if self.exclude_tags:
            return RuleName.PCR_EVENT_LOG_EQUALS_EXCLUDING
        return RuleName.PCR_EVENT_LOG_EQUALS

    def apply(self, manifest: HostManifest) -> RuleResult:
        faults: list[Fault] = []
        log = manifest.event_logs.get(self.pcr)
        if not manifest.has_pcr_manifest:
            faults.append(_pcr_manifest_missing())
        elif log is None:
            faults.append(_event_log_missing(self.pcr))
        else:
            excluded = set(self.exclude_tags or ())
            kept = (
                tuple(e for e in log.events if not excluded.intersection(e.tags)) if excluded else log.events
            )
            # Equal identity sets mean nothing is unexpected and nothing missing; else list which.
            if _keys(kept) != self._expected_keys:
                faults += self._differences(kept)
        return RuleResult(self.name, (self.marker,), tuple(faults), expected=self.body)

    def _differences(self, kept: tuple[TpmEvent, ...]) -> list[Fault]:
        faults = []
        unexpected = subtract_events(kept, self.events)
        if unexpected:
            faults.append(
                _entries_fault(
                    FaultName.PCR_EVENT_LOG_CONTAINS_UNEXPECTED_ENTRIES, self.pcr, unexpected, "contains"
                )
            )
        missing = subtract_events(self.events, kept)
        if missing:
            faults.append(
                _entries_fault(FaultName.PCR_EVENT_LOG_MISSING_EXPECTED_ENTRIES, self.pcr, missing, "missing")
            )
        return faults


@dataclass(frozen=True)
class PcrEventLogIncludes(_ExpectsEvents):
    """The PCR's event log contains (at least) the expected events."""

    pcr: PcrRef
    events: tuple[TpmEvent, ...]
    marker: str
    name: str = RuleName.PCR_EVENT_LOG_INCLUDES

    def apply(self, manifest: HostManifest) -> RuleResult:
        faults: list[Fault] = []
        log = manifest.event_logs.get(self.pcr)
        if not manifest.has_pcr_manifest:
            faults.append(_pcr_manifest_missing())
        elif log is None:
            faults.append(_event_log_missing(self.pcr))
        elif not self._expected_keys <= _keys(log.events):  # else list the missing ones
            missing = subtract_events(self.events, log.events)
            faults.append(
                _entries_fault(FaultName.PCR_EVENT_LOG_MISSING_EXPECTED_ENTRIES, self.pcr, missing, "missing")
            )
        return RuleResult(self.name, (self.marker,), tuple(faults), expected=self.body)


@dataclass(frozen=True)
class PcrEventLogIntegrity:
    """The PCR's event log replays to the PCR value the host reported (so the log can be believed)."""

    expected: FlavorPcr
    marker: str
    name: str = RuleName.PCR_EVENT_LOG_INTEGRITY

    @cached_property
    def body(self) -> dict[str, Any]:
        """The rule's JSON (read-only: every result shares it)."""
        return thaw({"pcrs": self.expected.to_json()})

    def apply(self, manifest: HostManifest) -> RuleResult:
        pcr = self.expected.pcr
        faults: list[Fault] = []
        actual_value = manifest.pcr_values.get(pcr)
        log = manifest.event_logs.get(pcr)
        if not manifest.has_pcr_manifest:
            faults.append(_pcr_manifest_missing())
        elif actual_value is None:
            faults.append(_value_missing(pcr))
        elif log is None:
            faults.append(_event_log_missing(pcr))
        else:
            try:
                calculated = replay_events(pcr.bank, pcr.index, log.events).hex()
            except SeclJSONError as exc:  # A measurement of the wrong size for the bank.
                calculated = f"(cannot replay: {exc})"
            if calculated != actual_value:
                faults.append(
                    Fault(
                        FaultName.PCR_EVENT_LOG_INVALID,
                        f"PCR {pcr.index} Event Log is invalid, mismatches between calculated event log values "
                        f"{calculated} and actual pcr values {actual_value}",
                        pcr_index=pcr.index,
                        pcr_bank=pcr.bank,
                        calculated_value=calculated,
                        actual_value=actual_value,
                    )
                )
        return RuleResult(self.name, (self.marker,), tuple(faults), expected=self.body)
