"""The installed `secl` command against evidence from a live swtpm, made by tpm2-tools (the independent side)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter
from tests.swtpm import RunningSwtpm
from tests.tpm2tools import NONCE, tools_quote

pytestmark = pytest.mark.swtpm


def secl(*args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("secl")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
def test_tpm2_quote_output_verifies_with_secl_quote_verify(swtpm: RunningSwtpm, tmp_path: Path, kind: str):
    tools_quote(swtpm, tmp_path, kind, "sha1:0,7+sha256:0,1,2,3,4,5,6,7", "serialized")
    args = ["quote", "verify", "--ak", str(tmp_path / "ak.pub"), "--message", str(tmp_path / "msg")]
    args += ["--signature", str(tmp_path / "sig"), "--pcrs", str(tmp_path / "pcrs")]
    ok = secl(*args, "--nonce", NONCE.hex(), "--json")
    assert ok.returncode == 0, ok.stderr
    verdict = json.loads(ok.stdout)
    assert verdict["valid"] is True
    assert verdict["selection"] == {"sha1": [0, 7], "sha256": [0, 1, 2, 3, 4, 5, 6, 7]}

    wrong_nonce = secl(*args, "--nonce", NONCE[::-1].hex())
    assert wrong_nonce.returncode == 1
    assert wrong_nonce.stderr.startswith("secl: error: quote does not verify")

    # PCR values that differ from the quoted ones in one register (sha256 PCR 7) must not verify.
    with TPMAdapter(swtpm.tcti) as tpm:
        values = tpm.read_pcrs({HashAlg.SHA1: [0, 7], HashAlg.SHA256: list(range(8))})
    values_json = {
        bank.bank_name: {str(i): v.hex() for i, v in regs.items()} for bank, regs in values.items()
    }
    values_json["sha256"]["7"] = "11" * 32
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(values_json))
    args[args.index("--pcrs") + 1] = str(changed)
    mismatch = secl(*args, "--nonce", NONCE.hex())
    assert mismatch.returncode == 1
    assert "pcr-digest-mismatch" in mismatch.stderr


def test_swtpm_ek_certificate_verifies_with_secl_ekcert_verify(swtpm: RunningSwtpm, tmp_path: Path):
    with TPMAdapter(swtpm.tcti) as tpm:
        ek = tpm.read_ek("rsa")
    assert ek.certificate is not None
    (tmp_path / "ek.der").write_bytes(ek.certificate)
    root = sorted(swtpm.ca_dir.glob("*rootca-cert.pem"))
    intermediate = swtpm.ca_dir / "issuercert.pem"
    assert root and intermediate.exists(), sorted(p.name for p in swtpm.ca_dir.iterdir())
    result = secl(
        "ekcert", "verify", str(tmp_path / "ek.der"), "--ca-bundle", str(root[0]),
        "--intermediates", str(intermediate), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    chain = json.loads(result.stdout)["chain"]
    assert len(chain) == 3
    # Without the intermediate the chain cannot be built to the swtpm's root.
    other = secl("ekcert", "verify", str(tmp_path / "ek.der"), "--ca-bundle", str(root[0]))
    assert other.returncode == 1
    assert "untrusted-issuer" in other.stderr
