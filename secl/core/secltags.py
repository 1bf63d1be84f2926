"""SecL's names and tags for TCG events: what its trust agent writes into a host manifest's ``tpm_events``.

A SecL event entry is ``{type_id, type_name, tags, measurement}``. ``type_id`` is the event type as
lower-case hex without leading zeros (``"0x3"``, ``"0x800000e0"``); ``type_name`` is the spec name from a
fixed table, or ``""`` for a type SecL does not know. ``tags`` come from the event data, by type:

- UEFI variable events (DRIVER_CONFIG, BOOT, BOOT2, AUTHORITY): the variable name (``"db"``, ``"Boot0001"``,
  ``"SecureBoot"``). SecL keeps only the low byte of each UTF-16 unit of the name.
- PLATFORM_FIRMWARE_BLOB2 and HANDOFF_TABLES2: the length-prefixed description.
- Events whose data is a string (IPL, POST_CODE, ACTION, EFI_ACTION, PLATFORM_CONFIG_FLAGS,
  OMIT_BOOT_DEVICE_EVENTS, HCRTM_EVENT, S_CRTM_CONTENTS, and COMPACT_HASH on PCR 6): the text up to the
  first NUL; nothing when the data starts with NUL.
- EV_NO_ACTION: the text up to the first NUL followed by the decimal value of the next byte, which turns
  the locality marker into ``"StartupLocality3"`` (the tag SecL's replay looks for on PCR 0).
- PFR events (NONHOST_CONFIG, NONHOST_INFO on PCR 0/1/7): the event string when it starts with "PFR".

Every other type (separators, images, plain blobs, GPT, EV_EVENT_TAG, S_CRTM_VERSION) gets no tag. Then,
as SecL does, characters that are not printable are dropped from each tag. Matching SecL here is not a
matter of taste: flavor templates select events by these tags (``eventlog_includes``, ``excluding_tags``)
and SecL flavors carry them, so a different tag would change which events a flavor holds.

The rules above are SecL's trust agent's (``pkg/tagent/eventlog``), re-stated, not translated.
"""

from __future__ import annotations

import struct

__all__ = ["SeclTypeNamer", "secl_event_tags", "secl_type_id", "secl_type_name"]

# SecL's own name table: the TCG names for the EV_* range, and Intel TXT names for the 0x4xx range
# (with SecL's spellings, which differ from tboot's EVTYPE_* for most of them).
_NAMES = {
    0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x2: "EV_UNUSED", 0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR", 0x5: "EV_ACTION", 0x6: "EV_EVENT_TAG", 0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION", 0x9: "EV_CPU_MICROCODE", 0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES", 0xC: "EV_COMPACT_HASH", 0xD: "EV_IPL", 0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE", 0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000000: "EV_EFI_EVENT_BASE", 0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT", 0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER", 0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT", 0x80000007: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2", 0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT", 0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB", 0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
    0x401: "PCR_MAPPING", 0x402: "HASH_START", 0x403: "COMBINED_HASH", 0x404: "MLE_HASH",
    0x40A: "BIOSAC_REG_DATA", 0x40B: "CPU_SCRTM_STAT", 0x40C: "LCP_CONTROL_HASH", 0x40D: "ELEMENTS_HASH",
    0x40E: "STM_HASH", 0x40F: "OSSINITDATA_CAP_HASH", 0x410: "SINIT_PUBKEY_HASH", 0x411: "LCP_HASH",
    0x412: "LCP_DETAILS_HASH", 0x413: "LCP_AUTHORITIES_HASH", 0x414: "NV_INFO_HASH",
    0x416: "EVTYPE_KM_HASH", 0x417: "EVTYPE_BPM_HASH", 0x418: "EVTYPE_KM_INFO_HASH",
    0x419: "EVTYPE_BPM_INFO_HASH", 0x41A: "EVTYPE_BOOT_POL_HASH", 0x4FF: "CAP_VALUE",
}  # fmt: skip

_VARIABLE_TYPES = frozenset({0x80000001, 0x80000002, 0x8000000C, 0x800000E0})
_DESCRIPTION_TYPES = frozenset({0x8000000A, 0x8000000B})
_STRING_TYPES = frozenset({0xD, 0x1, 0x5, 0x80000007, 0xA, 0x12, 0x80000010, 0x7})
_COMPACT_HASH, _NO_ACTION = 0xC, 0x3
_PFR_TYPES = frozenset({0x10, 0x11})
_PFR_HEADER = struct.Struct("<BBBBIII")  # version, cpld, event id, attribute, reserved, info, string size
_PFR_ATTRIBUTES = frozenset({0x0, 0x1, 0x2, 0x80, 0x81, 0x82})
# tboot's 0x501 events are told apart only by their order in the log (SecL's convention).
_TBOOT_HASH = 0x501
_TBOOT_NAMES = ("tb_policy", "tb_policy", "vmlinuz", "initrd", "asset-tag")


def secl_type_id(event_type: int) -> str:
    """``0x3``, ``0x800000e0``: SecL's spelling of an event type."""
    return f"0x{event_type:x}"


def secl_type_name(event_type: int, tboot_occurrence: int = 0) -> str:
    """SecL's name for an event type; ``""`` when SecL has none. ``tboot_occurrence`` numbers 0x501 events."""
    name = _NAMES.get(event_type)
    if name is not None:
        return name
    if event_type == _TBOOT_HASH and tboot_occurrence < len(_TBOOT_NAMES):
        return _TBOOT_NAMES[tboot_occurrence]
    return ""


class SeclTypeNamer:
    """Names events in log order, counting 0x501 events the way SecL does (one counter per log)."""

    def __init__(self) -> None:
        self._tboot = 0

    def name(self, event_type: int) -> str:
        name = secl_type_name(event_type, self._tboot)
        if event_type == _TBOOT_HASH:
            self._tboot += 1
        return name


def _printable(text: str) -> str:
    # Go's unicode.IsPrint and str.isprintable agree: letters, marks, numbers, punctuation, symbols and
    # the ASCII space. Undecodable bytes became U+FFFD, which both count as printable.
    if text.isprintable():  # the common case, decided in C
        return text
    if text.isascii():  # ASCII's non-printables are exactly the controls: delete them in C
        return text.translate(_ASCII_CONTROLS)
    return "".join(c for c in text if c.isprintable())


_ASCII_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def secl_event_tags(event_type: int, data: bytes, pcr: int) -> tuple[str, ...]:
    """The tags SecL's trust agent gives an event with this type and data on this PCR (see module doc).

    Never raises: data too short for its type yields no tag, as SecL logs a warning and moves on.
    """
    tags = _raw_tags(event_type, data, pcr)
    return tuple(_printable(tag) for tag in tags)


def _raw_tags(event_type: int, data: bytes, pcr: int) -> tuple[str, ...]:
    if event_type in _VARIABLE_TYPES:
        return _variable_name(data)
    if event_type in _DESCRIPTION_TYPES:
        if not data:
            return ()
        return (_text(data[1 : 1 + data[0]]),)
    if event_type in _STRING_TYPES or (event_type == _COMPACT_HASH and pcr == 6):
        text, nul, _ = data.partition(b"\0")
        if nul and not text:
            return ()
        return (_text(text),)
    if event_type == _NO_ACTION:
        text, nul, rest = data.partition(b"\0")
        if not nul:
            return (_text(text),)
        if not text:
            return ()
        # SecL appends the byte after the NUL as a decimal number (the locality of StartupLocality).
        return (_text(text) + (str(rest[0]) if rest else ""),)
    if event_type in _PFR_TYPES:
        return _pfr_string(data, pcr)
    return ()


def _variable_name(data: bytes) -> tuple[str, ...]:
    # UEFI_VARIABLE_DATA: GUID (16), name length in UTF-16 units (8), data length (8), name, data.
    if len(data) < 32:
        return ()
    name_units, data_len = struct.unpack_from("<QQ", data, 16)
    # SecL's sanity check on the two lengths (in its units); a log that fails it gets no tag.
    if name_units + data_len > len(data) - 32:
        return ()
    name = data[32 : 32 + 2 * name_units]
    if len(name) < 2 * name_units:
        return ()
    return ("".join(chr(name[i]) for i in range(0, len(name), 2)),)


def _pfr_string(data: bytes, pcr: int) -> tuple[str, ...]:
    if len(data) < _PFR_HEADER.size:
        return ()
    version, _, event_id, attribute, _, info_size, string_size = _PFR_HEADER.unpack_from(data)
    if len(data) != _PFR_HEADER.size + info_size + string_size:
        return ()
    if pcr not in (0, 1, 7) or version != 1 or not 1 < event_id < 6 or attribute not in _PFR_ATTRIBUTES:
        return ()
    start = _PFR_HEADER.size + info_size
    text = data[start : start + string_size]
    if text[:3] in (b"PFR", b"pfr"):
        return (_text(text),)
    return ()
