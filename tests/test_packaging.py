"""The one distribution: import names under `secl.*`, and extras that keep each host lean."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import requires
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _extra_requirements(extra: str) -> set[str]:
    names = set()
    for requirement in requires("secl") or []:
        if f'extra == "{extra}"' in requirement:
            names.add(
                requirement.split(";")[0]
                .split(">")[0]
                .split("<")[0]
                .split("=")[0]
                .split("[")[0]
                .strip()
                .lower()
            )
    return names


def test_compute_host_extras_do_not_pull_flask():
    for extra in ("trustagent", "workloadagent"):
        assert not {"flask", "gunicorn", "sqlalchemy"} & _extra_requirements(extra), extra


def test_central_extra_does_not_pull_libvirt():
    central = _extra_requirements("central")
    assert {"flask", "sqlalchemy", "alembic", "gunicorn"} <= central
    assert "libvirt-python" not in central and "dbus-next" not in central


def test_core_requirements_are_only_what_every_part_needs():
    core = {
        r.split(">")[0].split("<")[0].strip().lower() for r in requires("secl") or [] if "extra ==" not in r
    }
    # defusedxml: the core parses SecL manifest and measurement XML on the central and on compute hosts.
    assert core == {"cryptography", "asn1crypto", "tpm2-pytss", "click", "requests", "defusedxml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("secl-*.whl")
    return built


def test_wheel_installs_everything_under_the_secl_namespace(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"secl"}
    for module in (
        "secl/core/eventlog.py",
        "secl/central/__init__.py",
        "secl/host/tpm.py",
        "secl/workloadagent/__init__.py",
        "secl/hooks/libvirt/__init__.py",
        "secl/cli/main.py",
        "secl/wpm/cli.py",
        "secl/central/migrations/script.py.mako",
        "secl/central/central.example.toml",
        "secl/trustagent/trustagent.example.toml",
    ):
        assert module in names, module
    assert any(
        n.startswith("secl/central/flavortemplates/default_templates/") and n.endswith(".json") for n in names
    )
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_the_trust_agent_runs_without_flask():
    # A compute host installs no web framework: the agent's modules must not even import Flask.
    code = "import sys, secl.trustagent.cli, secl.trustagent.server; sys.exit('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
