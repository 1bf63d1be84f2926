#!/usr/bin/env bash
# Set everything up and run the main job on the embedded defaults.
#
# Until the central server and trust agent exist, the demo runs the evidence tools on a real firmware
# event log (OVMF under QEMU with a swtpm vTPM, from the shared corpus): it decodes the log, replays
# every bank to PCR values, and checks them against the PCRs read inside that guest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The corpus is found where the tests look for it: $SECL_CORPUS, ../shared/corpus, /work/shared/corpus.
CORPUS=""
for candidate in "${SECL_CORPUS:-}" "$(cd .. && pwd)/shared/corpus" /work/shared/corpus; do
  if [[ -n $candidate && -f $candidate/INDEX.md ]]; then CORPUS=$candidate; break; fi
done
if [[ -z $CORPUS ]]; then
  echo "demo: the evidence corpus was not found; set SECL_CORPUS to the folder holding corpus/INDEX.md" >&2
  exit 1
fi
LOG=$CORPUS/ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin
SECL=.venv/bin/secl

echo
echo "== the boot events an OVMF guest logged (secl eventlog show)"
$SECL eventlog show "$LOG"
echo
echo "== the PCR values that log replays to (secl eventlog replay)"
$SECL eventlog replay "$LOG"
echo
echo "== checked against the PCRs read inside the guest"
$SECL eventlog replay --json "$LOG" | .venv/bin/python -c '
import json, sys
replayed = json.load(sys.stdin)["sha256"]
expected = json.load(open(sys.argv[1]))["ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"]["expected_pcrs"]["SHA256"]
bad = [pcr for pcr, value in expected.items() if replayed.get(pcr, "0" * 64) != value]
print("all %d sha256 PCRs match" % len(expected) if not bad else "MISMATCH on PCR " + ", ".join(bad))
sys.exit(1 if bad else 0)
' "$CORPUS/_expected/ovmf_eventlog.json"
