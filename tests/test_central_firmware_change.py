"""A different firmware log → untrusted, with real processes: swtpm, `secl-trustagent run`, the central under
gunicorn.

The golden host boots the corpus OVMF firmware (its log's measurements extended into a swtpm); the central
imports its flavors through the default templates and finds it trusted. The host then boots a different
real firmware (a fresh swtpm from the same manufactured TPM state, so the same EK and AIK, holding the
measurements of tcglog-parser's ``binary_bios_measurements``, an agile sha1+sha256 log of a real UEFI
machine with Secure Boot on) and its agent serves that log. The report must be untrusted, with:

- a PcrValueMismatch fault for exactly the flavored PCRs whose values differ between the two logs' replays
  (computed here from the logs, not taken from the report);
- PcrEventLogEquals faults on the PCR whose whole log the PLATFORM flavor pins, naming the OVMF events
  now missing and the other firmware's events now unexpected, each with its decoded type;
- PcrEventLogIncludes faults naming the OVMF events the OS flavor requires in PCR 7 that are gone.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secl.core.eventlog import parse_event_log
from secl.core.hashalg import HashAlg
from tests.agent_harness import ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.corpus import corpus_path
from tests.firmware_boot import OVMF_LOG, boot
from tests.live_central import LiveCentral
from tests.swtpm import RunningSwtpm, SwtpmState, start_swtpm

pytestmark = pytest.mark.swtpm

# A real machine's UEFI boot (Secure Boot on), agile sha1+sha256: PCRs 0-2, 4-9 differ from the OVMF boot's.
OTHER_FIRMWARE_LOG = "tcglog-parser/testdata/binary_bios_measurements"


@pytest.fixture
def second_swtpm(swtpm_state: SwtpmState, tmp_path: Path) -> Iterator[RunningSwtpm]:
    """Another swtpm from the same manufactured state: the same TPM after a power cycle, PCRs reset."""
    work = tmp_path / "second-swtpm"
    work.mkdir()
    process, running = start_swtpm(swtpm_state, work)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)


def _replay(log_name: str) -> dict[tuple[int, str], str]:
    """``{(pcr, bank name): hex}`` the log's measurements extend to, for every PCR 0-23 of sha1/sha256."""
    replayed = parse_event_log(corpus_path(log_name).read_bytes()).replay()
    return {
        (index, bank.name): (replayed.get(bank, {}).get(index) or bytes(bank.digest_size)).hex()
        for bank in (HashAlg.SHA1, HashAlg.SHA256)
        for index in range(24)
    }


def _measurements(log_name: str, pcr: int, bank: str) -> set[str]:
    events = parse_event_log(corpus_path(log_name).read_bytes()).iter_extended()
    return {e.digests[HashAlg[bank]].hex() for e in events if e.pcr == pcr and HashAlg[bank] in e.digests}


def _results(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["trust_report"]["results"]


def _report(live: LiveCentral, headers: dict[str, str], host_id: str) -> dict[str, Any]:
    made = api(live, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert made.status_code == 201, made.text
    return made.json()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_different_firmware_log_is_untrusted_with_the_pcrs_and_events_named(
    live_central: LiveCentral,
    central_state: CentralState,
    golden: ProvisionedAgent,
    second_swtpm: RunningSwtpm,
) -> None:
    headers = admin_headers(live_central, central_state)
    created = api(live_central, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": "golden", "connection_string": golden.connection_string})  # fmt: skip
    assert created.status_code == 201, created.text
    host_id = created.json()["id"]
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host_id})
    assert imported.status_code == 201, imported.text
    flavors = {f["flavor"]["meta"]["description"]["flavor_part"]: f["flavor"]
               for f in imported.json()["signed_flavors"]}  # fmt: skip
    assert set(flavors) == {"PLATFORM", "OS"}, flavors.keys()
    trusted = _report(live_central, headers, host_id)
    assert trusted["trusted"] is True, json.dumps(_results(trusted), indent=1)

    # The host boots another firmware: a power-cycled TPM measuring the other log, the agent serving it.
    golden.stop()
    boot(second_swtpm.tcti, corpus_path(OTHER_FIRMWARE_LOG).read_bytes())
    golden.tcti = second_swtpm.tcti
    golden.env = golden.env | {
        "SECL_TRUSTAGENT_TCTI": second_swtpm.tcti,
        "SECL_TRUSTAGENT_EVENT_LOG_PATH": str(corpus_path(OTHER_FIRMWARE_LOG)),
    }
    golden.start()
    report = _report(live_central, headers, host_id)
    assert report["trusted"] is False
    assert (
        report["flavors_trust"]["PLATFORM"]["trust"] is False
        and report["flavors_trust"]["OS"]["trust"] is False
    )

    # PcrValueMismatch: exactly the flavored PCRs (each in the bank the flavor pins) whose replays differ.
    golden_pcrs, other_pcrs = _replay(OVMF_LOG), _replay(OTHER_FIRMWARE_LOG)
    flavored = {(p["pcr"]["index"], p["pcr"]["bank"]) for f in flavors.values() for p in f["pcrs"]}
    differ = {ref for ref in flavored if golden_pcrs[ref] != other_pcrs[ref]}
    assert {0, 7} <= {index for index, _ in differ}, (
        differ
    )  # another machine's firmware and Secure Boot policy
    faults = [(r, f) for r in _results(report) for f in r.get("faults") or []]
    mismatches = [f for _, f in faults if f["fault_name"].rsplit(".", 1)[-1].startswith("PcrValueMismatch")]
    named = {(f["pcr_index"], f["pcr_bank"]) for f in mismatches}
    assert named == differ, (named, differ)
    for fault in mismatches:
        index, bank = fault["pcr_index"], fault["pcr_bank"]
        assert fault["fault_name"].endswith(f"PcrValueMismatch{bank}"), fault
        assert fault["actual_pcrvalue"].lower() == other_pcrs[(index, bank)], fault
        assert fault["expected_pcrvalue"].lower() == golden_pcrs[(index, bank)], fault
        assert f"Host PCR {index} of {bank}" in fault["description"], fault

    # PcrEventLogEquals (PLATFORM pins a PCR's whole log) and PcrEventLogIncludes (OS requires events):
    # the golden events that are gone are named missing, the other firmware's events unexpected.
    def by_rule(rule: str) -> list[dict[str, Any]]:
        return [f for r, f in faults if r["rule"]["rule_name"].rsplit(".", 1)[-1] == rule]

    equals, includes = by_rule("PcrEventLogEquals"), by_rule("PcrEventLogIncludes")
    assert equals and includes, [(r["rule"]["rule_name"], f["fault_name"]) for r, f in faults]
    for rule, found in (("PcrEventLogEquals", equals), ("PcrEventLogIncludes", includes)):
        kinds = {f["fault_name"].rsplit(".", 1)[-1] for f in found}
        assert "PcrEventLogMissingExpectedEntries" in kinds, (rule, kinds)
        for fault in found:
            index, bank = fault["pcr_index"], fault["pcr_bank"]
            assert (index, bank) in differ, (rule, fault)
            golden_events, other_events = (_measurements(OVMF_LOG, index, bank),
                                           _measurements(OTHER_FIRMWARE_LOG, index, bank))  # fmt: skip
            missing = {e["measurement"].lower() for e in fault.get("missing_entries", [])}
            unexpected = {e["measurement"].lower() for e in fault.get("unexpected_entries", [])}
            assert missing or unexpected, (rule, fault)
            assert missing <= golden_events - other_events, (rule, index, bank, missing)
            assert unexpected <= other_events - golden_events, (rule, index, bank, unexpected)
            assert all(e["type_name"] for e in [*fault.get("missing_entries", []),
                                                *fault.get("unexpected_entries", [])]), fault  # fmt: skip
    unexpected_kinds = {f["fault_name"].rsplit(".", 1)[-1] for f in equals}
    assert "PcrEventLogContainsUnexpectedEntries" in unexpected_kinds, unexpected_kinds
    assert "Traceback" not in live_central.output(), live_central.output()
