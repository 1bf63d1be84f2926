"""The installed ``secl-measure`` command: XML out, PCR 15 extended in a real swtpm, the event logged.

PCR 15 is read back with tpm2-tools' ``tpm2_pcrread`` (the independent side) and compared with the replay
of the event log the command wrote. Hostile inputs must end with exactly one ``secl-measure: error:``
line on stderr and a non-zero exit. The unreadable-file case needs a process that cannot bypass file
modes: as root, the command runs under ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from secl.core.appeventlog import parse_event_log, replay
from secl.core.measurementlog import parse_measurement_xml
from secl.core.pcrevents import PcrRef
from tests.corpus import corpus_path
from tests.measure_command import run
from tests.tpm2tools import parse_pcrs_section, require_tool

UUID_A = "834076cd-f733-4cca-a417-113fac90adc7"
UUID_B = "7a9ac586-40f9-43b2-976b-26667431efca"


def manifest_file(path: Path, body: str, uuid: str = UUID_A, label: str = "app") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><Manifest xmlns="lib:wml:manifests:1.0" Label="{label}" '
        f'Uuid="{uuid}" DigestAlg="SHA384">{body}</Manifest>'
    )
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "sysroot"
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/bin/app").write_bytes(b"application")
    (root / "opt/app/bin/run.sh").write_bytes(b"#!/bin/sh\n")
    return root


def one_error_line(result: subprocess.CompletedProcess[str], code: str, status: int = 3) -> str:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("secl-measure: error: "), lines[0]
    assert f"[{code}]" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_explains_the_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for words in (
        "--manifest-dir",
        "--root",
        "--no-extend",
        "PCR 15",
        "APPLICATION_AGENT_MEASUREMENT",
        "Exit status",
    ):
        assert words in result.stdout


def test_stdout_output_without_extend(root: Path, tmp_path: Path) -> None:
    manifest = manifest_file(tmp_path / "m.xml", '<File Path="/opt/app/bin/app"/><Dir Path="/opt/app/bin"/>')
    result = run("--manifest", manifest, "--root", root, "--output", "-", "--no-extend")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress output when stderr is not a terminal
    log = parse_measurement_xml(result.stdout.strip())
    file_digest = hashlib.sha384(b"application").digest()
    dir_digest = hashlib.sha384(b"app\nrun.sh\n").digest()
    assert [(e.path, e.digest) for e in log.entries] == [
        ("/opt/app/bin/app", file_digest.hex()),
        ("/opt/app/bin", dir_digest.hex()),
    ]
    chained = hashlib.sha384(hashlib.sha384(bytes(48) + file_digest).digest() + dir_digest).hexdigest()
    assert log.cumulative_hash == chained
    assert not (tmp_path / "measure-log.json").exists()


def _pcr15(tcti: str) -> dict[str, str]:
    tool = require_tool("tpm2_pcrread")
    out = subprocess.run(
        [tool, "sha1:15+sha256:15"], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "TPM2TOOLS_TCTI": tcti},
    ).stdout  # fmt: skip
    return {bank.bank_name: regs[15].hex() for bank, regs in parse_pcrs_section("pcrs:\n" + out).items()}


@pytest.mark.swtpm
def test_extends_pcr15_and_logs_events_that_replay(root: Path, tmp_path: Path, swtpm_tcti: str) -> None:
    manifests = tmp_path / "manifests"
    manifest_file(manifests / "a.xml", '<File Path="/opt/app/bin/app"/>', UUID_A, "first")
    manifest_file(manifests / "b.xml", '<Dir Path="/opt/app/bin" Include="\\.sh$"/>', UUID_B, "second")
    (manifests / "notes.txt").write_text("not a manifest")
    out, log_path = tmp_path / "run/measurements", tmp_path / "run/measure-log.json"
    before = _pcr15(swtpm_tcti)
    result = run(
        "--manifest-dir",
        manifests,
        "--root",
        root,
        "--output",
        out,
        "--event-log",
        log_path,
        "--tcti",
        swtpm_tcti,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and "PCR 15 (SHA256) extended" in result.stdout

    xmls = [parse_measurement_xml((out / f"measurement_{u}.xml").read_text()) for u in (UUID_A, UUID_B)]
    assert [x.label for x in xmls] == ["first", "second"]
    for path in (out / f"measurement_{UUID_A}.xml", log_path):
        assert stat.S_IMODE(path.stat().st_mode) & 0o137 == 0, oct(path.stat().st_mode)  # 0640 or tighter

    logs = parse_event_log(log_path.read_bytes())
    events = logs[0].events
    assert [e.tags for e in events] == [(f"first-{UUID_A}",), (f"second-{UUID_B}",)]
    assert [e.type_id for e in events] == ["0x90000001"] * 2
    assert [e.measurement for e in events] == [
        hashlib.sha256(bytes.fromhex(x.cumulative_hash)).hexdigest() for x in xmls
    ]
    after = _pcr15(swtpm_tcti)
    assert before == {"sha1": "00" * 20, "sha256": "00" * 32}
    assert after["sha256"] == replay(logs)[PcrRef(15, "SHA256")].hex()
    assert after["sha1"] == "00" * 20  # SecL extends the SHA-256 bank only

    # The next boot's second run appends (same /run): the log still replays to the PCR.
    again = run(
        "--manifest",
        manifests / "a.xml",
        "--root",
        root,
        "--output",
        out,
        "--event-log",
        log_path,
        "--tcti",
        swtpm_tcti,
    )
    assert again.returncode == 0, again.stderr
    logs = parse_event_log(log_path.read_bytes())
    assert len(logs[0].events) == 3
    assert _pcr15(swtpm_tcti)["sha256"] == replay(logs)[PcrRef(15, "SHA256")].hex()
    assert json.loads(log_path.read_bytes())[0]["pcr"] == {"index": 15, "bank": "SHA256"}


@pytest.mark.swtpm
def test_corpus_default_manifest_without_uuid_is_refused(tmp_path: Path, swtpm_tcti: str) -> None:
    default = corpus_path("intel-secl/build/linux/tagent/manifest_tpm20.xml")
    result = run(
        "--manifest", default, "--root", tmp_path, "--event-log", tmp_path / "log.json", "--tcti", swtpm_tcti
    )
    one_error_line(result, "manifest-uuid-missing")
    assert not (tmp_path / "log.json").exists()
    assert _pcr15(swtpm_tcti)["sha256"] == "00" * 32


def test_unreachable_tpm_is_exit_4(root: Path, tmp_path: Path) -> None:
    manifest = manifest_file(tmp_path / "m.xml", '<File Path="/opt/app/bin/app"/>')
    result = run(
        "--manifest",
        manifest,
        "--root",
        root,
        "--output",
        tmp_path / "out.xml",
        "--tcti",
        "swtpm:host=127.0.0.1,port=1",
    )
    assert result.returncode == 4
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(
        "secl-measure: error: cannot open the TPM"
    )


def test_usage_errors_are_exit_2(tmp_path: Path) -> None:
    assert run("--root", tmp_path, "--no-extend").returncode == 2
    manifest = manifest_file(tmp_path / "m.xml", "")
    assert run("--manifest", manifest, "--manifest-dir", tmp_path, "--no-extend").returncode == 2


HOSTILE = {
    "entities": (
        '<?xml version="1.0"?><!DOCTYPE Manifest [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<Manifest Label="&b;" Uuid="{UUID_A}" DigestAlg="SHA384"/>',
        "manifest-xml-forbidden",
    ),
    "external-entity": (
        '<?xml version="1.0"?><!DOCTYPE Manifest [<!ENTITY x SYSTEM "file:///etc/shadow">]>'
        f'<Manifest Label="&x;" Uuid="{UUID_A}" DigestAlg="SHA384"/>',
        "manifest-xml-forbidden",
    ),
    "huge": (
        f'<Manifest Label="a" Uuid="{UUID_A}" DigestAlg="SHA384">'
        + '<File Path="/a"/>' * 300_000
        + "</Manifest>",
        "manifest-too-large",
    ),
    "escaping-path": (
        f'<Manifest Label="a" Uuid="{UUID_A}" DigestAlg="SHA384"><File Path="/opt/../../etc/passwd"/></Manifest>',
        "path-escapes-root",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_manifests(case: str, root: Path, tmp_path: Path) -> None:
    text, code = HOSTILE[case]
    (tmp_path / "m.xml").write_text(text)
    result = run(
        "--manifest", tmp_path / "m.xml", "--root", root, "--output", tmp_path / "out.xml", "--no-extend"
    )
    one_error_line(result, code)
    assert not (tmp_path / "out.xml").exists()


def test_hostile_trees(root: Path, tmp_path: Path) -> None:
    (root / "opt/loop").symlink_to("loop")
    (root / "opt/up").symlink_to("../../../../../../../../../etc/passwd")
    cases = {
        '<File Path="/opt/loop"/>': "symlink-loop",
        '<File Path="/opt/up"/>': "path-escapes-root",
        '<File Path="/opt/missing"/>': "path-missing",
    }
    for body, code in cases.items():
        manifest = manifest_file(tmp_path / "m.xml", body)
        line = one_error_line(
            run("--manifest", manifest, "--root", root, "--output", "-", "--no-extend"), code
        )
        assert str(manifest) in line


def test_skip_missing_warns_and_measures_the_rest(root: Path, tmp_path: Path) -> None:
    manifest = manifest_file(tmp_path / "m.xml", '<File Path="/opt/missing"/><File Path="/opt/app/bin/app"/>')
    result = run("--manifest", manifest, "--root", root, "--output", "-", "--no-extend", "--skip-missing")
    assert result.returncode == 0
    assert result.stderr == f"secl-measure: warning: {manifest}: /opt/missing does not exist; left out\n"
    assert [e.path for e in parse_measurement_xml(result.stdout.strip()).entries] == ["/opt/app/bin/app"]


def test_one_bad_manifest_does_not_stop_the_others(root: Path, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifest_file(manifests / "a.xml", '<File Path="/opt/missing"/>', UUID_A)
    manifest_file(manifests / "b.xml", '<File Path="/opt/app/bin/app"/>', UUID_B)
    result = run("--manifest-dir", manifests, "--root", root, "--output", tmp_path / "out", "--no-extend")
    one_error_line(result, "path-missing")
    assert (tmp_path / f"out/measurement_{UUID_B}.xml").is_file()
    assert not (tmp_path / f"out/measurement_{UUID_A}.xml").exists()


def test_unreadable_file_and_directory(root: Path, tmp_path: Path) -> None:
    (root / "opt/app/bin/app").chmod(0)
    (root / "opt/locked").mkdir(mode=0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (Debian package util-linux) is needed to drop root's file-mode override")
        caps = "-dac_override,-dac_read_search"
        prefix = (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")
    for body, path in (
        ('<File Path="/opt/app/bin/app"/>', "/opt/app/bin/app"),
        ('<Dir Path="/opt/locked"/>', "/opt/locked"),
    ):
        manifest = manifest_file(tmp_path / "m.xml", body)
        result = run("--manifest", manifest, "--root", root, "--output", "-", "--no-extend", prefix=prefix)
        line = one_error_line(result, "path-unreadable")
        assert path in line


def test_output_to_a_pipe_is_written_into_not_replaced(root: Path, tmp_path: Path) -> None:
    # Regression: an atomic rename onto --output /dev/null replaced the device node with a regular file.
    # A FIFO stands in for the device here, so a regression cannot damage the machine running the test.
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    manifest = manifest_file(tmp_path / "m.xml", '<File Path="/opt/app/bin/app"/>')
    result = run("--manifest", manifest, "--root", root, "--output", fifo, "--no-extend")
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert parse_measurement_xml(received[0]).entries[0].path == "/opt/app/bin/app"
