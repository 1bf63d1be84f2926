"""The README's first command stays true: the demo attests a host (trusted), then catches a changed boot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_reports_trusted_then_untrusted_with_the_changed_pcr():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "host localhost: TRUSTED" in out
    assert "host localhost: UNTRUSTED" in out
    assert "PcrValueMismatchSHA256 (PCR 0 SHA256)" in out
    assert out.index(": TRUSTED") < out.index(": UNTRUSTED")
