"""Which vendor's trust policy judges a host: the flavor's ``meta.vendor``, else the host's operating system.

SecL has three vendor policies: INTEL (Linux hosts with a TPM), VMWARE (ESXi) and MICROSOFT (Windows). A
flavor names its vendor; the Java HVS wrote ``"vendor": "UNKNOWN"`` into some flavors and then derived the
vendor from the host, and we do the same so that those flavors keep their verdicts (see
tests/test_rules_secl_interop.py).

What neither SecL nor we do is guess: SecL's Go HVS refuses a host whose OS type it cannot place ("Could not
determine vendor name from OS name"), and its Java HVS has no policy for such a host. Judging it with the
Intel rules anyway would apply Linux's expectations (an AIK certificate, software measurements) to a
platform nobody said was Linux, so an undeterminable vendor is a :class:`VendorError`, never a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secl.core.errors import EvidenceError

__all__ = ["VENDORS", "TrustPolicyError", "VendorError", "host_vendor", "resolve_vendor"]

VENDORS = ("INTEL", "VMWARE", "MICROSOFT")
UNKNOWN = "UNKNOWN"

# host_info.os_type as SecL's trust agents report it (Go: taModel.OsType*); ours always sends "linux".
_OS_TYPES = {"linux": "INTEL", "windows": "MICROSOFT", "vmware": "VMWARE", "esxi": "VMWARE"}
# Without os_type (older manifests, the Java HVS's), the OS name decides. Linux distributions are named by
# family, as lsb_release's distributor id ("RedHatEnterprise", "Ubuntu", "Debian") and the trust agent's
# os-release NAME without "Linux" spell them; the name is compared lower-case without spaces.
_OS_NAME_PARTS = (
    ("vmware", "VMWARE"),
    ("esxi", "VMWARE"),
    ("windows", "MICROSOFT"),
    ("microsoft", "MICROSOFT"),
    *(
        (family, "INTEL")
        for family in (
            "redhat", "rhel", "centos", "fedora", "rocky", "almalinux", "oraclelinux", "ubuntu", "debian",
            "suse", "sles", "amazonlinux", "linux",
        )
    ),
)  # fmt: skip


class TrustPolicyError(EvidenceError):
    """No rules can be built for a flavor (unsupported vendor or TPM version)."""

    code = "trust-policy-unsupported"


class VendorError(TrustPolicyError):
    """The vendor whose rules apply cannot be determined: the flavor says UNKNOWN and the host's OS is unknown."""

    code = "vendor-undetermined"


def host_vendor(host_info: Mapping[str, Any]) -> str:
    """INTEL, VMWARE or MICROSOFT from the host's ``os_type`` (else ``os_name``); :class:`VendorError` if neither
    says."""
    os_type = _text(host_info.get("os_type"))
    os_name = _text(host_info.get("os_name"))
    if os_type:
        found = _OS_TYPES.get(os_type.lower())
    else:
        squeezed = "".join(os_name.lower().split())
        found = next((vendor for part, vendor in _OS_NAME_PARTS if part in squeezed), None)
    if found is None:
        shown = f"OS type {os_type!r}" if os_type else f"OS name {os_name!r}"
        raise VendorError(f"could not determine the vendor from the host's {shown}")
    return found


def resolve_vendor(declared: str | None, host_info: Mapping[str, Any], *, flavor_id: str = "") -> str:
    """The vendor whose rules judge a flavor: ``declared`` (its ``meta.vendor``), or the host's when it says
    UNKNOWN or nothing. Raises :class:`VendorError` when the host cannot tell, and :class:`TrustPolicyError`
    for a vendor SecL has no policy for."""
    vendor = (declared or UNKNOWN).strip().upper()
    where = f"flavor {flavor_id}: " if flavor_id else ""
    if vendor == UNKNOWN:
        try:
            return host_vendor(host_info)
        except VendorError as exc:
            raise VendorError(
                f"{where}the flavor's vendor is {declared or 'not given'} and {exc.message}"
            ) from None
    if vendor not in VENDORS:
        raise TrustPolicyError(f"{where}vendor {declared} is not supported (only {', '.join(VENDORS)})")
    return vendor


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
