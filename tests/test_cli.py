"""The `secl` evidence commands: their output, their exit statuses, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from secl.cli.main import cli
from tests.corpus import corpus_path

OVMF_LOG = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"
KEYLIME = "keylime/test-data/files"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stdout: str, stderr: str, status: int) -> None:
    assert code == status, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("secl: error: ")
    assert "Traceback" not in stderr + stdout


def test_eventlog_show_decodes_events():
    code, out, _ = run("eventlog", "show", str(corpus_path(OVMF_LOG)))
    assert code == 0
    assert "format: crypto-agile; banks: sha1, sha256; events: 26" in out
    assert "SecureBoot (EFI global variable): disabled" in out
    assert "Exit Boot Services Returned with Success" in out


def test_eventlog_show_json_has_every_event_and_its_details():
    code, out, _ = run("eventlog", "show", "--json", str(corpus_path(OVMF_LOG)))
    assert code == 0
    doc = json.loads(out)
    assert len(doc["events"]) == 26
    boot = [e for e in doc["events"] if e["type_name"] == "EV_EFI_BOOT_SERVICES_APPLICATION"]
    assert boot and "File(kernel)" in boot[0]["description"]
    assert doc["digest_mismatches"] == []


def test_eventlog_show_reports_digest_mismatches():
    code, out, _ = run(
        "eventlog", "show", str(corpus_path("intel-secl/pkg/tagent/test/eventlog/uefi_event_log_invalid.bin"))
    )
    assert code == 0
    assert "MISMATCH: event 31 (EV_EFI_VARIABLE_BOOT, PCR 1)" in out


def test_eventlog_replay_json_shape():
    code, out, _ = run("eventlog", "replay", "--json", str(corpus_path(OVMF_LOG)))
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"sha1", "sha256"}
    assert doc["sha256"]["0"] == "177e29c417b6b61c7cf46ed30b4468931f58642527a268b556254e39b941ec6a"


@pytest.mark.parametrize("command", [["eventlog", "show"], ["eventlog", "replay"], ["ima", "replay"]])
@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 3, os.urandom(64)])
def test_malformed_logs_give_one_line_and_status_3(tmp_path: Path, command: list[str], content: bytes):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    assert_one_line_error(*run(*command, str(bad)), status=3)


@pytest.mark.parametrize("command", [["eventlog", "show"], ["eventlog", "replay"], ["ima", "replay"]])
def test_missing_file_gives_one_line(command: list[str], tmp_path: Path):
    code, out, err = run(*command, str(tmp_path / "nope"))
    assert_one_line_error(code, out, err, status=3)
    assert "no such file" in err


def test_ima_replay_prints_pcr10():
    code, out, _ = run(
        "ima",
        "replay",
        str(corpus_path("rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements")),
    )
    assert code == 0
    assert "entries: 826; violations: 0; template-hash mismatches: 0" in out
    assert "PCR 10 (sha1): 82231c67" in out


def test_ima_replay_names_the_corrupted_entry_and_fails():
    path = corpus_path(
        "keylime/extracted_from_tests/test_ima_verification.BAD_SIGNATURES.ascii_runtime_measurements"
    )
    code, out, err = run("ima", "replay", str(path))
    assert code == 1
    assert "/usr/bin/zmore" in out
    assert err.strip().startswith("secl: error: 1 IMA entries do not match")


def _keylime_quote_args(nonce: str | None = None) -> list[str]:
    files = corpus_path(KEYLIME)
    nonce = nonce if nonce is not None else (files / "rand.out").read_bytes().hex()
    return [
        "quote",
        "verify",
        "--ak",
        str(files / "ak.pub"),
        "--message",
        str(files / "quote.out"),
        "--signature",
        str(files / "quotesig.out"),
        "--nonce",
        nonce,
        "--pcrs",
        str(files / "quotepcr.out"),
    ]


def test_quote_verify_accepts_the_keylime_quote():
    code, out, _ = run(*_keylime_quote_args())
    assert code == 0, out
    assert "quote valid" in out
    assert "sha256:15,16,22" in out


def test_quote_verify_json_reports_selection_and_counters():
    code, out, _ = run(*_keylime_quote_args(), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["valid"] is True
    assert "pcr_digest" in doc and "reset_count" in doc and "clock" in doc


def test_quote_verify_rejects_a_wrong_nonce_with_status_1():
    code, out, err = run(*_keylime_quote_args(nonce="00" * 20), "--json")
    assert code == 1
    assert json.loads(out)["valid"] is False
    assert "nonce" in err


def test_quote_verify_rejects_bad_hex():
    assert_one_line_error(*run(*_keylime_quote_args(nonce="zz")), status=3)


def test_quote_verify_rejects_a_garbage_ak(tmp_path: Path):
    args = _keylime_quote_args()
    bad = tmp_path / "ak.bin"
    bad.write_bytes(b"\x01\x02\x03")
    args[args.index("--ak") + 1] = str(bad)
    code, out, err = run(*args)
    assert code in (1, 3)
    assert_one_line_error(code, out, err, status=code)


STM = "keylime/extracted_from_tests/st_ecdsa_sha256.der"


def test_ekcert_verify_ends_at_the_first_trusted_ca(tmp_path: Path):
    bundle = tmp_path / "ca"
    bundle.mkdir()
    for name in ("STM_ECC_01I.pem", "STM_ECC_01RT.pem"):
        (bundle / name).write_bytes(corpus_path(f"keylime/tpm_cert_store/{name}").read_bytes())
    code, out, _ = run("ekcert", "verify", str(corpus_path(STM)), "--ca-bundle", str(bundle), "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["verified"] is True
    assert len(doc["chain"]) == 2  # the intermediate is itself trusted


def test_ekcert_verify_uses_untrusted_intermediates_to_reach_the_root():
    root = corpus_path("keylime/tpm_cert_store/STM_ECC_01RT.pem")
    intermediate = corpus_path("keylime/tpm_cert_store/STM_ECC_01I.pem")
    code, out, _ = run(
        "ekcert",
        "verify",
        str(corpus_path(STM)),
        "--ca-bundle",
        str(root),
        "--intermediates",
        str(intermediate),
        "--json",
    )
    assert code == 0, out
    assert len(json.loads(out)["chain"]) == 3
    code, out, err = run("ekcert", "verify", str(corpus_path(STM)), "--ca-bundle", str(root))
    assert_one_line_error(code, out, err, status=1)


def test_ekcert_verify_untrusted_gives_status_1():
    roots = corpus_path("keylime/tpm_cert_store/IFX_RSA_RT.pem")
    code, out, err = run("ekcert", "verify", str(corpus_path(STM)), "--ca-bundle", str(roots))
    assert_one_line_error(code, out, err, status=1)
    assert "untrusted-issuer" in err


def test_ekcert_verify_garbage_gives_status_3(tmp_path: Path):
    bad = tmp_path / "ek.der"
    bad.write_bytes(b"\x30\x82\x01\x00garbage")
    roots = corpus_path("keylime/tpm_cert_store/IFX_RSA_RT.pem")
    assert_one_line_error(*run("ekcert", "verify", str(bad), "--ca-bundle", str(roots)), status=3)


def test_the_installed_command_never_prints_a_traceback(tmp_path: Path):
    # Through a real process and the console-script entry point, as an operator runs it.
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff" * 7)
    secl = Path(sys.executable).with_name("secl")
    assert secl.exists(), "the secl console script is not installed in this environment"
    result = subprocess.run(
        [str(secl), "eventlog", "replay", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 3
    assert result.stderr.startswith("secl: error: ")
    assert "Traceback" not in result.stderr


def test_help_explains_every_command():
    for args in (
        ["--help"],
        ["eventlog", "--help"],
        ["quote", "verify", "--help"],
        ["ekcert", "verify", "--help"],
    ):
        code, out, _ = run(*args)
        assert code == 0 and "Usage:" in out
