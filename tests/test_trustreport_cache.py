"""What a verifier may rely on when it evaluates the same flavor objects report after report.

The rules that depend on a flavor alone (with their JSON bodies) are built once per flavor object and the
memo keys of signature checks are kept on the flavor and the manifest (``secl.core.trustreport``,
``secl.core.rules_trust``). These tests pin down what that must not change: every report judges its own
manifest, anchors and time; a report's JSON is the same whether the flavors are warm or freshly parsed; and
what ``to_json``/``flavors_trust_json`` return belongs to the caller down to each rule and fault, so
changing it changes no later report.

Evidence: SecL's UnknownVendor case (a RedHat host, flavors with ``"vendor": "UNKNOWN"``), its PLATFORM and
OS flavors re-signed with our key, and an AIK we issue (the corpus's AIK chains to no certificate it has).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secl.core.flavor import SignedFlavor, parse_signed_flavor, parse_signed_flavors
from secl.core.flavorsign import sign_flavor
from secl.core.hostmanifest import HostManifest, parse_host_manifest
from secl.core.pcrevents import PcrRef
from secl.core.rules import RuleName
from secl.core.trustreport import TrustAnchors, TrustReport, build_trust_report, rules_for_flavor
from secl.core.verifymemo import VerificationMemo
from tests.corpus import corpus_bytes

BASE = "intel-secl/pkg/lib/verifier/test_data/UnknownVendor"
START = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
AT = dt.datetime(2021, 1, 10, tzinfo=dt.UTC)  # inside every certificate's validity below


def _cert(cn: str, key: Any, issuer_key: Any, issuer: x509.Certificate | None, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA384())
    )


@dataclasses.dataclass(frozen=True)
class Setup:
    flavors: tuple[SignedFlavor, ...]
    host: HostManifest
    anchors: TrustAnchors
    other_signer: x509.Certificate  # chains to the same flavor CA, but did not sign the flavors


def _setup() -> Setup:
    manifest = parse_host_manifest(corpus_bytes(f"{BASE}/host_manifest.json"))
    corpus = parse_signed_flavors(corpus_bytes(f"{BASE}/signed_flavors.json"))
    ca_key, signer_key, pca_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    ca = _cert("Flavor CA", ca_key, ca_key, None, 3650)
    signer = _cert("Flavor Signer", signer_key, ca_key, ca, 365)
    other = _cert("Other Signer", ec.generate_private_key(ec.SECP384R1()), ca_key, ca, 365)
    pca = _cert("Privacy CA", pca_key, pca_key, None, 3650)
    aik = _cert("AIK", ec.generate_private_key(ec.SECP256R1()), pca_key, pca, 30)
    flavors = tuple(
        sign_flavor(f.flavor, signer_key) for f in corpus if f.flavor.flavor_part in ("PLATFORM", "OS")
    )
    host = dataclasses.replace(manifest, aik_certificate=aik.public_bytes(serialization.Encoding.DER))
    anchors = TrustAnchors(
        at=AT, privacy_cas=(pca,), flavor_signing_cert=signer, flavor_cas=(ca,), memo=VerificationMemo()
    )
    return Setup(flavors, host, anchors, other)


def _with_pcr(manifest: HostManifest, index: int, value: str) -> HostManifest:
    values = dict(manifest.pcr_values)
    values[PcrRef(index, "SHA256")] = value
    return dataclasses.replace(manifest, pcr_values=MappingProxyType(values))


def _exported(report: TrustReport) -> str:
    return json.dumps([report.to_json(), report.flavors_trust_json(), report.trusted])


def _fresh(flavors: tuple[SignedFlavor, ...]) -> tuple[SignedFlavor, ...]:
    """The same flavors as new objects: nothing derived from them yet."""
    return tuple(parse_signed_flavor(json.dumps(f.to_json())) for f in flavors)


def _faults(report: TrustReport, part: str) -> list[str]:
    return [f.name for r in report.parts[part].results for f in r.faults]


def test_warm_flavors_judge_each_manifest_afresh() -> None:
    s = _setup()
    changed = _with_pcr(s.host, 5, "ab" * 32)
    first = build_trust_report(s.flavors, s.host, s.anchors)
    second = build_trust_report(s.flavors, changed, s.anchors)
    third = build_trust_report(s.flavors, s.host, s.anchors)
    assert first.trusted and third.trusted and not second.trusted
    assert _faults(second, "PLATFORM") == ["PcrValueMismatchSHA256"] and second.parts["OS"].trusted
    assert _exported(third) == _exported(first)
    # Warm flavor objects report exactly what fresh ones do, for either manifest.
    assert _exported(second) == _exported(build_trust_report(_fresh(s.flavors), changed, s.anchors))
    assert _exported(first) == _exported(build_trust_report(_fresh(s.flavors), s.host, s.anchors))


def test_a_changed_event_log_is_found_by_warm_rules() -> None:
    s = _setup()
    build_trust_report(s.flavors, s.host, s.anchors)  # warm
    ref = PcrRef(0, "SHA256")
    log = s.host.event_logs[ref]
    logs = dict(s.host.event_logs)
    logs[ref] = dataclasses.replace(log, events=log.events[:1] + log.events[2:])  # one event gone
    broken = dataclasses.replace(s.host, event_logs=MappingProxyType(logs))
    report = build_trust_report(s.flavors, broken, s.anchors)
    assert _faults(report, "PLATFORM") == ["PcrEventLogMissingExpectedEntries", "PcrEventLogInvalid"]
    assert _exported(report) == _exported(build_trust_report(_fresh(s.flavors), broken, s.anchors))


def test_the_flavor_rules_are_kept_the_anchored_rules_are_not() -> None:
    s = _setup()
    platform = s.flavors[0]
    later = dataclasses.replace(s.anchors, at=AT + dt.timedelta(days=60))  # the AIK has expired
    _, now_rules = rules_for_flavor(platform, s.host, s.anchors)
    _, later_rules = rules_for_flavor(platform, _with_pcr(s.host, 5, "ab" * 32), later)
    assert [r.name for r in now_rules] == [r.name for r in later_rules]
    assert (now_rules[0].name, now_rules[-1].name) == (
        RuleName.AIK_CERTIFICATE_TRUSTED,
        RuleName.FLAVOR_TRUSTED,
    )
    assert all(a is b for a, b in zip(now_rules[1:-1], later_rules[1:-1], strict=True))
    assert now_rules[0] is not later_rules[0] and now_rules[-1] is not later_rules[-1]
    report = build_trust_report(s.flavors, s.host, later)
    assert _faults(report, "PLATFORM") == ["AikCertificateExpired"]
    assert build_trust_report(s.flavors, s.host, s.anchors).trusted


def test_the_vendor_of_an_unknown_vendor_flavor_follows_each_host() -> None:
    s = _setup()
    info = {**s.host.host_info, "os_name": "VMware ESXi"}
    vmware = dataclasses.replace(s.host, host_info=MappingProxyType(info))
    intel_policy, intel = rules_for_flavor(s.flavors[0], s.host, s.anchors)
    vmware_policy, on_vmware = rules_for_flavor(s.flavors[0], vmware, s.anchors)
    assert (intel_policy, vmware_policy) == ("Intel Host Trust Policy", "VMware Host Trust Policy")
    assert intel[0].name == RuleName.AIK_CERTIFICATE_TRUSTED
    assert RuleName.AIK_CERTIFICATE_TRUSTED not in [r.name for r in on_vmware]
    assert [r.name for r in rules_for_flavor(s.flavors[0], s.host, s.anchors)[1]] == [r.name for r in intel]


def test_a_signature_is_checked_against_each_report_s_signer() -> None:
    s = _setup()
    assert build_trust_report(s.flavors, s.host, s.anchors).trusted
    other = dataclasses.replace(s.anchors, flavor_signing_cert=s.other_signer)
    report = build_trust_report(s.flavors, s.host, other)
    assert _faults(report, "PLATFORM") == _faults(report, "OS") == ["FlavorSignatureNotTrusted"]
    assert build_trust_report(s.flavors, s.host, s.anchors).trusted
    forged = tuple(dataclasses.replace(f, signature=s.flavors[1].signature) for f in s.flavors[:1])
    assert _faults(build_trust_report(forged, s.host, s.anchors), "PLATFORM") == ["FlavorSignatureNotTrusted"]


def test_a_returned_json_belongs_to_the_caller() -> None:
    s = _setup()
    changed = _with_pcr(s.host, 5, "ab" * 32)  # faults too, so their JSON is changed as well
    for manifest in (s.host, changed):
        report = build_trust_report(s.flavors, manifest, s.anchors)
        before = _exported(report)
        doc, parts = report.to_json(), report.flavors_trust_json()
        for result in doc["results"]:
            _scribble(result)
        doc["results"].append({"rule": {}})
        doc["trusted"] = "changed"
        for entry in parts.values():
            entry["rules"] += entry["rules"]  # what the verifier does when it merges flavor groups
            _scribble(entry["rules"][0])
            entry["trust"] = "changed"
        assert _exported(report) == before
        assert _exported(build_trust_report(s.flavors, manifest, s.anchors)) == before
        # Two views of one report share no result either.
        assert report.to_json()["results"][0] is not report.to_json()["results"][0]


def _scribble(result: dict[str, Any]) -> None:
    """Change every container a caller gets of its own: the result, its rule, markers and faults."""
    result["trusted"] = "changed"
    result["flavor_id"] = "changed"
    rule = result["rule"]
    rule["markers"].append("CHANGED")
    for key in list(rule):
        if key not in ("rule_name", "markers"):
            rule[key] = "changed"  # the body's values are replaced, not modified
    rule["rule_name"] = "changed"
    for fault in result.get("faults", []):
        fault["description"] = "changed"
        fault.pop("pcr_index", None)
    result.setdefault("faults", []).append({"fault_name": "changed"})
