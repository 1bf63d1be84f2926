"""`secl flavors verify`: the central's trust report, offline, on SecL's own evidence.

The proof is tests/test_rules_secl_interop.py's: the corpus cases UnknownVendor and vmware12 (host manifest,
signed flavors, anchors, and the Java HVS's trust report as ground truth). Through the command, each part
SecL reported lists the same rules in the same order, every rule but FlavorTrusted/AikCertificateTrusted
has SecL's verdict, and those two fail with the faults the interop test explains (SecL's signatures cannot
be reproduced; the corpus AIK chains to no CA it ships). The whole JSON is the core's report for the same
inputs, the one the central's verifier builds. Flavors we sign are trusted (exit 0), and a tampered
manifest or flavor fails with the named fault (exit 1).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.cli.main import cli
from secl.core.flavorsign import sign_flavor
from secl.core.rules import bare_name
from secl.core.trustreport import build_trust_report
from tests.corpus import corpus_bytes, corpus_path
from tests.secl_interop import AT, BASE
from tests.secl_interop import anchors as _anchors
from tests.secl_interop import load as _load
from tests.secl_interop import make_cert as _cert

APART = {"FlavorTrusted", "AikCertificateTrusted"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["flavors", "verify", *args])
    return result.exit_code, result.stdout, result.stderr


def _case_args(case: str, manifest: Path | None = None, flavors: Path | None = None) -> list[str]:
    path = lambda name: str(corpus_path(f"{BASE}/{case}/{name}"))  # noqa: E731
    return [
        "--manifest", str(manifest or path("host_manifest.json")),
        "--flavors", str(flavors or path("signed_flavors.json")),
        "--privacy-ca", path("PrivacyCA.pem"),
        "--flavor-signer", path("flavor-signer.crt.pem"),
        "--flavor-ca", path("cms-ca-cert.pem"),
        "--tag-ca", path("tag-cacerts.pem"),
        "--at", AT[case].isoformat(),
    ]  # fmt: skip


def _faults(rules: list[dict[str, Any]]) -> set[str]:
    return {bare_name(f["fault_name"]) for r in rules for f in r.get("faults") or ()}


@pytest.mark.parametrize("case", ["UnknownVendor", "vmware12"])
def test_corpus_cases_give_the_interop_test_s_rules_and_verdicts(case: str) -> None:
    code, out, err = run(*_case_args(case), "--json")
    assert code == 1, err  # SecL's signatures cannot be checked (and, for UnknownVendor, its AIK)
    doc = json.loads(out)
    manifest, flavors, secl_doc = _load(case)
    core = build_trust_report(flavors, manifest, _anchors(case))
    # The central's verifier judges through the same core call: the command's report is that report.
    assert doc == {
        "trusted": False,
        "trust_report": json.loads(json.dumps(core.to_json())),
        "flavors_trust": json.loads(json.dumps(core.flavors_trust_json())),
    }
    for part, secl_part in secl_doc.items():
        secl_rules = secl_part["rules"]
        flavor_id = secl_rules[0]["flavor_id"]
        shown = doc["flavors_trust"][part]["rules"]
        # The flavor's own rules; AllOfFlavors is the part's policy result (SOFTWARE is ALL_OF), checked below.
        ours = [
            r
            for r in shown
            if r.get("flavor_id") == flavor_id and not r["rule"]["rule_name"].endswith(".AllOfFlavors")
        ]
        assert [bare_name(r["rule"]["rule_name"]) for r in ours] == [
            bare_name(r["rule"]["rule_name"]) for r in secl_rules
        ], part
        for mine, theirs in zip(ours, secl_rules, strict=True):
            if bare_name(mine["rule"]["rule_name"]) not in APART:
                assert mine["trusted"] == theirs["trusted"] is True, (part, mine["rule"]["rule_name"])
        expected = {"FlavorSignatureVerificationFailed"}
        if case == "UnknownVendor" and part != "SOFTWARE":
            expected.add("AikCertificateNotTrusted")
        assert _faults(ours) == expected, part
        if (
            part == "SOFTWARE"
        ):  # ALL_OF: each SOFTWARE flavor whose signature failed is missing from the whole
            assert _faults(shown) == expected | {"AllOfFlavorsMissing"}
    assert err.startswith("secl: error: the host is not trusted: ") and len(err.splitlines()) == 1


def _signed_setup(tmp_path: Path, case: str) -> tuple[list[str], list[Any], Any]:
    """The case's flavors (the parts SecL reported) signed with our key, and the files to name them."""
    manifest, flavors, secl_doc = _load(case)
    ca_key, signer_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca = _cert("Flavor CA", ca_key, ca_key, None, ca=True)
    signer = _cert("Flavor Signer", signer_key, ca_key, ca)
    ours = [sign_flavor(f.flavor, signer_key) for f in flavors if f.flavor.flavor_part in secl_doc]
    (tmp_path / "flavors.json").write_text(json.dumps([f.to_json() for f in ours]))
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (signer, ca))
    (tmp_path / "signer.pem").write_bytes(pem)
    args = [
        "--manifest", str(corpus_path(f"{BASE}/{case}/host_manifest.json")),
        "--flavors", str(tmp_path / "flavors.json"),
        "--flavor-signer", str(tmp_path / "signer.pem"),
        "--at", "2021-03-09T00:00:00+00:00",
    ]  # fmt: skip
    return args, [f.to_json() for f in ours], manifest


def test_flavors_we_sign_are_trusted_and_exit_0(tmp_path: Path) -> None:
    args, _, _ = _signed_setup(tmp_path, "vmware12")
    code, out, err = run(*args)
    assert (code, err) == (0, ""), out
    assert out.splitlines()[-1] == "host: TRUSTED"
    assert "PLATFORM: trusted (ANY_OF)" in out and "OS: trusted (ANY_OF)" in out
    code, out, _ = run(*args, "--json")
    assert code == 0 and json.loads(out)["trusted"] is True


def test_a_tampered_manifest_fails_with_the_named_fault(tmp_path: Path) -> None:
    args, _, _ = _signed_setup(tmp_path, "vmware12")
    doc = json.loads(corpus_bytes(f"{BASE}/vmware12/host_manifest.json"))
    pcr = next(p for p in doc["pcr_manifest"]["sha1pcrs"] if p["index"] == "pcr_0")
    pcr["value"] = "ab" * 20
    (tmp_path / "tampered.json").write_text(json.dumps(doc))
    args[args.index("--manifest") + 1] = str(tmp_path / "tampered.json")
    code, out, err = run(*args, "--json")
    assert code == 1
    platform = json.loads(out)["flavors_trust"]["PLATFORM"]
    assert platform["trust"] is False
    (fault,) = [f for r in platform["rules"] for f in r.get("faults") or ()]
    assert bare_name(fault["fault_name"]) == "PcrValueMismatchSHA1"
    assert (fault["pcr_index"], fault["actual_pcrvalue"]) == (0, "ab" * 20)
    assert err == "secl: error: the host is not trusted: PcrValueMismatchSHA1\n"
    code, out, _ = run(*args)
    assert code == 1 and "PcrValueMismatchSHA1: " in out and "host: UNTRUSTED" in out


def test_a_tampered_flavor_fails_flavor_trusted(tmp_path: Path) -> None:
    args, signed, _ = _signed_setup(tmp_path, "vmware12")
    platform = next(s for s in signed if s["flavor"]["meta"]["description"]["flavor_part"] == "PLATFORM")
    platform["flavor"]["pcrs"][0]["measurement"] = "cd" * 20  # what a forger would accept
    (tmp_path / "flavors.json").write_text(json.dumps(signed))
    code, out, _ = run(*args, "--json")
    assert code == 1
    faults = _faults(json.loads(out)["flavors_trust"]["PLATFORM"]["rules"])
    assert faults == {"FlavorSignatureNotTrusted", "PcrValueMismatchSHA1"}


def test_a_host_whose_os_names_no_vendor_cannot_be_judged(tmp_path: Path) -> None:
    doc = json.loads(corpus_bytes(f"{BASE}/UnknownVendor/host_manifest.json"))
    doc["host_info"]["os_name"] = ""
    (tmp_path / "blank.json").write_text(json.dumps(doc))
    code, out, err = run(*_case_args("UnknownVendor", manifest=tmp_path / "blank.json"), "--json")
    assert code == 1
    assert json.loads(out)["error"] == "vendor-undetermined"
    assert err.startswith("secl: error: the host cannot be judged: ") and "[vendor-undetermined]" in err


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"--manifest": "not json"}, 3, "host manifest"),
        ({"--flavors": "[1]"}, 3, "signed flavor [0]"),
        ({"--flavors": "[]"}, 3, "no signed flavor"),
        ({"--privacy-ca": "no pem here"}, 3, "Privacy CA"),
        ({"--at": None}, 2, "ISO 8601"),
    ],
)
def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, change: dict[str, str | None], status: int, message: str
) -> None:
    args = _case_args("UnknownVendor")
    for option, content in change.items():
        if content is None:
            args[args.index(option) + 1] = "yesterday"
            continue
        bad = tmp_path / "bad"
        bad.write_text(content)
        args[args.index(option) + 1] = str(bad)
    code, out, err = run(*args)
    assert code == status, (out, err)
    lines = err.strip().splitlines()
    assert message in err and "Traceback" not in out + err
    if status == 3:
        assert len(lines) == 1 and lines[0].startswith("secl: error: ")


def test_missing_file_and_signer_without_ca(tmp_path: Path) -> None:
    args = _case_args("UnknownVendor")
    args[args.index("--manifest") + 1] = str(tmp_path / "absent.json")
    code, _, err = run(*args)
    assert code == 3 and "no such file" in err
    lone = tmp_path / "signer.pem"
    lone.write_bytes(
        corpus_bytes(f"{BASE}/UnknownVendor/flavor-signer.crt.pem").split(b"-----END CERTIFICATE-----")[0]
        + b"-----END CERTIFICATE-----\n"
    )
    args = _case_args("UnknownVendor")
    args = args[: args.index("--flavor-ca")] + args[args.index("--flavor-ca") + 2 :]
    args[args.index("--flavor-signer") + 1] = str(lone)
    code, _, err = run(*args)
    assert code == 2 and "--flavor-ca" in err


def test_help_explains_inputs_anchors_and_exit_statuses() -> None:
    result = CliRunner().invoke(cli, ["flavors", "verify", "--help"])
    assert result.exit_code == 0
    for phrase in ("host manifest", "signed flavors", "ANY_OF", "--privacy-ca", "Exit status: 0 trusted",
                   "3 an input cannot be read", "UNKNOWN"):  # fmt: skip
        assert phrase in result.stdout, phrase


def test_the_offline_command_loads_no_central_agent_or_flask() -> None:
    script = (
        "import sys\n"
        "from secl.cli.main import main\n"
        "try:\n"
        f"    main({['flavors', 'verify', *_case_args('vmware12'), '--json']!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'flask' or (m + '.').startswith(('secl.central.', 'secl.trustagent.')))\n"
        "assert not loaded, loaded\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("clean"), done.stderr


def test_evaluation_time_matters() -> None:
    # The same inputs judged today: the certificates have expired since, and the command says so.
    args = _case_args("vmware12")
    args[args.index("--at") + 1] = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).isoformat()
    code, out, _ = run(*args, "--json")
    assert code == 1
    assert "not valid" in json.dumps(json.loads(out)["flavors_trust"]["PLATFORM"])
