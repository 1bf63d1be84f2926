"""SecL host manifests: what a host reported (PCR values, per-PCR event lists, AIK, measurement logs).

The PCR values are ``pcr_manifest.sha1pcrs`` / ``sha2pcrs`` / ``sha3pcrs`` entries
``{"index": "pcr_7", "value": "<hex>", "pcr_bank": "SHA256"}``. The per-PCR event lists in
``pcr_manifest.pcr_event_log_map`` (keyed by bank) come in two formats, both in the corpus:

- new (SecL v3.3+): ``{"pcr": {"index": 7, "bank": "SHA256"}, "tpm_events": [{type_id, type_name, tags,
  measurement}]}``;
- old (Java HVS): ``{"pcr_index": "pcr_17", "event_log": [{digest_type, value, label, info{...}}]}``. An old
  event becomes a :class:`TpmEvent` with ``type_name = label``, ``tags = (info.ComponentName,
  info.EventName)`` and no type id; its full ``info`` stays in ``extra``.

A manifest is *unverified* data: it says what the host claims. The PCR values become trustworthy only once
a quote over them has been verified (``secl.core.quote``); the event lists only once they replay to those
values (:func:`replay_manifest_event_logs`, and the PcrEventLogIntegrity rule).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secl.core.errors import ReplayError
from secl.core.flavor import load_json
from secl.core.pcrevents import (
    EMPTY,
    PcrRef,
    SeclJSONError,
    TpmEvent,
    freeze,
    normalize_bank,
    replay_events,
)

__all__ = [
    "HostManifest",
    "HostManifestError",
    "PcrEventLog",
    "PcrReplay",
    "parse_host_manifest",
    "replay_manifest_event_logs",
    "verify_manifest_event_logs",
]

_PCR_LISTS = {"sha1pcrs": "SHA1", "sha2pcrs": "SHA256", "sha3pcrs": "SHA384"}


class HostManifestError(SeclJSONError):
    """A host manifest is malformed."""

    code = "host-manifest-invalid"


@dataclass(frozen=True)
class PcrEventLog:
    """The events a host reported for one PCR of one bank, in log order."""

    pcr: PcrRef
    events: tuple[TpmEvent, ...]


@dataclass(frozen=True)
class HostManifest:
    """A parsed host manifest. ``pcr_values`` maps ``PcrRef`` to the reported hex value."""

    host_info: Mapping[str, Any]
    pcr_values: Mapping[PcrRef, str]
    event_logs: Mapping[PcrRef, PcrEventLog]
    event_log_format: str  # "new", "old" or "none"
    aik_certificate: bytes | None = None  # DER
    asset_tag_digest: bytes | None = None
    binding_key_certificate: bytes | None = None  # DER
    measurement_xmls: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    # Derived data computed once per manifest object (its SecL JSON): a verifier that memoizes manifests
    # stores that JSON report after report. Not part of the value.
    derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def pcr_value(self, bank: str, index: int) -> str | None:
        return self.pcr_values.get(PcrRef(index, bank))

    def event_log(self, bank: str, index: int) -> tuple[TpmEvent, ...] | None:
        log = self.event_logs.get(PcrRef(index, bank))
        return None if log is None else log.events

    @property
    def has_pcr_manifest(self) -> bool:
        return bool(self.pcr_values)

    @property
    def os_name(self) -> str:
        return str(self.host_info.get("os_name", ""))


def _b64(value: object, where: str) -> bytes | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise HostManifestError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise HostManifestError(f"{where}: not valid base64") from None


def _pcr_index(value: object, where: str) -> int:
    return PcrRef.from_json({"index": value, "bank": "SHA1"}, where=where).index


def _old_event(obj: object, where: str) -> TpmEvent:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("value"), str):
        raise HostManifestError(f"{where}: expected an event with a hex value")
    info = obj.get("info") or {}
    if not isinstance(info, Mapping):
        raise HostManifestError(f"{where}.info: expected an object")
    tags = tuple(str(info[k]) for k in ("ComponentName", "EventName") if info.get(k))
    # Validate the digest through the common parser, then keep the old event's info/digest_type as extra.
    TpmEvent.from_json({"measurement": obj["value"]}, where=where)
    extra = freeze({k: v for k, v in obj.items() if k not in ("value", "label")})
    return TpmEvent("", str(obj.get("label", "")), tags, obj["value"], extra)


def _event_logs(raw: object) -> tuple[dict[PcrRef, PcrEventLog], str]:
    if raw is None:
        return {}, "none"
    if not isinstance(raw, Mapping):
        raise HostManifestError("pcr_manifest.pcr_event_log_map: expected an object keyed by bank")
    logs: dict[PcrRef, PcrEventLog] = {}
    formats = set()
    for bank_key, entries in raw.items():
        where = f"pcr_event_log_map.{bank_key}"
        bank = normalize_bank(bank_key, where=where)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise HostManifestError(f"{where}: expected a list")
        for i, entry in enumerate(entries):
            w = f"{where}[{i}]"
            if not isinstance(entry, Mapping):
                raise HostManifestError(f"{w}: expected an object")
            if "tpm_events" in entry or "pcr" in entry:
                formats.add("new")
                pcr = PcrRef.from_json(entry.get("pcr"), where=f"{w}.pcr")
                events_raw = entry.get("tpm_events") or []
                if not isinstance(events_raw, list):
                    raise HostManifestError(f"{w}.tpm_events: expected a list")
                events = tuple(
                    TpmEvent.from_json(e, where=f"{w}.tpm_events[{j}]") for j, e in enumerate(events_raw)
                )
            elif "event_log" in entry or "pcr_index" in entry:
                formats.add("old")
                pcr = PcrRef(_pcr_index(entry.get("pcr_index"), f"{w}.pcr_index"), bank)
                events_raw = entry.get("event_log") or []
                if not isinstance(events_raw, list):
                    raise HostManifestError(f"{w}.event_log: expected a list")
                events = tuple(_old_event(e, f"{w}.event_log[{j}]") for j, e in enumerate(events_raw))
            else:
                raise HostManifestError(f"{w}: neither tpm_events (new format) nor event_log (old format)")
            if pcr.bank != bank:
                raise HostManifestError(f"{w}: a {pcr.bank} event list filed under {bank}")
            if pcr in logs:
                raise HostManifestError(f"{w}: a second event list for {pcr}")
            logs[pcr] = PcrEventLog(pcr, events)
    if len(formats) > 1:
        raise HostManifestError("pcr_event_log_map mixes the old and new event formats")
    return logs, formats.pop() if formats else "none"


def parse_host_manifest(doc: Mapping[str, Any] | bytes | str) -> HostManifest:
    """Parse a SecL host manifest (either event-list format) from JSON text or a decoded object."""
    try:
        return _parse_host_manifest(doc)
    except HostManifestError:
        raise
    except SeclJSONError as exc:  # A PCR reference or event entry: report it as a manifest error.
        raise HostManifestError(exc.message) from None


def _parse_host_manifest(doc: Mapping[str, Any] | bytes | str) -> HostManifest:
    if isinstance(doc, bytes | str):
        doc = load_json(doc, what="host manifest", error=HostManifestError)
    if not isinstance(doc, Mapping):
        raise HostManifestError("host manifest: expected a JSON object")
    host_info = doc.get("host_info") or {}
    if not isinstance(host_info, Mapping):
        raise HostManifestError("host_info: expected an object")
    pcr_manifest = doc.get("pcr_manifest") or {}
    if not isinstance(pcr_manifest, Mapping):
        raise HostManifestError("pcr_manifest: expected an object")
    values: dict[PcrRef, str] = {}
    for key, default_bank in _PCR_LISTS.items():
        entries = pcr_manifest.get(key) or []
        if not isinstance(entries, list):
            raise HostManifestError(f"pcr_manifest.{key}: expected a list")
        for i, entry in enumerate(entries):
            where = f"pcr_manifest.{key}[{i}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), str):
                raise HostManifestError(f"{where}: expected {{index, value, pcr_bank}}")
            bank = normalize_bank(entry.get("pcr_bank", default_bank), where=where)
            if bank != default_bank:
                raise HostManifestError(f"{where}: a {bank} value in the {default_bank} list")
            ref = PcrRef(_pcr_index(entry.get("index"), where), bank)
            if ref in values:
                raise HostManifestError(f"{where}: a second value for {ref}")
            values[ref] = entry["value"].lower()
    logs, fmt = _event_logs(pcr_manifest.get("pcr_event_log_map"))
    xmls = doc.get("measurement_xmls") or []
    if not isinstance(xmls, list) or not all(isinstance(x, str) for x in xmls):
        raise HostManifestError("measurement_xmls: expected a list of XML strings")
    known = ("host_info", "pcr_manifest", "aik_certificate", "asset_tag_digest", "binding_key_certificate")
    return HostManifest(
        host_info=freeze(host_info),
        pcr_values=freeze(values),
        event_logs=freeze(logs),
        event_log_format=fmt,
        aik_certificate=_b64(doc.get("aik_certificate"), "aik_certificate"),
        asset_tag_digest=_b64(doc.get("asset_tag_digest"), "asset_tag_digest"),
        binding_key_certificate=_b64(doc.get("binding_key_certificate"), "binding_key_certificate"),
        measurement_xmls=tuple(xmls),
        extra=freeze({k: v for k, v in doc.items() if k not in (*known, "measurement_xmls")}),
    )


@dataclass(frozen=True)
class PcrReplay:
    """The outcome of replaying one PCR's event list: the reported value and the replayed one."""

    pcr: PcrRef
    reported: str | None  # None when the manifest has events but no value for this PCR
    replayed: str

    @property
    def matches(self) -> bool:
        return self.reported == self.replayed


def replay_manifest_event_logs(manifest: HostManifest) -> tuple[PcrReplay, ...]:
    """Replay every event list of the manifest and pair it with the manifest's value for that PCR."""
    out = []
    for ref in sorted(manifest.event_logs):
        replayed = replay_events(ref.bank, ref.index, manifest.event_logs[ref].events).hex()
        out.append(PcrReplay(ref, manifest.pcr_values.get(ref), replayed))
    return tuple(out)


def verify_manifest_event_logs(manifest: HostManifest) -> tuple[PcrReplay, ...]:
    """Like :func:`replay_manifest_event_logs`, but raise :class:`ReplayError` if any PCR differs."""
    results = replay_manifest_event_logs(manifest)
    bad = {
        (r.pcr.bank.lower(), r.pcr.index): (bytes.fromhex(r.reported or ""), bytes.fromhex(r.replayed))
        for r in results
        if not r.matches
    }
    if bad:
        names = ", ".join(f"PCR {i} ({b})" for b, i in sorted(bad))
        raise ReplayError(f"host manifest event lists do not replay to the reported values: {names}", bad)
    return results
