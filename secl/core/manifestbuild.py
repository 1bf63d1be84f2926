"""Build a SecL host manifest from verified evidence: host info, a verified quote and the TCG event log.

The manifest is what the trust rules read (:mod:`secl.core.trustreport`), so what goes into it decides
what a report can claim. Two invariants:

- **PCR values come only from the quote.** ``pcr_manifest`` holds exactly the (bank, index) pairs of the
  quote's *signed* selection, with the values whose digest the quote signature covers
  (``VerifiedQuote.pcrs``). Nothing the host sent outside the quote reaches the manifest.
- **Events are listed as the host logged them, even when they do not replay.** A log that does not
  replay to the quoted PCRs is not an exception here: like SecL's, the manifest records the quoted values
  and the logged events, and the PcrEventLogIntegrity rule then fails for that PCR, with a fault that
  names the PCR and bank, in the report where an operator reads it. Refusing to build the manifest would
  turn "this host's PCR 7 log was tampered with" into a generic error with no report. The replay outcome
  is also returned (:class:`ManifestEvidence`) so the verifier can log it and refuse to cache the result.

Events become SecL ``tpm_events`` entries (type id, type name and tags derived as SecL's trust agent
does, :mod:`secl.core.secltags`), one list per quoted (bank, PCR) that has events. Like SecL's agent we
keep the EV_NO_ACTION events of a PCR (the "StartupLocality3" marker sets PCR 0's initial value in
SecL's replay) but not the Spec ID header; events on PCR 0xFFFFFFFF (logged, never extended) are left
out, where SecL stops reading the log altogether.

PCR 15's application-measurement events (``APPLICATION_AGENT_MEASUREMENT``) are not in the TCG log: the
agent serves them apart (SecL's measure-log JSON), and ``application_events`` adds them to the event list of
PCR 15 in the SHA-256 bank (where SecL lists them) when that register was quoted, after any TCG events of
it, so the PCR rules replay them against the quoted value like any other list. Entries for another PCR or
bank are refused: nothing but the application measurements extends there from outside the TCG log.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from secl.core.appeventlog import APPLICATION_PCR
from secl.core.errors import EvidenceError, ReplayError
from secl.core.eventlog import EventLog
from secl.core.eventtypes import EventType
from secl.core.hashalg import HashAlg
from secl.core.hostmanifest import HostManifest, PcrEventLog
from secl.core.pcrevents import PcrRef, TpmEvent, freeze, replay_events, thaw
from secl.core.quote import VerifiedQuote
from secl.core.secltags import SeclTypeNamer, secl_event_tags, secl_type_id
from secl.core.verifymemo import ResultMemo

__all__ = [
    "ManifestBuildError",
    "ManifestEvidence",
    "ManifestMemo",
    "RememberedManifest",
    "assemble_host_manifest",
    "build_host_manifest",
    "host_manifest_to_json",
    "manifest_inputs_key",
]

_SPEC_ID_PREFIX = b"Spec ID Event"
_ASSET_TAG_DIGEST_SIZE = 48  # SHA-384 of the tag certificate, as written to NV
# SecL's pcr_manifest lists by bank; it has none for SHA-512, which therefore never reaches its JSON.
_PCR_LIST_NAMES = {"SHA1": "sha1pcrs", "SHA256": "sha2pcrs", "SHA384": "sha3pcrs"}


class ManifestBuildError(EvidenceError):
    """The evidence cannot make a host manifest (no quoted PCRs, a bad AIK certificate, bad host info)."""

    code = "manifest-build-invalid"


@dataclass(frozen=True)
class ManifestEvidence:
    """A built manifest and how its event log fared against the quoted PCRs.

    ``replay_mismatches`` maps each quoted PCR the log does not reach to ``(quoted, replayed)`` hex values;
    ``unreplayed_banks`` lists quoted banks the log has no digests for (their PCRs have no event lists);
    ``workarounds`` names the firmware workarounds the replay needed, if any were allowed.
    """

    manifest: HostManifest
    replay_mismatches: Mapping[PcrRef, tuple[str, str]]
    unreplayed_banks: tuple[str, ...]
    workarounds: tuple[str, ...]

    @property
    def log_verified(self) -> bool:
        """Whether every quoted PCR of every bank the log covers replayed from the log."""
        return not self.replay_mismatches and not self.unreplayed_banks


def build_host_manifest(
    *,
    host_info: Mapping[str, Any],
    verified_quote: VerifiedQuote,
    event_log: EventLog,
    aik_certificate_pem: str | None,
    asset_tag_digest: bytes | None = None,
    binding_key_certificate_pem: str | None = None,
    measurement_xmls: Sequence[str] = (),
    application_events: Sequence[PcrEventLog] = (),
) -> HostManifest:
    """Return the host manifest for this evidence; see :func:`assemble_host_manifest`."""
    return assemble_host_manifest(
        host_info=host_info,
        verified_quote=verified_quote,
        event_log=event_log,
        aik_certificate_pem=aik_certificate_pem,
        asset_tag_digest=asset_tag_digest,
        binding_key_certificate_pem=binding_key_certificate_pem,
        measurement_xmls=measurement_xmls,
        application_events=application_events,
    ).manifest


def assemble_host_manifest(
    *,
    host_info: Mapping[str, Any],
    verified_quote: VerifiedQuote,
    event_log: EventLog,
    aik_certificate_pem: str | None,
    asset_tag_digest: bytes | None = None,
    binding_key_certificate_pem: str | None = None,
    measurement_xmls: Sequence[str] = (),
    application_events: Sequence[PcrEventLog] = (),
    allow_workarounds: bool = False,
) -> ManifestEvidence:
    """Build the manifest and report the replay of ``event_log`` against the quote-verified PCRs.

    ``host_info`` is the trust agent's ``GET /v2/host`` document (SecL's platform-info shape); it is
    copied as is, since the flavor templates' conditions and the flavors' meta read it in that shape.
    Raises :class:`ManifestBuildError` for evidence that cannot make a manifest at all.
    """
    if not isinstance(host_info, Mapping):
        raise ManifestBuildError("host info must be a JSON object", code="manifest-host-info-invalid")
    quoted = verified_quote.pcrs
    if quoted is None:
        # A quote verified without PCR values vouches for a digest only; there is nothing to record.
        raise ManifestBuildError(
            "the quote was verified without PCR values, so no PCR is known", code="manifest-no-quoted-pcrs"
        )
    values = {bank: dict(pcrs) for bank, pcrs in quoted.values.items()}
    mismatches, unreplayed, workarounds = _replay(event_log, values, allow_workarounds)
    pcr_values = {PcrRef(index, bank.name): value.hex() for bank, pcrs in values.items() for index, value in pcrs.items()}  # fmt: skip
    if asset_tag_digest is not None and (
        not isinstance(asset_tag_digest, bytes) or len(asset_tag_digest) != _ASSET_TAG_DIGEST_SIZE
    ):
        raise ManifestBuildError(
            "asset tag digest must be the 48-byte SHA-384 of the tag certificate",
            code="manifest-asset-tag-digest-invalid",
        )
    event_logs = _with_application_events(_event_lists(event_log, values), application_events, values)
    if application_events and APPLICATION_PCR in mismatches:
        # The TCG log alone cannot reach PCR 15 once the initrd extended it: judge PCR 15 by its whole list.
        quoted_15 = mismatches[APPLICATION_PCR][0]
        replayed_15 = replay_events(
            APPLICATION_PCR.bank, APPLICATION_PCR.index, event_logs[APPLICATION_PCR].events
        )
        if replayed_15.hex() == quoted_15:
            del mismatches[APPLICATION_PCR]
        else:
            mismatches[APPLICATION_PCR] = (quoted_15, replayed_15.hex())
    manifest = HostManifest(
        host_info=freeze(dict(host_info)),
        pcr_values=freeze(dict(sorted(pcr_values.items()))),
        event_logs=MappingProxyType(event_logs),
        event_log_format="new",
        aik_certificate=_pem_to_der(aik_certificate_pem, "AIK"),
        asset_tag_digest=asset_tag_digest,
        binding_key_certificate=_pem_to_der(binding_key_certificate_pem, "binding key"),
        measurement_xmls=tuple(measurement_xmls),
    )
    return ManifestEvidence(manifest, freeze(mismatches), unreplayed, workarounds)


def _quoted_values_key(verified_quote: VerifiedQuote) -> bytes:
    """The quoted PCR values as bytes for a memo key: per bank of the signed selection, in its order, the
    bank's name, the number of PCRs, their indices (a byte each) and their values. Each value is one
    digest of its bank (the quote check made sure), so the framing is exact."""
    quoted = verified_quote.pcrs
    if quoted is None:
        return b"none"
    parts = []
    for (bank, indices), values in zip(quoted.selection, quoted.digests, strict=True):
        parts += [bank.name.encode(), b"\0", bytes([len(indices)]), bytes(indices), *values]
    return b"".join(parts)


def manifest_inputs_key(
    *,
    host_info: Mapping[str, Any],
    verified_quote: VerifiedQuote,
    aik_certificate_pem: str | None,
    asset_tag_digest: bytes | None = None,
    binding_key_certificate_pem: str | None = None,
    measurement_xmls: Sequence[str] = (),
    application_events: Sequence[PcrEventLog] = (),
    allow_workarounds: bool = False,
) -> bytes:
    """A digest of everything :func:`assemble_host_manifest` reads except the event log, which a
    :class:`ManifestMemo` keeps and compares instead. Each input is length-prefixed, so no two different
    input sets share a serialization.
    """
    parts = [
        _quoted_values_key(verified_quote),
        json.dumps(host_info, sort_keys=True, default=repr).encode(),
        (aik_certificate_pem or "").encode(),
        asset_tag_digest or b"",
        (binding_key_certificate_pem or "").encode(),
        json.dumps(list(measurement_xmls)).encode() if measurement_xmls else b"",
        json.dumps(
            [[log.pcr.to_json(), [e.to_json() for e in log.events]] for log in application_events]
        ).encode()
        if application_events
        else b"",
        b"workarounds" if allow_workarounds else b"strict",
    ]
    h = hashlib.sha256(b"secl-host-manifest-inputs\0")
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


@dataclass(frozen=True)
class RememberedManifest:
    """A manifest built from an event log, with that log and its SHA-256 (the evidence digest needs it)."""

    event_log: bytes
    event_log_sha256: bytes
    built: ManifestEvidence

    @classmethod
    def of(cls, event_log: bytes, built: ManifestEvidence) -> RememberedManifest:
        return cls(event_log, hashlib.sha256(event_log).digest(), built)


class ManifestMemo:
    """Host manifests by their exact inputs, for a verifier that sees the same boot report after report.

    Keyed on :func:`manifest_inputs_key`; the event log (tens of KB) is kept and compared byte for byte,
    which costs a few microseconds where hashing it cost tens, and its SHA-256 is kept with it. A log that
    differs is a miss. The caller owns the memo (one per verifier process), never module state.
    """

    def __init__(self, size: int = 4096) -> None:
        self._memo: ResultMemo[bytes, RememberedManifest] = ResultMemo(size=size)

    def lookup(self, key: bytes, event_log: bytes) -> RememberedManifest | None:
        found = self._memo.get(key)
        return found if found is not None and found.event_log == event_log else None

    def remember(self, key: bytes, event_log: bytes, built: ManifestEvidence) -> RememberedManifest:
        return self._memo.put(key, RememberedManifest.of(event_log, built))


def _replay(
    log: EventLog, values: Mapping[HashAlg, Mapping[int, bytes]], allow_workarounds: bool
) -> tuple[dict[PcrRef, tuple[str, str]], tuple[str, ...], tuple[str, ...]]:
    checkable = {bank: pcrs for bank, pcrs in values.items() if bank in log.banks}
    unreplayed = tuple(sorted(bank.name for bank in values if bank not in log.banks))
    if not checkable:
        return {}, unreplayed, ()
    try:
        verified = log.verify(checkable, allow_workarounds=allow_workarounds)
    except ReplayError as exc:
        mismatches = {
            PcrRef(pcr, HashAlg.from_name(bank).name): (expected.hex(), got.hex())
            for (bank, pcr), (expected, got) in exc.mismatches.items()
        }
        return dict(sorted(mismatches.items())), unreplayed, ()
    return {}, unreplayed, verified.workarounds


def _event_lists(log: EventLog, values: Mapping[HashAlg, Mapping[int, bytes]]) -> dict[PcrRef, PcrEventLog]:
    # Keyed by plain (index, bank name) tuples while collecting: they hash and compare in C, PcrRef does not.
    lists: dict[tuple[int, str], list[TpmEvent]] = {}
    quoted = [(bank, bank.name, frozenset(pcrs)) for bank, pcrs in values.items()]
    namer = SeclTypeNamer()
    for event in log.events:
        if event.type == EventType.EV_NO_ACTION and event.data.startswith(_SPEC_ID_PREFIX):
            continue  # The log's header, not a measurement (SecL's agent skips it too).
        # Named in log order even when not quoted: SecL numbers tboot's 0x501 events across the log.
        type_name = namer.name(event.type)
        pcr, digests = event.pcr, event.digests
        wanted = [(bank, name) for bank, name, pcrs in quoted if pcr in pcrs and bank in digests]
        if not wanted:
            continue
        tags = secl_event_tags(event.type, event.data, pcr)
        type_id = secl_type_id(event.type)
        for bank, name in wanted:
            entry = TpmEvent(type_id, type_name, tags, digests[bank].hex(), tags_present=bool(tags))
            found = lists.get((pcr, name))
            if found is None:
                lists[(pcr, name)] = [entry]
            else:
                found.append(entry)
    out = {}
    for (pcr, name), events in sorted(lists.items()):
        ref = PcrRef(pcr, name)
        out[ref] = PcrEventLog(ref, tuple(events))
    return out


def _with_application_events(
    lists: dict[PcrRef, PcrEventLog],
    application_events: Sequence[PcrEventLog],
    values: Mapping[HashAlg, Mapping[int, bytes]],
) -> dict[PcrRef, PcrEventLog]:
    for log in application_events:
        if log.pcr != APPLICATION_PCR:
            raise ManifestBuildError(
                f"application events are for PCR {APPLICATION_PCR.index} of {APPLICATION_PCR.bank}, not "
                f"PCR {log.pcr.index} of {log.pcr.bank}",
                code="manifest-application-event-pcr",
            )
    events = tuple(e for log in application_events for e in log.events)
    if not events or APPLICATION_PCR.index not in values.get(HashAlg.SHA256, {}):
        return lists
    out = dict(lists)
    found = out.get(APPLICATION_PCR)
    out[APPLICATION_PCR] = PcrEventLog(APPLICATION_PCR, (*(found.events if found else ()), *events))
    return dict(sorted(out.items(), key=lambda item: (item[0].index, item[0].bank)))


def _pem_to_der(pem: str | None, what: str) -> bytes | None:
    if pem is None:
        return None
    try:
        data = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ManifestBuildError(
            f"{what} certificate is not a PEM X.509 certificate: {exc}",
            code=f"manifest-{what.replace(' ', '-').lower()}-certificate-invalid",
        ) from None


def host_manifest_to_json(manifest: HostManifest) -> dict[str, Any]:
    """SecL's host-manifest JSON for ``manifest`` (new event format; what the templates' XPath reads).

    Old-format (Java HVS) event lists are written in the new format. SHA-512 values have no list in
    SecL's ``pcr_manifest`` and are left out. The document is computed once per manifest object and
    shared: callers must not modify it.
    """
    found = manifest.derived.get("secl-json")
    if found is None:
        found = manifest.derived["secl-json"] = _host_manifest_json(manifest)
    return found


def _host_manifest_json(manifest: HostManifest) -> dict[str, Any]:
    pcr_manifest: dict[str, Any] = {}
    for ref, value in sorted(manifest.pcr_values.items()):
        name = _PCR_LIST_NAMES.get(ref.bank)
        if name is not None:
            entry = {"index": f"pcr_{ref.index}", "value": value, "pcr_bank": ref.bank}
            pcr_manifest.setdefault(name, []).append(entry)
    event_map: dict[str, list[dict[str, Any]]] = {}
    for ref, log in sorted(manifest.event_logs.items()):
        events = [e.to_json() for e in log.events]
        event_map.setdefault(ref.bank, []).append({"pcr": ref.to_json(), "tpm_events": events})
    if event_map:
        pcr_manifest["pcr_event_log_map"] = event_map
    out: dict[str, Any] = {"host_info": thaw(manifest.host_info), "pcr_manifest": pcr_manifest}
    for key in ("aik_certificate", "asset_tag_digest", "binding_key_certificate"):
        value = getattr(manifest, key)
        if value is not None:
            out[key] = base64.b64encode(value).decode("ascii")
    if manifest.measurement_xmls:
        out["measurement_xmls"] = list(manifest.measurement_xmls)
    return out
