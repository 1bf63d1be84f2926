"""Which rules a flavor gets, applying them to a host manifest, and the trust report (with SecL's JSON).

``rules_for_flavor`` follows SecL's rule factory. The vendor comes from ``meta.vendor``; when that is
``UNKNOWN`` (or absent) it is derived from the host's OS, as the Java HVS did (Linux → INTEL, VMware ESXi →
VMWARE, Windows → MICROSOFT), and a host whose OS says none of these is refused with a
:class:`~secl.core.vendor.VendorError` (``vendor-undetermined``), as SecL's Go HVS refuses it, instead of
being judged with the Intel rules by default (:mod:`secl.core.vendor`). Then, per flavor part:

- INTEL, PLATFORM/OS/HOST_UNIQUE: AikCertificateTrusted; ASSET_TAG: TagCertificateTrusted, AssetTagMatches;
  SOFTWARE: XmlMeasurementsDigestEquals, XmlMeasurementLogIntegrity, XmlMeasurementLogEquals.
- VMWARE (no AIK, no software measurements): ASSET_TAG: TagCertificateTrusted only.
- then, for every ``pcrs[]`` entry in order: PcrMatchesConstant when ``pcr_matches``; PcrEventLogEquals (or
  ...Excluding with ``exclude_tags``) for ``eventlog_equals``; PcrEventLogIncludes for ``eventlog_includes``;
  and one PcrEventLogIntegrity after the first event-log rule of that PCR;
- last, FlavorTrusted (unless the caller turned signature checking off, as SecL's own tests do).

A part's verdict follows the flavor group's match policy: ANY_OF (one trusted flavor of the part suffices)
or ALL_OF (every flavor of the part must be trusted, else an AllOfFlavors result with AllOfFlavorsMissing);
required parts with no flavor get a RequiredFlavorTypeExists result with RequiredFlavorTypeMissing.

A verifier evaluates the same (memoized, immutable) flavor objects report after report, so the rules that
depend on the flavor alone (the PCR, event-log, software and AssetTagMatches rules, with their JSON bodies)
are built once per flavor object and vendor and kept in ``Flavor.derived``; only the rules that depend on
the trust anchors and the evaluation time (AikCertificateTrusted, TagCertificateTrusted, FlavorTrusted) are
built per report. Every rule is applied to the manifest on every report: no verdict is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from secl.core.flavor import FLAVOR_PARTS, Flavor, SignedFlavor
from secl.core.hostmanifest import HostManifest
from secl.core.rules import (
    JAVA_FAULT_PREFIX,
    JAVA_RULE_PREFIX,
    Fault,
    FaultName,
    Rule,
    RuleName,
    RuleResult,
    bare_name,
)
from secl.core.rules_assettag import AssetTagMatches, TagCertificateTrusted, tag_certificate_der
from secl.core.rules_pcr import (
    PcrEventLogEquals,
    PcrEventLogIncludes,
    PcrEventLogIntegrity,
    PcrMatchesConstant,
)
from secl.core.rules_software import (
    XmlMeasurementLogEquals,
    XmlMeasurementLogIntegrity,
    XmlMeasurementsDigestEquals,
)
from secl.core.rules_trust import AikCertificateTrusted, FlavorTrusted
from secl.core.vendor import TrustPolicyError, VendorError
from secl.core.vendor import resolve_vendor as vendor_for
from secl.core.verifymemo import VerificationMemo

__all__ = [
    "DEFAULT_MATCH_POLICY",
    "FlavorVerdict",
    "PartVerdict",
    "TrustAnchors",
    "TrustPolicyError",
    "TrustReport",
    "VendorError",
    "build_trust_report",
    "evaluate_flavor",
    "resolve_vendor",
    "rules_for_flavor",
    "summarize_secl_report",
]

INTEL_POLICY = "Intel Host Trust Policy"
VMWARE_POLICY = "VMware Host Trust Policy"
DEFAULT_MATCH_POLICY: Mapping[str, str] = {
    "PLATFORM": "ANY_OF",
    "OS": "ANY_OF",
    "HOST_UNIQUE": "ANY_OF",
    "ASSET_TAG": "ANY_OF",
    "SOFTWARE": "ALL_OF",
}


@dataclass(frozen=True)
class TrustAnchors:
    """What the verifier trusts, and the instant certificates are checked at."""

    at: datetime
    privacy_cas: tuple[x509.Certificate, ...] = ()
    flavor_signing_cert: x509.Certificate | None = None
    flavor_cas: tuple[x509.Certificate, ...] = ()
    flavor_intermediates: tuple[x509.Certificate, ...] = ()
    tag_cas: tuple[x509.Certificate, ...] = ()
    # SHA-384 digests of tag certificates their issuer revoked (TagCertificateTrusted refuses them).
    revoked_tag_certificates: frozenset[bytes] = frozenset()
    check_flavor_signatures: bool = True
    # Remembers signature checks that passed, across reports (see secl.core.verifymemo); None: check all.
    memo: VerificationMemo | None = None


def resolve_vendor(flavor: Flavor, manifest: HostManifest) -> str:
    """INTEL, VMWARE or MICROSOFT: the flavor's vendor, or the host's when the flavor says UNKNOWN.

    Raises :class:`VendorError` when the flavor says UNKNOWN and the host's OS is unknown or blank, and
    :class:`TrustPolicyError` for a vendor SecL has no policy for.
    """
    return vendor_for(flavor.meta.vendor, manifest.host_info, flavor_id=flavor.id)


def _tpm_version(flavor: Flavor, manifest: HostManifest) -> str:
    version = flavor.meta.description.get("tpm_version")
    if version:
        return str(version)
    features = manifest.host_info.get("hardware_features") or {}
    return str(((features.get("TPM") or {}).get("meta") or {}).get("tpm_version", ""))


def _anchored_rules(vendor: str, flavor: Flavor, trust: TrustAnchors) -> list[Rule]:
    """The vendor's required rules that check against the trust anchors at ``trust.at`` (built per report).

    They come first among the required rules: AikCertificateTrusted, or TagCertificateTrusted before
    AssetTagMatches (:func:`_flavor_rules`).
    """
    part = flavor.flavor_part
    if vendor == "INTEL" and part in ("PLATFORM", "OS", "HOST_UNIQUE"):
        return [AikCertificateTrusted(trust.privacy_cas, part, trust.at, memo=trust.memo)]
    if part == "ASSET_TAG":
        return [
            TagCertificateTrusted(
                _tag_certificate(flavor),
                trust.tag_cas,
                part,
                trust.at,
                memo=trust.memo,
                revoked=trust.revoked_tag_certificates,
            )
        ]
    return []


def _flavor_rules(vendor: str, flavor: Flavor) -> tuple[Rule, ...]:
    """The rules that depend on the flavor alone, in SecL's order: the vendor's other required rules, then
    each PCR's. Built once per flavor object and vendor (a rule keeps its JSON body): the flavor is immutable,
    and two threads building them at once store equal tuples."""
    key = ("rules", vendor)
    found: tuple[Rule, ...] | None = flavor.derived.get(key)
    if found is None:
        found = flavor.derived[key] = (*_own_required_rules(vendor, flavor), *_pcr_rules(flavor))
    return found


def _own_required_rules(vendor: str, flavor: Flavor) -> list[Rule]:
    part = flavor.flavor_part
    if vendor != "INTEL" or part in ("PLATFORM", "OS", "HOST_UNIQUE"):
        return []
    if part == "ASSET_TAG":
        return [AssetTagMatches(_tag_certificate(flavor), part)]
    digest_alg = str(flavor.meta.description.get("digest_algorithm", "SHA384"))
    cumulative = flavor.software.cumulative_hash if flavor.software else None
    return [
        XmlMeasurementsDigestEquals(digest_alg, flavor.id),
        XmlMeasurementLogIntegrity(flavor.id, flavor.label, cumulative or ""),
        XmlMeasurementLogEquals.from_flavor(flavor),
    ]


def _pcr_rules(flavor: Flavor) -> list[Rule]:
    part = flavor.flavor_part
    rules: list[Rule] = []
    for pcr in flavor.pcrs or ():
        log_rules: list[Rule] = []
        if pcr.pcr_matches:
            rules.append(PcrMatchesConstant(pcr, part))
        if pcr.eventlog_equals is not None:
            equals = pcr.eventlog_equals
            log_rules.append(PcrEventLogEquals(pcr.pcr, equals.events, part, equals.exclude_tags))
        if pcr.eventlog_includes:
            log_rules.append(PcrEventLogIncludes(pcr.pcr, pcr.eventlog_includes, part))
        if log_rules:
            rules += [log_rules[0], PcrEventLogIntegrity(pcr, part), *log_rules[1:]]
    return rules


def _tag_certificate(flavor: Flavor) -> bytes | None:
    """The ASSET_TAG flavor's tag certificate DER, decoded once per flavor object."""
    if "tag-certificate" not in flavor.derived:
        flavor.derived["tag-certificate"] = tag_certificate_der(flavor)
    found: bytes | None = flavor.derived["tag-certificate"]
    return found


def rules_for_flavor(
    flavor: Flavor | SignedFlavor, manifest: HostManifest, trust: TrustAnchors
) -> tuple[str, tuple[Rule, ...]]:
    """Return ``(policy name, rules)`` for one flavor against one host, in SecL's order."""
    signed = flavor if isinstance(flavor, SignedFlavor) else None
    plain = signed.flavor if signed else flavor
    assert isinstance(plain, Flavor)
    vendor = resolve_vendor(plain, manifest)
    if vendor == "VMWARE":
        if _tpm_version(plain, manifest) not in ("1.2", "2.0"):
            raise TrustPolicyError(f"flavor {plain.id}: unknown TPM version for a VMware host")
        policy = VMWARE_POLICY
    elif vendor == "INTEL":
        policy = INTEL_POLICY
    else:  # MICROSOFT: SecL's Windows policy is not implemented
        raise TrustPolicyError(f"flavor {plain.id}: vendor {vendor} is not supported")
    part = plain.flavor_part
    rules = _anchored_rules(vendor, plain, trust)
    rules += _flavor_rules(vendor, plain)
    if signed is not None and trust.check_flavor_signatures:
        rules.append(
            FlavorTrusted(
                signed,
                trust.flavor_signing_cert,
                trust.flavor_cas,
                part,
                trust.at,
                trust.flavor_intermediates,
                memo=trust.memo,
            )
        )
    return policy, tuple(rules)


@dataclass(frozen=True)
class FlavorVerdict:
    """All rule results of one flavor against one host."""

    flavor_id: str
    flavor_part: str
    policy_name: str
    results: tuple[RuleResult, ...]
    # Computed once (the results are final): the part's verdict and both JSON views read it.
    trusted: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # An empty rule set proves nothing, so it is not trusted (SecL: "empty policy is not trusted").
        trusted = bool(self.results) and not any(r.faults for r in self.results)
        object.__setattr__(self, "trusted", trusted)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(f for r in self.results for f in r.faults)


def evaluate_flavor(
    flavor: Flavor | SignedFlavor, manifest: HostManifest, trust: TrustAnchors
) -> FlavorVerdict:
    """Apply every rule of one flavor to the manifest."""
    plain = flavor.flavor if isinstance(flavor, SignedFlavor) else flavor
    policy, rules = rules_for_flavor(flavor, manifest, trust)
    flavor_id = plain.id
    results = tuple(rule.apply(manifest).for_flavor(flavor_id) for rule in rules)
    return FlavorVerdict(flavor_id, plain.flavor_part, policy, results)


@dataclass(frozen=True)
class PartVerdict:
    """The verdict for one flavor part: trusted or not, the flavors weighed, and any policy results."""

    part: str
    match_policy: str
    flavors: tuple[FlavorVerdict, ...]
    policy_results: tuple[RuleResult, ...] = ()
    # Computed once (the verdicts are final): the report's verdict and both JSON views read them.
    trusted: bool = field(init=False, compare=False)
    # The rule results shown for the part: for ANY_OF, those of a trusted flavor when there is one.
    results: tuple[RuleResult, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted", self._trusted())
        shown = self.flavors
        if self.match_policy == "ANY_OF" and any(f.trusted for f in self.flavors):
            shown = tuple(f for f in self.flavors if f.trusted)[:1]
        object.__setattr__(self, "results", tuple(r for f in shown for r in f.results) + self.policy_results)

    def _trusted(self) -> bool:
        if any(not r.trusted for r in self.policy_results) or not self.flavors:
            return False
        if self.match_policy == "ALL_OF":
            return all(f.trusted for f in self.flavors)
        return any(f.trusted for f in self.flavors)


@dataclass(frozen=True)
class TrustReport:
    """The trust report of one host: per flavor part, trusted or not, and why."""

    parts: Mapping[str, PartVerdict]
    policy_name: str
    extra_results: tuple[RuleResult, ...] = field(default=())

    @property
    def trusted(self) -> bool:
        return (
            bool(self.parts)
            and all(p.trusted for p in self.parts.values())
            and all(r.trusted for r in self.extra_results)
        )

    @property
    def results(self) -> tuple[RuleResult, ...]:
        return tuple(r for p in self.parts.values() for r in p.results) + self.extra_results

    def to_json(
        self, rule_prefix: str = JAVA_RULE_PREFIX, fault_prefix: str = JAVA_FAULT_PREFIX
    ) -> dict[str, Any]:
        """SecL's TrustReport JSON: ``{"policy_name", "results": [...], "trusted"}``."""
        return {
            "policy_name": self.policy_name,
            "results": [r.to_json(rule_prefix, fault_prefix) for r in self.results],
            "trusted": self.trusted,
        }

    def flavors_trust_json(
        self, rule_prefix: str = JAVA_RULE_PREFIX, fault_prefix: str = JAVA_FAULT_PREFIX
    ) -> dict[str, Any]:
        """SecL's per-part map ``{part: {"trust": bool, "rules": [...]}}`` (``trust_information.flavors_trust``)."""
        return {
            part: {
                "trust": verdict.trusted,
                "rules": [r.to_json(rule_prefix, fault_prefix) for r in verdict.results],
            }
            for part, verdict in self.parts.items()
        }


def build_trust_report(
    flavors: Iterable[Flavor | SignedFlavor],
    manifest: HostManifest,
    trust: TrustAnchors,
    *,
    match_policy: Mapping[str, str] = DEFAULT_MATCH_POLICY,
    required_parts: Sequence[str] = (),
) -> TrustReport:
    """Evaluate every flavor and combine them per part under the match policy."""
    by_part: dict[str, list[FlavorVerdict]] = {}
    policies = set()
    for flavor in flavors:
        verdict = evaluate_flavor(flavor, manifest, trust)
        policies.add(verdict.policy_name)
        by_part.setdefault(verdict.flavor_part, []).append(verdict)
    parts: dict[str, PartVerdict] = {}
    for part in FLAVOR_PARTS:
        verdicts = tuple(by_part.get(part, ()))
        policy = match_policy.get(part, "ANY_OF")
        extra: tuple[RuleResult, ...] = ()
        if not verdicts and part in required_parts:
            fault = Fault(FaultName.REQUIRED_FLAVOR_TYPE_MISSING, f"Required flavor type missing: {part}")
            extra = (RuleResult(RuleName.REQUIRED_FLAVOR_TYPE_EXISTS, (part,), (fault,)),)
        elif policy == "ALL_OF" and any(not v.trusted for v in verdicts):
            extra = tuple(
                RuleResult(
                    RuleName.ALL_OF_FLAVORS,
                    (part,),
                    (
                        Fault(
                            FaultName.ALL_OF_FLAVORS_MISSING,
                            f"All of Flavor Types Missing : {part}",
                            flavor_id=v.flavor_id,
                        ),
                    ),
                    v.flavor_id,
                )
                for v in verdicts
                if not v.trusted
            )
        if verdicts or extra:
            parts[part] = PartVerdict(part, policy, verdicts, extra)
    return TrustReport(parts, " / ".join(sorted(policies)))


def summarize_secl_report(doc: Mapping[str, Any]) -> dict[str, tuple[bool, tuple[str, ...], tuple[str, ...]]]:
    """Read a SecL trust report in any of its shapes into ``{part: (trusted, rule names, fault names)}``.

    Accepted: the per-part map (``{part: {"trust", "rules"}}``), HVS report collections
    (``{"reports": [{"trust_information": {"flavors_trust": ...}}]}``, first report) and the verifier's
    ``{"results": [...], "trusted"}`` (grouped by marker). Names are returned without package prefix.
    """
    if "reports" in doc:
        return summarize_secl_report(doc["reports"][0]["trust_information"]["flavors_trust"])
    if "results" in doc:
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for result in doc["results"]:
            for marker in result["rule"].get("markers") or ():
                grouped.setdefault(marker, []).append(result)
        return {
            part: (all(r.get("trusted", not r.get("faults")) for r in rs), *_names(rs))
            for part, rs in grouped.items()
        }
    return {part: (bool(body["trust"]), *_names(body["rules"])) for part, body in doc.items()}


def _names(results: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    rules = tuple(bare_name(r["rule"].get("rule_name", "")) for r in results)
    faults = tuple(bare_name(f["fault_name"]) for r in results for f in r.get("faults") or ())
    return rules, faults
