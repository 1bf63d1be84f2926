"""Event types of TCG firmware event logs, with the names the specifications give them.

The parsed event keeps its type as a plain ``int`` so an unknown or vendor type never stops parsing;
:func:`event_type_name` turns any value into a printable name (``EV_…`` or ``EventType(0x…)``).
Sources of the numbers: TCG PC Client Platform Firmware Profile (EV_*, EV_EFI_*), and Intel TXT / tboot's
measured launch log (the 0x4xx / 0x5xx ranges that appear in PCR 17/18 of TXT hosts).
"""

from __future__ import annotations

import enum


class EventType(enum.IntEnum):
    EV_PREBOOT_CERT = 0x00000000
    EV_POST_CODE = 0x00000001
    EV_UNUSED = 0x00000002
    EV_NO_ACTION = 0x00000003
    EV_SEPARATOR = 0x00000004
    EV_ACTION = 0x00000005
    EV_EVENT_TAG = 0x00000006
    EV_S_CRTM_CONTENTS = 0x00000007
    EV_S_CRTM_VERSION = 0x00000008
    EV_CPU_MICROCODE = 0x00000009
    EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
    EV_TABLE_OF_DEVICES = 0x0000000B
    EV_COMPACT_HASH = 0x0000000C
    EV_IPL = 0x0000000D
    EV_IPL_PARTITION_DATA = 0x0000000E
    EV_NONHOST_CODE = 0x0000000F
    EV_NONHOST_CONFIG = 0x00000010
    EV_NONHOST_INFO = 0x00000011
    EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
    EV_POST_CODE2 = 0x00000013
    EV_EFI_EVENT_BASE = 0x80000000
    EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
    EV_EFI_VARIABLE_BOOT = 0x80000002
    EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
    EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
    EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
    EV_EFI_GPT_EVENT = 0x80000006
    EV_EFI_ACTION = 0x80000007
    EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
    EV_EFI_HANDOFF_TABLES = 0x80000009
    EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
    EV_EFI_HANDOFF_TABLES2 = 0x8000000B
    EV_EFI_VARIABLE_BOOT2 = 0x8000000C
    EV_EFI_GPT_EVENT2 = 0x8000000D
    EV_EFI_HCRTM_EVENT = 0x80000010
    EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
    EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
    EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2
    EV_EFI_SPDM_DEVICE_POLICY = 0x800000E3
    EV_EFI_SPDM_DEVICE_AUTHORITY = 0x800000E4
    # Intel TXT measured launch (PCR 17/18), as logged by SINIT and tboot.
    EVTYPE_BASE = 0x00000400
    EVTYPE_PCRMAPPING = 0x00000401
    EVTYPE_HASH_START = 0x00000402
    EVTYPE_COMBINED_HASH = 0x00000403
    EVTYPE_MLE_HASH = 0x00000404
    EVTYPE_BIOSAC_REG_DATA = 0x0000040A
    EVTYPE_CPU_SCRTM_STAT = 0x0000040B
    EVTYPE_LCP_CONTROL_HASH = 0x0000040C
    EVTYPE_ELEMENTS_HASH = 0x0000040D
    EVTYPE_STM_HASH = 0x0000040E
    EVTYPE_OSSINITDATA_CAP_HASH = 0x0000040F
    EVTYPE_SINIT_PUBKEY_HASH = 0x00000410
    EVTYPE_LCP_HASH = 0x00000411
    EVTYPE_LCP_DETAILS_HASH = 0x00000412
    EVTYPE_LCP_AUTHORITIES_HASH = 0x00000413
    EVTYPE_NV_INFO_HASH = 0x00000414
    EVTYPE_COLD_BOOT_BIOS_HASH = 0x00000415
    EVTYPE_KM_HASH = 0x00000416
    EVTYPE_BPM_HASH = 0x00000417
    EVTYPE_KM_INFO_HASH = 0x00000418
    EVTYPE_BPM_INFO_HASH = 0x00000419
    EVTYPE_BOOT_POL_HASH = 0x0000041A
    EVTYPE_RANDOM_VALUE = 0x000004FE
    EVTYPE_CAP_VALUE = 0x000004FF
    # tboot's own measurements of the kernel, initrd and command line.
    EVTYPE_TBOOT_BASE = 0x00000500
    EVTYPE_TBOOT_HASH = 0x00000501
    EVTYPE_TBOOT_MODULE = 0x00000502


def event_type_name(value: int) -> str:
    """Return the specification's name for an event type, or ``EventType(0x…)`` for an unknown one."""
    try:
        return EventType(value).name
    except ValueError:
        return f"EventType(0x{value:08x})"


# Event types whose digest the specification defines as the hash of the event data itself, so a
# verifier can recompute it. Everything else measures something outside the log (an image, a blob).
DIGEST_OF_DATA_TYPES = frozenset(
    {
        EventType.EV_SEPARATOR,
        EventType.EV_ACTION,
        EventType.EV_EFI_ACTION,
        EventType.EV_OMIT_BOOT_DEVICE_EVENTS,
        EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
        EventType.EV_EFI_VARIABLE_BOOT,
        EventType.EV_EFI_VARIABLE_BOOT2,
        EventType.EV_EFI_VARIABLE_AUTHORITY,
        EventType.EV_EFI_GPT_EVENT,
    }
)
