"""What an event's data says, in words an operator can read: one summary line and JSON-able details.

Decoding never fails: data that does not decode as its type claims is shown as raw bytes with the reason,
because a log is read exactly when something looks wrong. The decoders themselves live in
:mod:`secl.core.efi`; this module only picks one by event type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from secl.core import efi
from secl.core.errors import EventLogError
from secl.core.eventlog import Event
from secl.core.eventtypes import EventType

_SPEC_ID_SIGNATURE = b"Spec ID Event"


@dataclass(frozen=True, slots=True)
class EventDescription:
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def describe_event(event: Event) -> EventDescription:
    """Decode an event's data by its type; never raises for malformed data."""
    decoder = _DECODERS.get(event.type)
    if decoder is None:
        return _raw(event.data)
    try:
        return decoder(event)
    except EventLogError as exc:
        raw = _raw(event.data)
        return EventDescription(f"undecodable: {exc.message}", {**raw.details, "error": exc.message})


def _raw(data: bytes) -> EventDescription:
    shown = data[:32].hex() + ("…" if len(data) > 32 else "")
    return EventDescription(f"{len(data)} bytes: {shown}" if data else "(no data)", {"raw": data.hex()})


def _from(result: Any) -> EventDescription:
    return EventDescription(result.describe(), result.as_dict())


def _no_action(event: Event) -> EventDescription:
    if event.data.startswith(_SPEC_ID_SIGNATURE):
        return EventDescription(
            event.data[:15].decode("ascii"), {"signature": event.data[:15].decode("ascii")}
        )
    return _from(efi.parse_no_action_event(event.data))


def _variable(event: Event) -> EventDescription:
    return _from(efi.parse_variable_data(event.data))


def _authority(event: Event) -> EventDescription:
    # An authority event carries the one signature (owner + certificate) that allowed an image to load.
    return _from(efi.parse_variable_data(event.data, authority=True))


# Tagged events (TCG_PCClientTaggedEvent) the Linux EFI stub logs on PCR 9.
_EVENT_TAGS = {0x8F3B22ED: "LOADED_IMAGE::LoadOptions", 0x8F3B22EC: "Linux initrd"}


def _event_tag(event: Event) -> EventDescription:
    data = event.data
    if len(data) < 8 or int.from_bytes(data[4:8], "little") != len(data) - 8:
        raise EventLogError("tagged event header does not match its size", code="efi-truncated")
    tag = int.from_bytes(data[:4], "little")
    name = _EVENT_TAGS.get(tag, f"tag 0x{tag:08x}")
    payload = data[8:].rstrip(b"\0")
    text = payload.decode("utf-8", errors="backslashreplace")
    shown = name if text == name or not text.isprintable() else f"{name}: {text}"
    return EventDescription(shown, {"tag": tag, "name": name, "data": data[8:].hex()})


def _image(event: Event) -> EventDescription:
    return _from(efi.parse_image_load_event(event.data))


def _string(event: Event) -> EventDescription:
    return _from(efi.decode_string_event(event.data, event.type))


def _blob(event: Event) -> EventDescription:
    return _from(efi.parse_firmware_blob(event.data))


def _blob2(event: Event) -> EventDescription:
    return _from(efi.parse_firmware_blob2(event.data))


def _handoff(event: Event) -> EventDescription:
    return _from(efi.parse_handoff_tables(event.data))


def _gpt(event: Event) -> EventDescription:
    return _from(efi.parse_gpt_event(event.data))


def _post_code(event: Event) -> EventDescription:
    return _from(efi.decode_string_event(event.data, event.type))


_DECODERS: dict[int, Callable[[Event], EventDescription]] = {
    EventType.EV_NO_ACTION: _no_action,
    EventType.EV_SEPARATOR: _string,
    EventType.EV_ACTION: _string,
    EventType.EV_EFI_ACTION: _string,
    EventType.EV_IPL: _string,
    EventType.EV_OMIT_BOOT_DEVICE_EVENTS: _string,
    EventType.EV_S_CRTM_VERSION: _string,
    EventType.EV_PLATFORM_CONFIG_FLAGS: _string,
    EventType.EV_POST_CODE: _post_code,
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: _variable,
    EventType.EV_EFI_VARIABLE_BOOT: _variable,
    EventType.EV_EFI_VARIABLE_BOOT2: _variable,
    EventType.EV_EFI_VARIABLE_AUTHORITY: _authority,
    EventType.EV_EVENT_TAG: _event_tag,
    EventType.EV_EFI_BOOT_SERVICES_APPLICATION: _image,
    EventType.EV_EFI_BOOT_SERVICES_DRIVER: _image,
    EventType.EV_EFI_RUNTIME_SERVICES_DRIVER: _image,
    EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB: _blob,
    EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB2: _blob2,
    EventType.EV_EFI_HANDOFF_TABLES: _handoff,
    EventType.EV_EFI_GPT_EVENT: _gpt,
}


def secure_boot_state(events: Iterable[Event]) -> efi.SecureBootState:
    """Summarise Secure Boot from the EFI variable events on PCR 7.

    Pass the events of a *verified* log (:meth:`EventLog.verify`): the state of an unverified log is
    only what the host claims.
    """
    variables = []
    for event in events:
        if event.pcr == 7 and event.type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
            try:
                variables.append(efi.parse_variable_data(event.data))
            except EventLogError:
                continue
    return efi.secure_boot_state(variables)
