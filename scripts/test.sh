#!/usr/bin/env bash
# Set everything up (scripts/setup.sh) and run the whole test suite: lint, type check, then pytest.
# Tests that need swtpm or tpm2-tools start them themselves; nothing is skipped for a missing component.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python scripts/typecheck.py  # mypy over [tool.mypy] packages (the core and the central)
exec .venv/bin/pytest -q "$@"
