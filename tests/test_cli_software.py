"""`secl software measure`: a manifest measured locally under a root, the Measurement XML on stdout.

Compared with what the installed ``secl-measure --no-extend --output -`` writes for the same tree (the
same engine behind two commands must agree byte for byte), and bad input ends with one stderr line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner

from secl.cli.main import cli
from secl.core.measurementlog import parse_measurement_xml
from tests.measure_command import run as secl_measure

UUID = "834076cd-f733-4cca-a417-113fac90adc7"
MANIFEST = (
    '<Manifest xmlns="lib:wml:manifests:1.0" Label="app" Uuid="' + UUID + '" DigestAlg="SHA384">'
    '<Dir Path="/opt/app" Include=".*" Exclude=""/><File Path="/opt/app/run"/><File Path="/opt/app/gone"/>'
    "</Manifest>"
)


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/run").write_bytes(b"#!/bin/sh\n")
    manifest = tmp_path / "app.xml"
    manifest.write_text(MANIFEST)
    return root, manifest


def test_measure_prints_what_secl_measure_writes(tmp_path: Path) -> None:
    root, manifest = _tree(tmp_path)
    result = CliRunner().invoke(
        cli, ["software", "measure", str(manifest), "--root", str(root), "--skip-missing"]
    )
    assert result.exit_code == 0, result.output
    xml = result.stdout.strip()
    log = parse_measurement_xml(xml)
    assert [e.path for e in log.entries] == ["/opt/app", "/opt/app/run"]
    assert log.entries[1].digest == hashlib.sha384(b"#!/bin/sh\n").hexdigest()
    assert "/opt/app/gone does not exist" in result.stderr
    other = secl_measure(
        "--manifest", manifest, "--root", root, "--no-extend", "--output", "-", "--skip-missing"
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == xml


def test_measure_errors_are_one_line(tmp_path: Path) -> None:
    root, manifest = _tree(tmp_path)
    missing = CliRunner().invoke(cli, ["software", "measure", str(manifest), "--root", str(root)])
    assert missing.exit_code == 3
    assert missing.stderr == "secl: error: [path-missing] /opt/app/gone: no such file or directory\n"
    manifest.write_text('<!DOCTYPE x [<!ENTITY e "a">]>' + MANIFEST)
    hostile = CliRunner().invoke(cli, ["software", "measure", str(manifest), "--root", str(root)])
    assert hostile.exit_code == 3 and hostile.stderr.count("\n") == 1
    assert "manifest-xml-forbidden" in hostile.stderr
