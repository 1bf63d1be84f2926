"""The application event log: the PCR 15 events of the boot-time measurements, in SecL's JSON shape.

Each measured manifest extends PCR 15 of the SHA-256 bank once, with ``SHA-256(CumulativeHash bytes)``, and
records the event as SecL's trust agent reports it (``pkg/tagent/test/resources/measure-log.json``)::

    [{"pcr":{"index":15,"bank":"SHA256"},"tpm_events":[{"type_id":"0x90000001",
      "type_name":"APPLICATION_AGENT_MEASUREMENT","tags":["<Label>-<Uuid>"],"measurement":"<hex>"}]}]

Only the SHA-256 bank: the SecL hosts in the corpus (v3.2/v3.3 host manifests) report PCR 15 of SHA-1 as
all zeros while their SHA-256 PCR 15 replays exactly from these events, so SecL extends SHA-256 alone.
A verifier that sees PCR 15 of SHA-1 move knows something else extended it.

The file is whole JSON (compact, as Go writes it), so adding an event rewrites it:
:func:`append_event` takes the current bytes and returns the new ones; the agent replaces the file
atomically. Parsing yields unverified claims until :func:`replay` of them matches a quoted PCR 15.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from secl.core.hostmanifest import PcrEventLog
from secl.core.measurementlog import MeasurementLog
from secl.core.pcrevents import PcrRef, SeclJSONError, TpmEvent, replay_events

__all__ = [
    "APPLICATION_PCR",
    "EVENT_TYPE_ID",
    "EVENT_TYPE_NAME",
    "MAX_EVENT_LOG_BYTES",
    "AppEventLogError",
    "append_event",
    "application_event",
    "parse_event_log",
    "render_event_log",
    "replay",
]

APPLICATION_PCR = PcrRef(15, "SHA256")
EVENT_TYPE_ID = "0x90000001"
EVENT_TYPE_NAME = "APPLICATION_AGENT_MEASUREMENT"
MAX_EVENT_LOG_BYTES = 16 * 1024 * 1024


class AppEventLogError(SeclJSONError):
    """The application event log file is not SecL's measure-log JSON."""

    code = "app-event-log-invalid"


def application_event(log: MeasurementLog) -> TpmEvent:
    """The PCR 15 event for one measurement: SHA-256 of its CumulativeHash, tagged ``<Label>-<Uuid>``."""
    digest = hashlib.sha256(bytes.fromhex(log.cumulative_hash)).hexdigest()
    return TpmEvent(EVENT_TYPE_ID, EVENT_TYPE_NAME, (log.event_tag,), digest)


def parse_event_log(data: bytes) -> tuple[PcrEventLog, ...]:
    """Parse a measure-log JSON document (a list of ``{pcr, tpm_events}``); empty input is an empty log."""
    if len(data) > MAX_EVENT_LOG_BYTES:
        raise AppEventLogError(f"event log is {len(data)} bytes, more than {MAX_EVENT_LOG_BYTES}")
    if not data.strip():
        return ()
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppEventLogError(f"event log is not JSON: {exc}") from None
    if not isinstance(document, list):
        raise AppEventLogError("event log must be a JSON list of {pcr, tpm_events} objects")
    logs = []
    for position, item in enumerate(document):
        where = f"event log entry {position}"
        if not isinstance(item, Mapping) or not isinstance(item.get("tpm_events"), list):
            raise AppEventLogError(f"{where}: expected an object with pcr and a tpm_events list")
        pcr = PcrRef.from_json(item.get("pcr"), where=f"{where} pcr")
        events = tuple(
            TpmEvent.from_json(event, where=f"{where} event {n}")
            for n, event in enumerate(item["tpm_events"])
        )
        logs.append(PcrEventLog(pcr, events))
    return tuple(logs)


def render_event_log(logs: Sequence[PcrEventLog]) -> bytes:
    """Write the log compactly, as SecL's Go agent does."""
    document = [
        {"pcr": log.pcr.to_json(), "tpm_events": [event.to_json() for event in log.events]} for log in logs
    ]
    return json.dumps(document, separators=(",", ":")).encode()


def append_event(data: bytes, event: TpmEvent, pcr: PcrRef = APPLICATION_PCR) -> bytes:
    """The log ``data`` with ``event`` appended to the entry of ``pcr`` (created if absent)."""
    logs = list(parse_event_log(data))
    for position, log in enumerate(logs):
        if log.pcr == pcr:
            logs[position] = PcrEventLog(pcr, (*log.events, event))
            break
    else:
        logs.append(PcrEventLog(pcr, (event,)))
    return render_event_log(logs)


def replay(logs: Sequence[PcrEventLog]) -> dict[PcrRef, bytes]:
    """The PCR values the logged events extend to from zeros (several entries of one PCR chain in order)."""
    events: dict[PcrRef, list[TpmEvent]] = {}
    for log in logs:
        events.setdefault(log.pcr, []).extend(log.events)
    try:
        return {pcr: replay_events(pcr.bank, pcr.index, chain) for pcr, chain in events.items()}
    except SeclJSONError as exc:
        raise AppEventLogError(str(exc)) from None
