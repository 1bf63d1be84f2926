"""Running tpm2-tools as an independent oracle. A missing tool fails the test that needs it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from secl.core.hashalg import HashAlg

_PCR_LINE = re.compile(r"^\s+(\d+)\s*:\s*0x([0-9a-fA-F]+)\s*$")
_BANK_LINE = re.compile(r"^  (\w+):\s*$")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(
            f"{name} is not installed (Debian package tpm2-tools); scripts/setup.sh installs it"
        )
    return path


def tpm2_eventlog_pcrs(log: Path) -> dict[HashAlg, dict[int, bytes]] | None:
    """Run ``tpm2_eventlog`` on a log; return its replayed PCRs, or None when the tool cannot read the log."""
    tool = require_tool("tpm2_eventlog")
    result = subprocess.run([tool, str(log)], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return None
    return parse_pcrs_section(result.stdout)


def parse_pcrs_section(text: str) -> dict[HashAlg, dict[int, bytes]]:
    """Read the trailing ``pcrs:`` block tpm2_eventlog prints (bank lines, then ``N : 0xHEX`` lines)."""
    pcrs: dict[HashAlg, dict[int, bytes]] = {}
    lines = text.splitlines()
    try:
        start = len(lines) - 1 - lines[::-1].index("pcrs:")
    except ValueError:
        return pcrs
    bank: HashAlg | None = None
    for line in lines[start + 1 :]:
        if m := _BANK_LINE.match(line):
            bank = HashAlg.from_name(m.group(1))
            pcrs[bank] = {}
        elif (m := _PCR_LINE.match(line)) and bank is not None:
            pcrs[bank][int(m.group(1))] = bytes.fromhex(m.group(2))
    return pcrs
