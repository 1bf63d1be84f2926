"""Trust rules: the shared vocabulary (rule and fault names, faults, rule results) and the Rule protocol.

Rule and fault names are SecL's, without a package prefix: ``PcrMatchesConstant``, ``PcrValueMismatchSHA256``.
SecL's Java HVS wrote them as ``com.intel.mtwilson.core.verifier.policy.rule.PcrMatchesConstant`` and
``com.intel.mtwilson.core.verifier.policy.fault.PcrValueMismatchSHA256``; its Go HVS as ``rule.…`` and
``fault.…``. :func:`bare_name` strips any of these, and the JSON export (``secl.core.trustreport``) adds the
prefix the consumer wants.

Each rule is a frozen dataclass built from a flavor; ``apply(manifest)`` returns a :class:`RuleResult`
whose faults carry the data an operator needs to see *what* changed: the PCR and bank, the expected and
actual values, and the missing or unexpected events with their decoded type names and tags. A rule never
raises for bad evidence: a missing or malformed piece of the manifest is a named fault.

The PCR, event-log, certificate and software rules live in ``rules_pcr``, ``rules_trust`` and
``rules_software``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from secl.core.hostmanifest import HostManifest
from secl.core.pcrevents import EMPTY, TpmEvent, thaw

__all__ = [
    "JAVA_FAULT_PREFIX",
    "JAVA_RULE_PREFIX",
    "Fault",
    "FaultName",
    "Rule",
    "RuleName",
    "RuleResult",
    "bare_name",
]

JAVA_RULE_PREFIX = "com.intel.mtwilson.core.verifier.policy.rule."
JAVA_FAULT_PREFIX = "com.intel.mtwilson.core.verifier.policy.fault."


class RuleName:
    """SecL's rule names."""

    AIK_CERTIFICATE_TRUSTED = "AikCertificateTrusted"
    ASSET_TAG_MATCHES = "AssetTagMatches"
    FLAVOR_TRUSTED = "FlavorTrusted"
    PCR_EVENT_LOG_EQUALS = "PcrEventLogEquals"
    PCR_EVENT_LOG_EQUALS_EXCLUDING = "PcrEventLogEqualsExcluding"
    PCR_EVENT_LOG_INCLUDES = "PcrEventLogIncludes"
    PCR_EVENT_LOG_INTEGRITY = "PcrEventLogIntegrity"
    PCR_MATCHES_CONSTANT = "PcrMatchesConstant"
    TAG_CERTIFICATE_TRUSTED = "TagCertificateTrusted"
    XML_MEASUREMENTS_DIGEST_EQUALS = "XmlMeasurementsDigestEquals"
    XML_MEASUREMENT_LOG_EQUALS = "XmlMeasurementLogEquals"
    XML_MEASUREMENT_LOG_INTEGRITY = "XmlMeasurementLogIntegrity"
    # Flavor-group policy checks (SecL's HVS applies them over a host's whole report).
    REQUIRED_FLAVOR_TYPE_EXISTS = "RequiredFlavorTypeExists"
    ALL_OF_FLAVORS = "AllOfFlavors"


class FaultName:
    """SecL's fault names. PCR value mismatches append the bank: ``PcrValueMismatchSHA256``."""

    AIK_CERTIFICATE_EXPIRED = "AikCertificateExpired"
    AIK_CERTIFICATE_MISSING = "AikCertificateMissing"
    AIK_CERTIFICATE_NOT_TRUSTED = "AikCertificateNotTrusted"
    AIK_CERTIFICATE_NOT_YET_VALID = "AikCertificateNotYetValid"
    ALL_OF_FLAVORS_MISSING = "AllOfFlavorsMissing"
    ASSET_TAG_MISMATCH = "AssetTagMismatch"
    ASSET_TAG_MISSING = "AssetTagMissing"
    ASSET_TAG_NOT_PROVISIONED = "AssetTagNotProvisioned"
    FLAVOR_SIGNATURE_MISSING = "FlavorSignatureMissing"
    FLAVOR_SIGNATURE_NOT_TRUSTED = "FlavorSignatureNotTrusted"
    FLAVOR_SIGNATURE_VERIFICATION_FAILED = "FlavorSignatureVerificationFailed"
    PCR_EVENT_LOG_CONTAINS_UNEXPECTED_ENTRIES = "PcrEventLogContainsUnexpectedEntries"
    PCR_EVENT_LOG_INVALID = "PcrEventLogInvalid"
    PCR_EVENT_LOG_MISSING = "PcrEventLogMissing"
    PCR_EVENT_LOG_MISSING_EXPECTED_ENTRIES = "PcrEventLogMissingExpectedEntries"
    PCR_MANIFEST_MISSING = "PcrManifestMissing"
    PCR_VALUE_MISMATCH = "PcrValueMismatch"
    PCR_VALUE_MISSING = "PcrValueMissing"
    REQUIRED_FLAVOR_TYPE_MISSING = "RequiredFlavorTypeMissing"
    TAG_CERTIFICATE_EXPIRED = "TagCertificateExpired"
    TAG_CERTIFICATE_MISSING = "TagCertificateMissing"
    TAG_CERTIFICATE_NOT_TRUSTED = "TagCertificateNotTrusted"
    TAG_CERTIFICATE_NOT_YET_VALID = "TagCertificateNotYetValid"
    # Ours: SecL has no tag-certificate revocation (its HVS only deletes certificates).
    TAG_CERTIFICATE_REVOKED = "TagCertificateRevoked"
    XML_MEASUREMENT_LOG_CONTAINS_UNEXPECTED_ENTRIES = "XmlMeasurementLogContainsUnexpectedEntries"
    XML_MEASUREMENT_LOG_INVALID = "XmlMeasurementLogInvalid"
    XML_MEASUREMENT_LOG_MISSING = "XmlMeasurementLogMissing"
    XML_MEASUREMENT_LOG_MISSING_EXPECTED_ENTRIES = "XmlMeasurementLogMissingExpectedEntries"
    XML_MEASUREMENT_LOG_VALUE_MISMATCH_ENTRIES_384 = "XmlMeasurementLogValueMismatchEntriesSha384"
    XML_MEASUREMENTS_DIGEST_VALUE_MISMATCH = "XmlMeasurementsDigestValueMismatch"
    XML_MEASUREMENT_VALUE_MISMATCH = "XmlMeasurementValueMismatch"


def bare_name(name: str) -> str:
    """``com.intel…rule.PcrMatchesConstant`` / ``rule.PcrMatchesConstant`` → ``PcrMatchesConstant``."""
    return name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Fault:
    """One reason a rule is not satisfied, with the data that shows what changed."""

    name: str
    description: str
    pcr_index: int | None = None
    pcr_bank: str | None = None
    expected_value: str | None = None
    actual_value: str | None = None
    calculated_value: str | None = None
    missing_entries: tuple[TpmEvent, ...] = ()
    unexpected_entries: tuple[TpmEvent, ...] = ()
    flavor_id: str | None = None
    # Software faults list file/dir measurements; other extra data (e.g. digest algorithms) goes in details.
    missing_measurements: tuple[Mapping[str, Any], ...] = ()
    unexpected_measurements: tuple[Mapping[str, Any], ...] = ()
    mismatch_measurements: tuple[Mapping[str, Any], ...] = ()
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    def to_json(self, prefix: str = JAVA_FAULT_PREFIX) -> dict[str, Any]:
        """SecL's fault JSON (``fault_name``, ``description``, ``pcr_index``, ``pcr_bank``, ...)."""
        out: dict[str, Any] = {"fault_name": prefix + self.name, "description": self.description}
        if self.pcr_index is not None:
            out["pcr_index"] = self.pcr_index
        if self.pcr_bank is not None:
            out["pcr_bank"] = self.pcr_bank
        pcr_fault = self.name.startswith("PcrValue")
        for key, value in (
            ("expected_pcrvalue" if pcr_fault else "expected_value", self.expected_value),
            ("actual_pcrvalue" if pcr_fault else "actual_value", self.actual_value),
            ("calculated_value", self.calculated_value),
            ("flavor_id", self.flavor_id),
        ):
            if value is not None:
                out[key] = value
        if self.missing_entries:
            out["missing_entries"] = [e.to_json() for e in self.missing_entries]
        if self.unexpected_entries:
            out["unexpected_entries"] = [e.to_json() for e in self.unexpected_entries]
        for key in ("missing_measurements", "unexpected_measurements", "mismatch_measurements"):
            if getattr(self, key):
                out[key] = [thaw(m) for m in getattr(self, key)]
        out.update(thaw(self.details))
        return out

    def explain(self) -> str:
        """A multi-line text for operators: the description, then each missing/unexpected event."""
        lines = [f"{self.name}: {self.description}"]
        lines += [f"  missing:    {e.describe()}" for e in self.missing_entries]
        lines += [f"  unexpected: {e.describe()}" for e in self.unexpected_entries]
        return "\n".join(lines)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule: its name, markers (flavor parts), what it expected, and its faults."""

    rule_name: str
    markers: tuple[str, ...]
    faults: tuple[Fault, ...] = ()
    flavor_id: str | None = None
    # The rule's JSON body, JSON-ready (dicts, lists, scalars). Rules build it once from their flavor and
    # share it with every result, so it is read-only: neither it nor anything in it may be modified.
    expected: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def trusted(self) -> bool:
        return not self.faults

    def for_flavor(self, flavor_id: str) -> RuleResult:
        """This result attributed to ``flavor_id`` (as a report lists it).

        A copy of the fields as they are, without ``__init__``: a report copies each of its results once,
        and a frozen dataclass's ``__init__`` sets its fields one by one through ``object.__setattr__``.
        """
        out = object.__new__(RuleResult)
        out.__dict__.update(self.__dict__, flavor_id=flavor_id)
        return out

    def to_json(
        self, rule_prefix: str = JAVA_RULE_PREFIX, fault_prefix: str = JAVA_FAULT_PREFIX
    ) -> dict[str, Any]:
        """SecL's rule-result JSON: ``{"rule": {rule_name, markers, ...}, "flavor_id", "faults", "trusted"}``.

        The containers down to ``rule``, ``markers``, ``faults`` and each fault are new on every call, so a
        caller may change them; the values of the rule's body (``expected``: e.g. a PCR's expected events)
        are the rule's own, shared by every report of that flavor, and must not be modified.
        """
        # The body's values are not copied: a flavor's expected events are most of a report's size.
        rule = {"rule_name": rule_prefix + self.rule_name, "markers": [*self.markers], **self.expected}
        out: dict[str, Any] = {"rule": rule}
        if self.flavor_id is not None:
            out["flavor_id"] = self.flavor_id
        if self.faults:
            out["faults"] = [f.to_json(fault_prefix) for f in self.faults]
        out["trusted"] = not self.faults
        return out


class Rule(Protocol):
    """A trust rule: built from a flavor, applied to a host manifest."""

    @property
    def name(self) -> str: ...

    def apply(self, manifest: HostManifest) -> RuleResult: ...
