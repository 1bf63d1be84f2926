"""Finding the TPM: the kernel resource manager's device node, through udev (pyudev).

A host may have its TPM at /dev/tpmrm0, or at /dev/tpmrm1 when a second TPM (a firmware TPM beside a
discrete one, a vTPM proxy) came first. With ``tcti = "auto"`` the adapter asks udev for the devices of
subsystem ``tpmrm`` and uses the lowest-numbered one; the direct ``/dev/tpmN`` nodes are never chosen,
since without the resource manager a daemon's transient objects would collide with other TPM users.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from secl.host.tpm import TPMError

AUTO = ("auto", "device:auto")
_NUMBER = re.compile(r"(\d+)$")


def udev_resource_managers() -> list[str]:
    """The device nodes udev lists in subsystem ``tpmrm`` (``/dev/tpmrm0``, ...)."""
    import pyudev  # only the compute-host extras (trustagent, workloadagent) carry it

    return [d.device_node for d in pyudev.Context().list_devices(subsystem="tpmrm") if d.device_node]


def find_resource_manager(list_devices: Callable[[], Iterable[str]] = udev_resource_managers) -> str:
    """The lowest-numbered TPM resource-manager device node; TPMError ``tpm-not-found`` if there is none."""
    nodes = sorted(
        list_devices(), key=lambda n: (int(m.group(1)) if (m := _NUMBER.search(n)) else 1 << 30, n)
    )
    if not nodes:
        raise TPMError(
            "no TPM resource manager device found (udev subsystem tpmrm is empty): enable the TPM in the "
            "firmware setup and load its kernel driver (tpm_tis, tpm_crb), or set tcti in "
            "/etc/secl/trustagent.toml (tabrmd, or swtpm:host=...,port=... for a software TPM)",
            code="tpm-not-found",
        )
    return nodes[0]


def resolve_tcti(tcti: str, list_devices: Callable[[], Iterable[str]] = udev_resource_managers) -> str:
    """``tcti`` as tpm2-pytss takes it: ``auto`` becomes ``device:<the resource manager found>``."""
    if tcti.strip().lower() in AUTO:
        return f"device:{find_resource_manager(list_devices)}"
    return tcti
