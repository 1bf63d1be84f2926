"""Whose rules judge a host: the flavor's vendor, else the host's OS, and never a guess (secl.core.vendor).

SecL's Go HVS refuses a host whose OS it cannot place ("Could not determine vendor name from OS name"); the
Java HVS has no policy for it. We refuse it too, with ``vendor-undetermined``, where we used to fall back to
the Intel rules. Evidence: SecL's UnknownVendor case (flavors saying ``"vendor": "UNKNOWN"``, a RedHat host).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import MappingProxyType
from typing import Any

import pytest

from secl.core.flavor import parse_signed_flavors
from secl.core.flavortemplate import create_flavors, parse_flavor_template
from secl.core.hostmanifest import HostManifest, parse_host_manifest
from secl.core.trustreport import TrustAnchors, TrustPolicyError, VendorError, build_trust_report
from secl.core.vendor import host_vendor, resolve_vendor
from tests.corpus import corpus_bytes

BASE = "intel-secl/pkg/lib/verifier/test_data/UnknownVendor"
ANCHORS = TrustAnchors(at=dt.datetime(2021, 3, 9, tzinfo=dt.UTC), check_flavor_signatures=False)


@pytest.mark.parametrize(
    ("info", "vendor"),
    [
        ({"os_type": "linux", "os_name": ""}, "INTEL"),
        ({"os_type": "Linux"}, "INTEL"),
        ({"os_type": "windows"}, "MICROSOFT"),
        ({"os_type": "vmware", "os_name": "whatever"}, "VMWARE"),
        ({"os_name": "RedHatEnterprise"}, "INTEL"),  # the Java HVS's manifests carry no os_type
        ({"os_name": "Ubuntu"}, "INTEL"),
        ({"os_name": "Debian"}, "INTEL"),
        ({"os_name": "Red Hat Enterprise Linux"}, "INTEL"),
        ({"os_name": "VMware ESXi"}, "VMWARE"),
        ({"os_name": "Microsoft Windows Server 2016 Datacenter"}, "MICROSOFT"),
        ({"os_type": "", "os_name": "Windows"}, "MICROSOFT"),
    ],
)
def test_host_vendor_from_os(info: dict[str, Any], vendor: str) -> None:
    assert host_vendor(info) == vendor


@pytest.mark.parametrize(
    "info",
    [
        {},
        {"os_type": "", "os_name": ""},
        {"os_name": "   "},
        {"os_name": "UNKNOWN"},
        {"os_name": "FreeBSD"},
        {"os_type": "unknown", "os_name": "RedHatEnterprise"},  # a stated but unknown type is not overridden
        {"os_type": None, "os_name": None},
        {"os_name": 7},
    ],
)
def test_unknown_or_blank_os_names_no_vendor(info: dict[str, Any]) -> None:
    with pytest.raises(VendorError) as err:
        host_vendor(info)
    assert err.value.code == "vendor-undetermined"
    assert "could not determine the vendor" in err.value.message


def test_a_flavor_s_own_vendor_needs_no_host_os() -> None:
    assert resolve_vendor("INTEL", {}) == "INTEL"
    assert resolve_vendor("vmware", {"os_name": ""}) == "VMWARE"
    for declared in ("UNKNOWN", None, "", "unknown"):
        assert resolve_vendor(declared, {"os_name": "RedHatEnterprise"}) == "INTEL"
        with pytest.raises(VendorError) as err:
            resolve_vendor(declared, {"os_name": ""}, flavor_id="f-1")
        assert err.value.code == "vendor-undetermined" and err.value.message.startswith("flavor f-1: ")
    with pytest.raises(TrustPolicyError) as unsupported:
        resolve_vendor("ACME", {"os_type": "linux"})
    assert unsupported.value.code == "trust-policy-unsupported" and not isinstance(
        unsupported.value, VendorError
    )


def _manifest(**host_info: object) -> HostManifest:
    manifest = parse_host_manifest(corpus_bytes(f"{BASE}/host_manifest.json"))
    info = {**manifest.host_info, **host_info}
    return dataclasses.replace(manifest, host_info=MappingProxyType(info))


def test_unknown_vendor_flavors_on_a_host_without_os_are_refused_not_judged_as_intel() -> None:
    flavors = parse_signed_flavors(corpus_bytes(f"{BASE}/signed_flavors.json"))
    assert build_trust_report(flavors, _manifest(), ANCHORS).parts  # RedHat: judged, with the Intel rules
    for blank in ({"os_name": ""}, {"os_name": "unknown"}, {"os_name": "Plan 9", "os_type": ""}):
        with pytest.raises(VendorError) as err:
            build_trust_report(flavors, _manifest(**blank), ANCHORS)
        assert err.value.code == "vendor-undetermined"
        assert "the flavor's vendor is UNKNOWN" in err.value.message
    # The same flavors, saying INTEL, are judged on that host: the vendor is the flavor's own word.
    intel = [
        dataclasses.replace(
            f, flavor=dataclasses.replace(f.flavor, meta=dataclasses.replace(f.flavor.meta, vendor="INTEL"))
        )
        for f in flavors
    ]
    assert build_trust_report(intel, _manifest(os_name=""), ANCHORS).parts


def test_flavors_are_not_made_from_a_host_without_os() -> None:
    # A template that applies to any host with a hardware UUID, blank OS or not.
    template = {
        "id": "00000000-0000-0000-0000-000000000001",
        "label": "any",
        "condition": ["//host_info/hardware_uuid//*[text()='8dbf926c-04d2-03e2-b211-d21d00db521a']"],
        "flavor_parts": {
            "PLATFORM": {
                "meta": {},
                "pcr_rules": [{"pcr": {"index": 0, "bank": ["SHA256"]}, "pcr_matches": True}],
            }
        },
    }
    templates = [parse_flavor_template(template)]
    assert create_flavors(_manifest(), templates, parts=("PLATFORM",))[0].meta.vendor == "INTEL"
    with pytest.raises(VendorError) as err:
        create_flavors(_manifest(os_name=""), templates, parts=("PLATFORM",))
    assert err.value.code == "vendor-undetermined"
