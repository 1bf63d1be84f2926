"""Error messages that tell an operator what is wrong, not what the parser tripped on (issue 18).

- hex with an odd number of digits says so, wherever hex is read (nonce, IMA, PCR values, flavors);
- a truncated TPMS_ATTEST names the structure, the field and the offset, never tpm2-tss's "mu:" text;
- `secl eventlog show` prints EV_PLATFORM_CONFIG_FLAGS that are text as text (Intel servers log
  "FeatureTME=1"), and binary ones as hex;
- `secl quote verify --help` says which AK formats it reads, and each of them verifies.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.cli.main import cli
from secl.core.errors import EvidenceError, IMALogError, QuoteError
from secl.core.eventlog import pcr_banks_from_json
from secl.core.flavor import FlavorError, parse_flavor
from secl.core.hextext import hex_problem
from secl.core.ima import parse_ima_log
from secl.core.pcrfile import load_pcr_values
from tests.corpus import corpus_bytes, corpus_path

KEYLIME = "keylime/test-data/files/"
ODD = "has an odd number of hex digits"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_hex_problem_names_the_fault() -> None:
    assert hex_problem("00ff") == ""
    assert hex_problem("00f") == f"{ODD} (3): a digit is missing or one too many"
    assert hex_problem("00fg") == "has 'g' at position 3, which is not a hex digit"
    assert hex_problem("0 f") == "has ' ' at position 1, which is not a hex digit"


def test_odd_nonce_on_the_command_line_says_odd() -> None:
    files = {name: str(corpus_path(KEYLIME + name)) for name in ("ak.pub", "quote.out", "quotesig.out")}
    code, _, err = run("quote", "verify", "--ak", files["ak.pub"], "-m", files["quote.out"],
                       "-s", files["quotesig.out"], "--nonce", "0xabc")  # fmt: skip
    assert code == 3
    assert err == f"secl: error: --nonce '0xabc' {ODD} (3): a digit is missing or one too many\n"
    code, _, err = run("quote", "verify", "--ak", files["ak.pub"], "-m", files["quote.out"],
                       "-s", files["quotesig.out"], "--nonce", "xyz")  # fmt: skip
    assert code == 3 and "'x' at position 0, which is not a hex digit" in err


def test_odd_hex_in_evidence_documents_says_odd() -> None:
    line = "10 " + "a" * 39 + " ima-ng sha1:" + "0" * 40 + " /init\n"
    with pytest.raises(IMALogError) as ima:
        parse_ima_log(line.encode())
    assert f"template hash {ODD} (39)" in ima.value.message
    with pytest.raises(EvidenceError) as banks:
        pcr_banks_from_json({"sha256": {"0": "0" * 63}})
    assert banks.value.message.startswith(f"PCR sha256:0 value '{'0' * 63}' {ODD} (63)")
    with pytest.raises(QuoteError) as pcr_file:
        load_pcr_values(json.dumps({"sha256": {"0": "0" * 63}}).encode())
    assert ODD in pcr_file.value.message
    flavor = {
        "meta": {"description": {"flavor_part": "PLATFORM"}},
        "pcrs": [{"pcr": {"index": 0, "bank": "SHA256"}, "measurement": "00",
                  "eventlog_includes": [{"type_id": "0x4", "measurement": "abc"}]}],
    }  # fmt: skip
    with pytest.raises(FlavorError) as bad_flavor:
        parse_flavor(flavor)
    assert f"measurement 'abc' {ODD} (3)" in bad_flavor.value.message


def test_truncated_quote_message_names_structure_and_offset(tmp_path: Path) -> None:
    attest = corpus_bytes(KEYLIME + "quote.out")
    (tmp_path / "short.msg").write_bytes(attest[:40])
    code, out, err = run("quote", "verify", "--ak", str(corpus_path(KEYLIME + "ak.pub")),
                         "-m", str(tmp_path / "short.msg"), "-s", str(corpus_path(KEYLIME + "quotesig.out")),
                         "--nonce", corpus_bytes(KEYLIME + "rand.out").hex())  # fmt: skip
    assert code == 1, (out, err)
    assert err.startswith(
        "secl: error: quote does not verify: malformed TPMS_ATTEST: TPMS_ATTEST is truncated at offset "
    )
    assert "needs" in err and "mu:" not in err and len(err.splitlines()) == 1
    (tmp_path / "short.sig").write_bytes(corpus_bytes(KEYLIME + "quotesig.out")[:100])
    code, _, err = run("quote", "verify", "--ak", str(corpus_path(KEYLIME + "ak.pub")),
                       "-m", str(corpus_path(KEYLIME + "quote.out")), "-s", str(tmp_path / "short.sig"),
                       "--nonce", corpus_bytes(KEYLIME + "rand.out").hex())  # fmt: skip
    assert code == 1
    assert (
        "TPMT_SIGNATURE is truncated at offset 6: TPMS_SIGNATURE_RSA.sig.buffer needs 256 byte(s), 94 left"
        in err
    )


def test_platform_config_flags_that_are_text_show_as_text() -> None:
    intel = str(corpus_path("intel-secl/pkg/tagent/test/eventlog/uefi_event_log.bin"))
    code, out, _ = run("eventlog", "show", intel)
    assert code == 0
    flags = [line for line in out.splitlines() if "EV_PLATFORM_CONFIG_FLAGS" in line]
    assert [line.split()[-1] for line in flags] == [
        "FeatureTME=1", "FeatureMKT=0", "MSR_TME_ACTIVATE", "MSR_TME_CAPABILITY", "MSR_TME_EXCLUDE_BASE",
        "MSR_TME_EXCLUDE_MASK",
    ]  # fmt: skip
    code, out, _ = run("eventlog", "show", "--json", intel)
    events = [e for e in json.loads(out)["events"] if e["type_name"] == "EV_PLATFORM_CONFIG_FLAGS"]
    assert events[0]["description"] == "FeatureTME=1" and events[0]["details"]["kind"] == "text"
    # A binary table of flags (tcglog-parser's machine) stays hex.
    code, out, _ = run(
        "eventlog", "show", str(corpus_path("tcglog-parser/testdata/binary_bios_measurements"))
    )
    (binary,) = [line for line in out.splitlines() if "EV_PLATFORM_CONFIG_FLAGS" in line]
    assert binary.split()[-1].startswith("8b040000011c0400")


def test_quote_help_names_the_ak_formats_and_each_verifies(tmp_path: Path) -> None:
    code, out, _ = run("quote", "verify", "--help")
    assert code == 0
    for phrase in ("TPM2B_PUBLIC", "TPMT_PUBLIC", "PEM or DER public key", "X.509 certificate"):
        assert phrase in out, phrase
    # The keylime AK as a TPM2B_PUBLIC, a TPMT_PUBLIC, PEM and DER keys, and PEM and DER certificates.
    tpm2b = corpus_bytes(KEYLIME + "ak.pub")
    pem = corpus_bytes(KEYLIME + "akpub.pem")
    key = serialization.load_pem_public_key(pem)
    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "AIK")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key)  # type: ignore[arg-type]
        .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1))
        .not_valid_after(dt.datetime(2040, 1, 1)).sign(issuer, hashes.SHA256())
    )  # fmt: skip
    forms = {
        "tpm2b": tpm2b,
        "tpmt": tpm2b[2:],
        "pem": pem,
        "der": key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "cert.pem": cert.public_bytes(serialization.Encoding.PEM),
        "cert.der": cert.public_bytes(serialization.Encoding.DER),
    }
    for form, data in forms.items():
        (tmp_path / form).write_bytes(data)
        code, out, err = run("quote", "verify", "--ak", str(tmp_path / form),
                             "-m", str(corpus_path(KEYLIME + "quote.out")),
                             "-s", str(corpus_path(KEYLIME + "quotesig.out")),
                             "--nonce", corpus_bytes(KEYLIME + "rand.out").hex())  # fmt: skip
        assert code == 0 and out.startswith("quote valid"), (form, err)
