"""Flavors from SecL's default templates on SecL's own host manifest, compared with the flavors SecL made.

Inputs, all read from the corpus here (never copied into the repository): the UnknownVendor host manifest
and signed flavors (pkg/lib/verifier/test_data/UnknownVendor) and SecL's default templates
(build/linux/hvs/templates). SecL's PLATFORM/OS flavors there were made by three templates on that host
(their ``flavor_template_ids``); the RHEL suefi, cbnt and uefi templates are the ones whose conditions
hold for it.

Known differences from SecL's flavors, each asserted below:
- SecL's PLATFORM flavor also has PCRs 1 and 5 with ``pcr_matches``: no template in the corpus asks for
  them (the shipped suefi template lists 0, 2, 3, 4, 6, 7), so they came from an older template version.
- SecL's PCR 0 ``eventlog_equals`` lists each untagged event twice (its GetPcrDetails appends untagged
  events once for "no tags" and once for "not excluded"); ours lists each once. The same events as a set.
- ``meta``: ids, timestamps in labels, ``vendor`` (SecL's older HVS wrote UNKNOWN, we write INTEL as
  SecL v5 does for Linux hosts) and the template meta keys differ; ``hardware.feature`` omits SecL's
  always-"false" ``supported`` member. The label's host part is the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secl.core.flavor import parse_signed_flavors
from secl.core.flavortemplate import (
    FlavorTemplateError,
    applicable_templates,
    create_flavors,
    parse_flavor_template,
)
from secl.core.hostmanifest import parse_host_manifest
from secl.core.manifestbuild import host_manifest_to_json
from secl.core.templatecondition import TemplateConditionError, compile_condition
from secl.core.trustreport import TrustAnchors, build_trust_report
from tests.corpus import corpus_bytes

CASE = "intel-secl/pkg/lib/verifier/test_data/UnknownVendor"
TEMPLATES = "intel-secl/build/linux/hvs/templates"
ALL_TEMPLATES = (
    "bmc", "esxi-tpm12", "esxi-tpm20", "ima", "linux-centos-tpm20-cbnt", "linux-centos-tpm20-suefi",
    "linux-centos-tpm20-tboot", "linux-rhel-tpm20-cbnt", "linux-rhel-tpm20-suefi", "linux-rhel-tpm20-tboot",
    "linux-ubuntu-tpm20-cbnt", "linux-ubuntu-tpm20-suefi", "linux-ubuntu-tpm20-tboot", "pfr", "uefi",
)  # fmt: skip
NOW = dt.datetime(2021, 3, 8, 11, 9, 13, tzinfo=dt.UTC)


def _template(name: str):
    doc = json.loads(corpus_bytes(f"{TEMPLATES}/default-{name}.json"))
    doc.setdefault("id", f"00000000-0000-0000-0000-{len(name):012d}")  # HVS assigns ids when storing
    return parse_flavor_template(doc)


def _manifest():
    return parse_host_manifest(corpus_bytes(f"{CASE}/host_manifest.json"))


def _secl_flavors() -> dict:
    return {
        sf.flavor.flavor_part: sf.flavor
        for sf in parse_signed_flavors(corpus_bytes(f"{CASE}/signed_flavors.json"))
    }


def _pcrs(flavor) -> dict:
    return {(p.pcr.index, p.pcr.bank): p for p in flavor.pcrs or ()}


def test_default_templates_that_apply_to_the_secl_host() -> None:
    templates = [_template(name) for name in ALL_TEMPLATES]
    labels = {t.label for t in applicable_templates(_manifest(), templates)}
    # The three SecL used (its flavors carry three template ids), plus IMA, whose part we do not build.
    assert labels == {
        "default-linux-rhel-tpm20-suefi",
        "default-linux-rhel-tpm20-cbnt",
        "default-uefi",
        "ima",
    }


def test_created_platform_and_os_flavors_match_secl() -> None:
    manifest = _manifest()
    templates = [_template(name) for name in ("linux-rhel-tpm20-suefi", "linux-rhel-tpm20-cbnt", "uefi")]
    ours = {f.flavor_part: f for f in create_flavors(manifest, templates, now=NOW)}
    secl = _secl_flavors()
    assert set(ours) == {"PLATFORM", "OS"}  # no template defines HOST_UNIQUE: no empty flavor

    ours_platform, secl_platform = _pcrs(ours["PLATFORM"]), _pcrs(secl["PLATFORM"])
    assert set(secl_platform) - set(ours_platform) == {(1, "SHA256"), (5, "SHA256")}  # older template
    assert set(ours_platform) == {(i, "SHA256") for i in (0, 2, 3, 4, 6, 7)}
    for key, pcr in ours_platform.items():
        expected = secl_platform[key]
        assert (pcr.measurement, pcr.pcr_matches) == (expected.measurement, expected.pcr_matches), key
        assert (pcr.eventlog_equals is None) == (expected.eventlog_equals is None), key
        assert pcr.eventlog_includes == expected.eventlog_includes is None, key
    ours_equals, secl_equals = (
        ours_platform[0, "SHA256"].eventlog_equals,
        secl_platform[0, "SHA256"].eventlog_equals,
    )
    assert ours_equals.exclude_tags is None and secl_equals.exclude_tags is None
    assert len(secl_equals.events) == 8 and len(ours_equals.events) == 5  # SecL's duplicates
    assert {e.key for e in ours_equals.events} == {e.key for e in secl_equals.events}
    assert [(e.type_name, e.tags) for e in ours_equals.events] == [
        (e.type_name, e.tags) for e in manifest.event_log("SHA256", 0)
    ]

    (os_pcr,) = ours["OS"].pcrs
    (secl_os_pcr,) = secl["OS"].pcrs
    assert os_pcr == secl_os_pcr  # index, bank, measurement, pcr_matches and the two "db" events
    assert [e.tags for e in os_pcr.eventlog_includes] == [("db",), ("db",)]

    # Meta: the same facts about the host, our own ids and time.
    for part, keys in {
        "PLATFORM": ("bios_name", "bios_version", "source", "tpm_version", "flavor_part", "tboot_installed"),
        "OS": ("os_name", "os_version", "vmm_name", "vmm_version", "source", "flavor_part"),
    }.items():
        ours_desc, secl_desc = ours[part].meta.description, secl[part].meta.description
        assert {k: ours_desc[k] for k in keys} == {k: secl_desc[k] for k in keys}, part
        assert (
            ours_desc["label"].rsplit("_", 1)[0].split("_", 1)[1]
            == secl_desc["label"].rsplit("_", 1)[0].split("_", 1)[1]
        )
        assert len(ours_desc["flavor_template_ids"]) == 3
    assert (
        ours["PLATFORM"]
        .meta.description["label"]
        .startswith(
            "INTEL_AmericanMegatrendsInc._4.1.8_CBNT_BTGP5_TPM_TXT_UEFI_SecureBootEnabled_2021-03-08T11:09:13"
        )
    )
    assert ours["PLATFORM"].bios == secl["PLATFORM"].bios
    assert ours["PLATFORM"].hardware["feature"]["TPM"]["meta"]["pcr_banks"] == ("SHA1", "SHA256")


def _aik_chain() -> tuple[x509.Certificate, bytes]:
    start = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)

    def cert(cn: str, key, signer, issuer, ca: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA384())
        )  # fmt: skip

    pca_key = ec.generate_private_key(ec.SECP384R1())
    pca = cert("Privacy CA", pca_key, pca_key, None, True)
    aik = cert("AIK", ec.generate_private_key(ec.SECP256R1()), pca_key, pca.subject, False)
    return pca, aik.public_bytes(serialization.Encoding.DER)


def test_created_flavors_trust_the_host_they_came_from() -> None:
    # The corpus AIK does not chain to the corpus Privacy CA (see test_rules_secl_interop), so the
    # manifest gets an AIK from a test Privacy CA; the flavors are unsigned here, so FlavorTrusted is not
    # applied (the central signs flavors; signatures are tested in test_flavor/test_rules_secl_interop).
    pca, aik_der = _aik_chain()
    manifest = dataclasses.replace(_manifest(), aik_certificate=aik_der)
    templates = [_template(name) for name in ("linux-rhel-tpm20-suefi", "linux-rhel-tpm20-cbnt", "uefi")]
    flavors = create_flavors(manifest, templates, now=NOW)
    anchors = TrustAnchors(at=dt.datetime(2021, 3, 9, tzinfo=dt.UTC), privacy_cas=(pca,))
    report = build_trust_report(flavors, manifest, anchors)
    assert report.parts["PLATFORM"].trusted and report.parts["OS"].trusted and report.trusted
    names = [r.rule_name for r in report.parts["OS"].results]
    assert names == [
        "AikCertificateTrusted",
        "PcrMatchesConstant",
        "PcrEventLogIncludes",
        "PcrEventLogIntegrity",
    ]
    assert "PcrEventLogEquals" in [r.rule_name for r in report.parts["PLATFORM"].results]
    # A different PCR 7 on the same host: both parts name it.
    doc = host_manifest_to_json(manifest)
    doc["pcr_manifest"]["sha2pcrs"][7]["value"] = "00" * 32
    changed = build_trust_report(flavors, parse_host_manifest(doc), anchors)
    assert not changed.parts["PLATFORM"].trusted and not changed.parts["OS"].trusted


def test_rule_merging_and_selection() -> None:
    manifest = _manifest()
    base = {"label": "t", "condition": ["//host_info/os_name//*[text()='RedHatEnterprise']"]}
    excluding = parse_flavor_template({
        **base, "id": "a",
        "flavor_parts": {"PLATFORM": {"meta": {}, "pcr_rules": [
            {"pcr": {"index": 7, "bank": ["SHA384", "SHA1"]}, "eventlog_equals": {"excluding_tags": ["db", "Shim"]}},
            {"pcr": {"index": 15, "bank": ["SHA384"]}, "pcr_matches": True},  # no SHA-384 bank: left out
        ]}},
    })  # fmt: skip
    (flavor,) = create_flavors(manifest, [excluding], now=NOW)
    (pcr,) = flavor.pcrs
    assert (pcr.pcr.bank, pcr.pcr_matches) == ("SHA1", None)
    assert pcr.eventlog_equals.exclude_tags == ("db", "Shim")
    assert [e.tags for e in pcr.eventlog_equals.events] == [
        (),
        ("SecureBoot",),
        ("PK",),
        ("KEK",),
        ("dbx",),
        (),
    ]
    includes = parse_flavor_template({
        **base, "flavor_parts": {"PLATFORM": {"meta": {}, "pcr_rules": [
            {"pcr": {"index": 7, "bank": ["SHA1"]}, "eventlog_includes": ["Shim"]}]}},
    })  # fmt: skip
    with pytest.raises(FlavorTemplateError) as err:
        create_flavors(manifest, [excluding, includes], now=NOW)
    assert err.value.code == "flavor-template-rules-conflict"
    not_rhel = parse_flavor_template({**base, "condition": ["//host_info/os_name//*[text()='Ubuntu']"],
                                      "flavor_parts": {"OS": {"meta": {}, "pcr_rules": [{"pcr": {"index": 7, "bank": ["SHA1"]}}]}}})  # fmt: skip
    assert create_flavors(manifest, [not_rhel], now=NOW) == []


def test_conditions_follow_jsonquery() -> None:
    doc = host_manifest_to_json(_manifest())
    holds = lambda c: compile_condition(c).matches(doc)  # noqa: E731
    assert holds("//host_info/hardware_features/UEFI/meta/secure_boot_enabled//*[text()='true']")  # a bool
    assert not holds("//host_info/hardware_features/UEFI/meta/secure_boot_enabled//*[text()!='true']")
    assert holds("//host_info/no_of_sockets//*[text()='2']")
    assert holds("//SHA256/*[./pcr/index/text()=0 and ./tpm_events/*/tags/*/text()='StartupLocality3']")
    assert not holds("//SHA256/*[./pcr/index/text()=7 and ./tpm_events/*/tags/*/text()='StartupLocality3']")
    assert holds(
        "//host_info/tboot_installed//*[text()='true'] or //host_info/os_name//*[text()='RedHatEnterprise']"
    )
    assert holds("//host_info/os_version='8.2'") and not holds("//host_info/missing//*[text()='8.2']")
    for bad in ("//a/@b", "count(//a)", "//a[1]", "host_info/os_name", "//a | //b", "//a[text()>1]", ""):
        with pytest.raises(TemplateConditionError):
            compile_condition(bad)
    with pytest.raises(FlavorTemplateError) as err:
        parse_flavor_template({"label": "x", "condition": ["//a[position()=1]"], "flavor_parts": {"OS": {"meta": {}, "pcr_rules": [{"pcr": {"index": 1, "bank": ["SHA1"]}}]}}})  # fmt: skip
    assert err.value.code == "template-condition-unsupported"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": ""}, "label"),
        ({"condition": []}, "condition"),
        ({"flavor_parts": {"OS": {"meta": {}, "pcr_rules": []}}}, "pcr_rules"),
        ({"flavor_parts": {"OS": {"pcr_rules": [{"pcr": {"index": 24, "bank": ["SHA1"]}}]}}}, "0..23"),
        ({"flavor_parts": {"OS": {"pcr_rules": [{"pcr": {"index": 1, "bank": ["MD5"]}}]}}}, "bank"),
        (
            {"flavor_parts": {"OS": {"pcr_rules": [{"pcr": {"index": 1, "bank": ["SHA1"]}, "extra": 1}]}}},
            "unknown",
        ),
        (
            {
                "flavor_parts": {
                    "OS": {
                        "pcr_rules": [
                            {
                                "pcr": {"index": 1, "bank": ["SHA1"]},
                                "eventlog_equals": {},
                                "eventlog_includes": [],
                            }
                        ]
                    }
                }
            },
            "one PCR",
        ),
    ],
)
def test_malformed_templates_are_refused(change: dict, message: str) -> None:
    doc = {
        "label": "x",
        "condition": ["//host_info"],
        "flavor_parts": {"OS": {"meta": {}, "pcr_rules": [{"pcr": {"index": 1, "bank": ["SHA1"]}}]}},
    }
    with pytest.raises(FlavorTemplateError) as err:
        parse_flavor_template({**doc, **change})
    assert message in err.value.message
