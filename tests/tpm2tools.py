"""Running tpm2-tools as an independent oracle. A missing tool fails the test that needs it.

Against a swtpm, :func:`tool` runs one command and flushes what it left loaded; :func:`tools_quote` makes an
EK, an AK and a quote over ``NONCE`` with them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from secl.core.hashalg import HashAlg
from tests.swtpm import RunningSwtpm

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


# --- against a swtpm -------------------------------------------------------------------------------------

NONCE = bytes.fromhex("5ec1a77e57ed0001")


def tool(swtpm: RunningSwtpm, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one tpm2-tools command against the swtpm, then flush what it left loaded."""
    if shutil.which(args[0]) is None:
        pytest.fail(f"{args[0]} is not installed (Debian package tpm2-tools)", pytrace=False)
    env = {**os.environ, "TPM2TOOLS_TCTI": swtpm.tcti}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)
    # Fails harmlessly when nothing is loaded, hence no check.
    subprocess.run(
        ["tpm2_flushcontext", "-t"], cwd=cwd, env=env, capture_output=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}", pytrace=False)
    return result


def tools_quote(swtpm: RunningSwtpm, work: Path, kind: str, pcr_list: str, pcrs_format: str) -> None:
    scheme = {"rsa": "rsassa", "ecc": "ecdsa"}[kind]
    tool(swtpm, work, "tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
    tool(swtpm, work, "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", kind, "-g", "sha256", "-s", scheme, "-u", "ak.pub")  # fmt: skip
    tool(swtpm, work, "tpm2_quote", "-c", "ak.ctx", "-l", pcr_list, "-q", NONCE.hex(), "-m", "msg", "-s", "sig", "-o", "pcrs", "-F", pcrs_format, "-g", "sha256")  # fmt: skip
