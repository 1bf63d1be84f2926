#!/usr/bin/env bash
# Set everything up and run the main job on the embedded defaults: a central (SQLite) and a trust agent on
# a swtpm holding a real OVMF boot's measurements, on this machine. It prints the host's trust report
# (trusted), changes one boot measurement and prints the untrusted report with its faults.
# See scripts/demo.py for the steps; everything lives in a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
