"""Decoders for the UEFI and TCG structures carried as event data in PC Client firmware event logs.

Everything here is pure: bytes in, frozen dataclasses out, and :class:`EventLogError` for malformed input.
The decoded values are *unverified*: they say what the log claims, and mean nothing until the log has been
replayed against quoted PCRs. Layouts follow the UEFI 2.x specification and the TCG PC Client Platform
Firmware Profile; all integers are little-endian. Device path text follows the UEFI text form, except where
tpm2-tools (the oracle our tests compare against) spells a node differently; those nodes say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from secl.core.devicepath import device_path_to_text, read_device_path
from secl.core.efireader import EFIReader as _Reader
from secl.core.efireader import ascii_text as _ascii
from secl.core.efireader import format_guid
from secl.core.efireader import utf16_text as _utf16
from secl.core.errors import EventLogError
from secl.core.eventtypes import EventType

GUID_NAMES: dict[str, str] = {
    "8be4df61-93ca-11d2-aa0d-00e098032b8c": "EFI global variable",
    "d719b2cb-3d3a-4596-a3bc-dad00e67656f": "EFI image security database",
    "605dab50-e046-4300-abb6-3dd810dd8b23": "shim lock",
    "77fa9abd-0359-4d32-bd60-28f4e78f784b": "Microsoft",
    "8868e871-e4f1-11d3-bc22-0080c73c8881": "ACPI 2.0 table",
    "eb9d2d30-2d88-11d3-9a16-0090273fc14d": "ACPI 1.0 table",
    "eb9d2d31-2d88-11d3-9a16-0090273fc14d": "SMBIOS table",
    "f2fd1544-9794-4a2c-992e-e5bbcf20e394": "SMBIOS 3 table",
}

# EFI_SIGNATURE_LIST types, named the way operators know them from sbsigntools and mokutil.
SIGNATURE_TYPES: dict[str, str] = {
    "c1c41626-504c-4092-aca9-41f936934328": "SHA256",
    "a5c059a1-94e4-4aa7-87b5-ab155c2bf072": "X509",
    "826ca512-cf10-4ac9-b187-be01496631bd": "SHA1",
    "0b6e5233-a65c-44c9-9407-d9ab83bfc8bd": "SHA224",
    "ff3e5307-9fd0-48c9-85f1-8ad56c701e01": "SHA384",
    "093e0fae-a6c4-4f50-9f1b-d41e2b89c19a": "SHA512",
    "3c5766e8-269c-4e34-aa14-ed776e85b3b6": "RSA2048",
    "e2b36190-879b-4a3d-ad8d-f2e7bba32784": "RSA2048_SHA256",
    "67f8444f-8743-48f1-a328-1eaab8736080": "RSA2048_SHA1",
    "3bd2a492-96c0-4079-b420-fcf98ef103ed": "X509_SHA256",
    "7076876e-80c2-4ee6-aad2-28b349a6865b": "X509_SHA384",
    "446dbf63-2502-4cda-bcfa-2465d2b0fe9d": "X509_SHA512",
    "4aafd29d-68df-49ee-8aa9-347d375665a7": "PKCS7",
}

_FLAG_VARIABLES = frozenset({"SecureBoot", "SetupMode", "AuditMode", "DeployedMode", "MokListTrusted"})
_SIGNATURE_DATABASES = frozenset({"PK", "KEK", "db", "dbx", "dbt", "dbr", "MokList", "MokListX"})
_TEXT_VARIABLES = frozenset({"SbatLevel"})
_LOAD_OPTION = re.compile(r"(Boot|Driver|SysPrep)[0-9A-Fa-f]{4}")


def guid_name(guid: str) -> str | None:
    """Return the well-known name of a GUID (vendor, signature owner, table), if we know one."""
    return GUID_NAMES.get(guid) or SIGNATURE_TYPES.get(guid)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, _Decoded):
        return value.as_dict()
    return value


class _Decoded:
    """Shared JSON export: bytes become hex, nested decodings become dicts."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------
# UEFI variables (UEFI_VARIABLE_DATA) and the well-known values inside them


@dataclass(frozen=True)
class FlagValue(_Decoded):
    """A one-byte boolean variable (SecureBoot, SetupMode, ...); ``enabled`` is None when empty or odd."""

    enabled: bool | None

    def describe(self) -> str:
        return "unknown/empty" if self.enabled is None else ("enabled" if self.enabled else "disabled")


@dataclass(frozen=True)
class BootOrder(_Decoded):
    entries: tuple[int, ...]

    def describe(self) -> str:
        return ", ".join(f"Boot{entry:04X}" for entry in self.entries) or "empty"


@dataclass(frozen=True)
class LoadOption(_Decoded):
    """An EFI_LOAD_OPTION (Boot####, Driver####): the first file path is the one firmware boots."""

    attributes: int
    file_path_list_length: int
    description: str
    device_path: str
    extra_device_paths: tuple[str, ...]
    optional_data: bytes

    @property
    def active(self) -> bool:
        return bool(self.attributes & 1)

    def describe(self) -> str:
        return f'"{self.description}" ({"active" if self.active else "inactive"}) {self.device_path}'


@dataclass(frozen=True)
class SignatureData(_Decoded):
    """One EFI_SIGNATURE_DATA; ``owner`` is None for shim's authority events, which log a bare certificate."""

    owner: str | None
    data: bytes

    def describe(self) -> str:
        owner = "no owner" if self.owner is None else f"owner {guid_name(self.owner) or self.owner}"
        return f"{len(self.data)}-byte signature ({owner})"


@dataclass(frozen=True)
class SignatureList(_Decoded):
    signature_type: str
    list_size: int
    header_size: int
    signature_size: int
    header: bytes
    signatures: tuple[SignatureData, ...]

    @property
    def type_name(self) -> str:
        return SIGNATURE_TYPES.get(self.signature_type, self.signature_type)

    def describe(self) -> str:
        return f"{len(self.signatures)} {self.type_name}"


@dataclass(frozen=True)
class SignatureDatabase(_Decoded):
    """A sequence of EFI_SIGNATURE_LISTs, as in PK, KEK, db, dbx and shim's MokList."""

    lists: tuple[SignatureList, ...]

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for sig_list in self.lists:
            counts[sig_list.type_name] = counts.get(sig_list.type_name, 0) + len(sig_list.signatures)
        return ", ".join(f"{n} {name}" for name, n in counts.items()) or "empty"


@dataclass(frozen=True)
class TextValue(_Decoded):
    text: str

    def describe(self) -> str:
        return repr(self.text)


VariableValue = FlagValue | BootOrder | LoadOption | SignatureData | SignatureDatabase | TextValue


@dataclass(frozen=True)
class EFIVariable(_Decoded):
    """A UEFI_VARIABLE_DATA, with ``value`` decoded for well-known variables (None otherwise).

    Value decoding is a convenience: when it fails the variable is still returned, with ``value_error``
    saying why, because the name, GUID and bytes remain exactly what was measured.
    """

    vendor_guid: str
    name: str
    data: bytes
    value: VariableValue | None
    value_error: str | None = None

    def describe(self) -> str:
        if self.value is not None:
            detail = self.value.describe()
        else:
            detail = f"undecodable: {self.value_error}" if self.value_error else f"{len(self.data)} bytes"
        return f"{self.name} ({guid_name(self.vendor_guid) or self.vendor_guid}): {detail}"


def _boot_order(data: bytes) -> BootOrder:
    if len(data) % 2:
        raise EventLogError(f"BootOrder has odd length {len(data)}", code="efi-variable-invalid")
    return BootOrder(tuple(int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)))


def parse_load_option(data: bytes) -> LoadOption:
    """Decode an EFI_LOAD_OPTION: attributes, file path list length, description, file paths, optional data."""
    r = _Reader(data, "EFI_LOAD_OPTION")
    attributes, path_length = r.uint(4), r.uint(2)
    description = r.utf16z()
    paths = r.take(path_length)
    texts: list[str] = []
    pos = 0
    while pos < len(paths):  # The list packs several device paths, each ending in end-of-entire-path.
        text, pos = read_device_path(paths, pos)
        texts.append(text)
    return LoadOption(
        attributes, path_length, description, texts[0] if texts else "", tuple(texts[1:]), r.rest()
    )


def parse_signature_lists(data: bytes) -> SignatureDatabase:
    """Decode a packed sequence of EFI_SIGNATURE_LIST structures."""
    r = _Reader(data, "EFI_SIGNATURE_LIST")
    lists: list[SignatureList] = []
    while r.remaining:
        sig_type, list_size, header_size, sig_size = r.guid(), r.uint(4), r.uint(4), r.uint(4)
        body_size = list_size - 28 - header_size
        # Each signature holds at least its 16-byte owner, and the body must be a whole number of them.
        if sig_size < 16 or body_size < 0 or body_size % sig_size:
            raise EventLogError(
                f"signature list sizes are inconsistent: list {list_size}, header {header_size}, "
                f"signature {sig_size}",
                code="efi-signature-list-invalid",
            )
        header, body = r.take(header_size), r.take(body_size)
        sigs = tuple(
            SignatureData(format_guid(body[i : i + 16]), body[i + 16 : i + sig_size])
            for i in range(0, body_size, sig_size)
        )
        lists.append(SignatureList(sig_type, list_size, header_size, sig_size, header, sigs))
    return SignatureDatabase(tuple(lists))


def _is_der_sequence(data: bytes) -> bool:
    """True when ``data`` is exactly one DER SEQUENCE with a long-form length (as certificates are)."""
    if len(data) < 4 or data[0] != 0x30 or not 0x81 <= data[1] <= 0x84:
        return False
    size_len = data[1] & 0x7F
    return len(data) == 2 + size_len + int.from_bytes(data[2 : 2 + size_len], "big")


def _authority_value(data: bytes) -> SignatureData:
    # Firmware logs the EFI_SIGNATURE_DATA that authorised an image; shim logs its vendor certificate bare.
    if _is_der_sequence(data):
        return SignatureData(None, data)
    r = _Reader(data, "EFI_SIGNATURE_DATA")
    return SignatureData(r.guid(), r.rest())


def _variable_value(name: str, data: bytes, authority: bool) -> VariableValue | None:
    if name in _FLAG_VARIABLES:
        return FlagValue(bool(data[0]) if len(data) == 1 else None)
    if name in _TEXT_VARIABLES:
        return TextValue(_ascii(data))
    if name in ("BootOrder", "DriverOrder"):
        return _boot_order(data)
    if _LOAD_OPTION.fullmatch(name):
        return parse_load_option(data)
    if authority:
        return _authority_value(data)
    if name in _SIGNATURE_DATABASES:
        return parse_signature_lists(data)
    return None


def parse_variable_data(data: bytes, *, authority: bool = False) -> EFIVariable:
    """Decode UEFI_VARIABLE_DATA (EV_EFI_VARIABLE_DRIVER_CONFIG, _BOOT, _BOOT2 and, with
    ``authority=True``, EV_EFI_VARIABLE_AUTHORITY, whose data is one signature rather than a database)."""
    r = _Reader(data, "UEFI_VARIABLE_DATA")
    vendor, name_chars, data_size = r.guid(), r.uint(8), r.uint(8)
    name = _utf16(r.take(name_chars * 2))
    value_bytes = r.take(data_size)
    try:
        value, error = _variable_value(name, value_bytes, authority), None
    except EventLogError as exc:
        value, error = None, exc.message
    return EFIVariable(vendor, name, value_bytes, value, error)


# ---------------------------------------------------------------------------------------------------------
# Images, firmware blobs, handoff tables and the GPT


@dataclass(frozen=True)
class ImageLoadEvent(_Decoded):
    """UEFI_IMAGE_LOAD_EVENT: where a PE image was loaded and the device path it came from."""

    location: int
    length: int
    link_time_address: int
    device_path_length: int
    device_path: str

    def describe(self) -> str:
        return (
            f"image at {self.location:#x} ({self.length} bytes) from {self.device_path or '(no device path)'}"
        )


def parse_image_load_event(data: bytes) -> ImageLoadEvent:
    """Decode EV_EFI_BOOT_SERVICES_APPLICATION / _DRIVER and EV_EFI_RUNTIME_SERVICES_DRIVER data.

    Bytes after the device path are ignored: some firmware logs a few stray bytes there.
    """
    r = _Reader(data, "UEFI_IMAGE_LOAD_EVENT")
    location, length, link_address, path_length = r.uint(8), r.uint(8), r.uint(8), r.uint(8)
    return ImageLoadEvent(
        location, length, link_address, path_length, device_path_to_text(r.take(path_length))
    )


@dataclass(frozen=True)
class FirmwareBlob(_Decoded):
    base: int
    length: int
    description: str | None = None

    def describe(self) -> str:
        name = f"{self.description} " if self.description else ""
        return f"firmware blob {name}at {self.base:#x}, {self.length:#x} bytes"


def parse_firmware_blob(data: bytes) -> FirmwareBlob:
    """Decode UEFI_PLATFORM_FIRMWARE_BLOB (EV_EFI_PLATFORM_FIRMWARE_BLOB, and 16-byte EV_POST_CODE)."""
    r = _Reader(data, "UEFI_PLATFORM_FIRMWARE_BLOB")
    return FirmwareBlob(r.uint(8), r.uint(8))


def parse_firmware_blob2(data: bytes) -> FirmwareBlob:
    """Decode UEFI_PLATFORM_FIRMWARE_BLOB2 (EV_EFI_PLATFORM_FIRMWARE_BLOB2)."""
    r = _Reader(data, "UEFI_PLATFORM_FIRMWARE_BLOB2")
    description = r.sized_ascii()
    return FirmwareBlob(r.uint(8), r.uint(8), description)


@dataclass(frozen=True)
class HandoffTable(_Decoded):
    vendor_guid: str
    pointer: int

    def describe(self) -> str:
        return f"{guid_name(self.vendor_guid) or self.vendor_guid} at {self.pointer:#x}"


@dataclass(frozen=True)
class HandoffTables(_Decoded):
    tables: tuple[HandoffTable, ...]
    description: str | None = None

    def describe(self) -> str:
        names = ", ".join(guid_name(t.vendor_guid) or t.vendor_guid for t in self.tables)
        return f"{len(self.tables)} handoff table(s): {names}"


def _handoff_entries(r: _Reader) -> tuple[HandoffTable, ...]:
    count = r.uint(8)
    if count * 24 > r.remaining:  # Checked first so a huge count cannot make us loop.
        raise EventLogError(f"{count} handoff tables do not fit in {r.remaining} bytes", code="efi-truncated")
    return tuple(HandoffTable(r.guid(), r.uint(8)) for _ in range(count))


def parse_handoff_tables(data: bytes) -> HandoffTables:
    """Decode UEFI_HANDOFF_TABLE_POINTERS (EV_EFI_HANDOFF_TABLES)."""
    return HandoffTables(_handoff_entries(_Reader(data, "UEFI_HANDOFF_TABLE_POINTERS")))


def parse_handoff_tables2(data: bytes) -> HandoffTables:
    """Decode UEFI_HANDOFF_TABLE_POINTERS2 (EV_EFI_HANDOFF_TABLES2)."""
    r = _Reader(data, "UEFI_HANDOFF_TABLE_POINTERS2")
    description = r.sized_ascii()
    return HandoffTables(_handoff_entries(r), description)


@dataclass(frozen=True)
class GPTPartition(_Decoded):
    type_guid: str
    unique_guid: str
    starting_lba: int
    ending_lba: int
    attributes: int
    name: str

    def describe(self) -> str:
        return f'"{self.name}" {self.unique_guid} LBA {self.starting_lba:#x}-{self.ending_lba:#x}'


@dataclass(frozen=True)
class GPTEvent(_Decoded):
    """UEFI_GPT_DATA: the GPT header and the partitions firmware considered in use."""

    disk_guid: str
    revision: int
    header_size: int
    header_crc32: int
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    partition_entry_lba: int
    number_of_partition_entries: int
    size_of_partition_entry: int
    partition_entry_array_crc32: int
    partitions: tuple[GPTPartition, ...]

    def describe(self) -> str:
        names = ", ".join(p.name or p.type_guid for p in self.partitions)
        return f"GPT disk {self.disk_guid}, {len(self.partitions)} partition(s): {names}"


def _gpt_partition(entry: bytes) -> GPTPartition:
    r = _Reader(entry, "GPT partition entry")
    return GPTPartition(r.guid(), r.guid(), r.uint(8), r.uint(8), r.uint(8), _utf16(r.take(72)))


def parse_gpt_event(data: bytes) -> GPTEvent:
    """Decode EV_EFI_GPT_EVENT data: the 92-byte header, a partition count, then the entries."""
    r = _Reader(data, "UEFI_GPT_DATA")
    if (signature := r.take(8)) != b"EFI PART":
        raise EventLogError(f"GPT header signature is {signature!r}, not 'EFI PART'", code="efi-gpt-invalid")
    revision, header_size, header_crc, _reserved = r.uint(4), r.uint(4), r.uint(4), r.uint(4)
    my_lba, alternate_lba, first_usable, last_usable = (r.uint(8) for _ in range(4))
    disk_guid, entry_lba, entries, entry_size, array_crc = (
        r.guid(),
        r.uint(8),
        r.uint(4),
        r.uint(4),
        r.uint(4),
    )
    count = r.uint(8)
    if entry_size < 128 or count * entry_size > r.remaining:
        raise EventLogError(
            f"{count} GPT entries of {entry_size} bytes do not fit in {r.remaining} bytes",
            code="efi-gpt-invalid",
        )
    partitions = tuple(_gpt_partition(r.take(entry_size)) for _ in range(count))
    return GPTEvent(disk_guid, revision, header_size, header_crc, my_lba, alternate_lba, first_usable,
                    last_usable, entry_lba, entries, entry_size, array_crc, partitions)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# EV_NO_ACTION payloads other than the Spec ID event


@dataclass(frozen=True)
class SP800155Event(_Decoded):
    """The TCG "SP800-155 Event" / "SP800-155 Event3" reference-manifest pointer."""

    signature: str
    platform_manufacturer_id: int
    reference_manifest_guid: str
    platform_manufacturer: str
    platform_model: str
    platform_version: str
    firmware_manufacturer: str
    firmware_manufacturer_id: int
    firmware_version: str
    rim_locator_type: int | None = None
    rim_locator: bytes = b""
    platform_cert_locator_type: int | None = None
    platform_cert_locator: bytes = b""

    def describe(self) -> str:
        return (
            f"{self.signature}: {self.platform_manufacturer} {self.platform_model} {self.platform_version}, "
            f"firmware {self.firmware_manufacturer} {self.firmware_version}"
        )


@dataclass(frozen=True)
class NoActionEvent(_Decoded):
    """An EV_NO_ACTION payload, recognised by its 16-byte signature; unknown ones keep only ``raw``."""

    signature: str
    raw: bytes
    locality: int | None = None
    sp800_155: SP800155Event | None = None

    def describe(self) -> str:
        if self.locality is not None:
            return f"StartupLocality {self.locality}"
        if self.sp800_155 is not None:
            return self.sp800_155.describe()
        return f"{self.signature or 'unrecognised'} ({len(self.raw)} bytes)"


def _sp800_155(signature: str, r: _Reader) -> SP800155Event:
    head = (r.uint(4), r.guid(), r.sized_ascii(), r.sized_ascii(), r.sized_ascii(), r.sized_ascii())
    firmware = (r.uint(4), r.sized_ascii())
    if signature != "SP800-155 Event3":
        return SP800155Event(signature, *head, *firmware)
    try:  # The Event3 locators are newer and rarely seen; keep the fields above even if they do not parse.
        locators = (r.uint(4), r.take(r.uint(4)), r.uint(4), r.take(r.uint(4)))
    except EventLogError:
        return SP800155Event(signature, *head, *firmware)
    return SP800155Event(signature, *head, *firmware, *locators)


def parse_no_action_event(data: bytes) -> NoActionEvent:
    """Decode EV_NO_ACTION data: StartupLocality, SP800-155 Event(3); name NvIndex and Spec ID events."""
    if len(data) < 16:
        return NoActionEvent("", bytes(data))
    r = _Reader(data, "EV_NO_ACTION")
    signature = r.take(16).rstrip(b"\0").decode("ascii", errors="replace")
    if signature == "StartupLocality":
        return NoActionEvent(signature, bytes(data), locality=r.uint(1))
    if signature in ("SP800-155 Event", "SP800-155 Event3"):
        return NoActionEvent(signature, bytes(data), sp800_155=_sp800_155(signature, r))
    known = ("Spec ID Event03", "Spec ID Event00", "NvIndexInstance", "NvIndexDynamic")
    return NoActionEvent(signature if signature in known else "", bytes(data))


# ---------------------------------------------------------------------------------------------------------
# String-like events


@dataclass(frozen=True)
class StringEvent(_Decoded):
    """Event data shown as text. ``kind`` is "text", "utf-16", "separator", "blob" or "hex"."""

    event_type: int
    kind: str
    text: str
    raw: bytes
    blob: FirmwareBlob | None = None

    def describe(self) -> str:
        return self.blob.describe() if self.blob is not None else (self.text or "(empty)")


_TEXT_EVENTS = frozenset(
    {EventType.EV_EFI_ACTION, EventType.EV_ACTION, EventType.EV_OMIT_BOOT_DEVICE_EVENTS, EventType.EV_IPL}
)


def _is_printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b in b"\t\r\n" for b in data.rstrip(b"\0"))


def _is_ascii_utf16(data: bytes) -> bool:
    # systemd-boot logs UCS-2; a zero high byte throughout is what tells it from grub's ASCII. Some logs carry
    # one byte too many (the Arch corpus command line ends "f\0\0"), so an odd length is allowed.
    return len(data) >= 2 and not any(data[1::2]) and _is_printable(data[0::2])


_TEXT_OR_BINARY_EVENTS = frozenset({EventType.EV_POST_CODE, EventType.EV_PLATFORM_CONFIG_FLAGS})


def decode_string_event(data: bytes, event_type: int) -> StringEvent:
    """Render string-like event data: EV_IPL, EV_EFI_ACTION, EV_ACTION, EV_OMIT_BOOT_DEVICE_EVENTS (text),
    EV_S_CRTM_VERSION (UTF-16 or hex), EV_POST_CODE (text or firmware blob), EV_PLATFORM_CONFIG_FLAGS (text
    or hex), EV_SEPARATOR; anything else hex.
    """
    raw = bytes(data)
    if event_type == EventType.EV_SEPARATOR:
        names = {b"\0\0\0\0": "separator", b"\xff\xff\xff\xff": "error separator"}
        return StringEvent(event_type, "separator" if raw in names else "hex", names.get(raw, raw.hex()), raw)
    if event_type in (EventType.EV_IPL, EventType.EV_S_CRTM_VERSION) and _is_ascii_utf16(raw):
        return StringEvent(event_type, "utf-16", _utf16(raw[: len(raw) & ~1]), raw)
    is_text = bool(raw.rstrip(b"\0")) and _is_printable(raw)  # All-NUL data is not text, it is a zero blob.
    if event_type == EventType.EV_POST_CODE and len(raw) == 16 and not is_text:
        blob = parse_firmware_blob(raw)
        return StringEvent(event_type, "blob", blob.describe(), raw, blob)
    # EV_POST_CODE and EV_PLATFORM_CONFIG_FLAGS are text or binary by the firmware's choice (Intel servers
    # log "FeatureTME=1" and "MSR_TME_ACTIVATE" as config flags, others a table of bytes): text when it is.
    if event_type in _TEXT_EVENTS or (event_type in _TEXT_OR_BINARY_EVENTS and is_text):
        return StringEvent(event_type, "text", _ascii(raw), raw)
    return StringEvent(event_type, "hex", raw.hex(), raw)


# ---------------------------------------------------------------------------------------------------------
# Dispatch and the Secure Boot summary

DecodedEventData = (
    EFIVariable | ImageLoadEvent | FirmwareBlob | HandoffTables | GPTEvent | NoActionEvent | StringEvent
)

_DECODERS: dict[int, Callable[[bytes], DecodedEventData]] = {
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: parse_variable_data,
    EventType.EV_EFI_VARIABLE_BOOT: parse_variable_data,
    EventType.EV_EFI_VARIABLE_BOOT2: parse_variable_data,
    EventType.EV_EFI_VARIABLE_AUTHORITY: lambda data: parse_variable_data(data, authority=True),
    EventType.EV_EFI_BOOT_SERVICES_APPLICATION: parse_image_load_event,
    EventType.EV_EFI_BOOT_SERVICES_DRIVER: parse_image_load_event,
    EventType.EV_EFI_RUNTIME_SERVICES_DRIVER: parse_image_load_event,
    EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB: parse_firmware_blob,
    EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB2: parse_firmware_blob2,
    EventType.EV_EFI_HANDOFF_TABLES: parse_handoff_tables,
    EventType.EV_EFI_HANDOFF_TABLES2: parse_handoff_tables2,
    EventType.EV_EFI_GPT_EVENT: parse_gpt_event,
    EventType.EV_NO_ACTION: parse_no_action_event,
}


def decode_event_data(event_type: int, data: bytes) -> DecodedEventData:
    """Decode one event's data by its (untrusted) type; types without a structure come back as text or hex."""
    decoder = _DECODERS.get(event_type)
    return decoder(data) if decoder is not None else decode_string_event(data, event_type)


@dataclass(frozen=True)
class SecureBootState(_Decoded):
    """What the measured variables claim about Secure Boot; None means not measured or empty."""

    secure_boot: bool | None
    setup_mode: bool | None
    audit_mode: bool | None
    deployed_mode: bool | None
    measured_databases: tuple[str, ...]

    def describe(self) -> str:
        state = {True: "enabled", False: "disabled", None: "unknown"}[self.secure_boot]
        setup = " (setup mode)" if self.setup_mode else ""
        return f"Secure Boot {state}{setup}; measured: {', '.join(self.measured_databases) or 'none'}"


def secure_boot_state(variables: Iterable[EFIVariable]) -> SecureBootState:
    """Summarise Secure Boot from decoded variables; the last measurement of a variable wins."""
    flags: dict[str, bool | None] = {}
    measured: list[str] = []
    for var in variables:
        if var.name in _FLAG_VARIABLES and isinstance(var.value, FlagValue):
            flags[var.name] = var.value.enabled
        if var.name in ("PK", "KEK", "db", "dbx") and var.name not in measured:
            measured.append(var.name)
    return SecureBootState(
        flags.get("SecureBoot"), flags.get("SetupMode"), flags.get("AuditMode"), flags.get("DeployedMode"),
        tuple(measured),
    )  # fmt: skip
