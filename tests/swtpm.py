"""pytest fixtures for a real TPM 2.0: swtpm, manufactured once per session with a project-local EK CA.

``swtpm_state`` runs swtpm_setup once (about 1.3 s) into a session temp dir, exactly as
../shared/PLATFORM-NOTES.md shows: absolute paths, swtpm_localca with its own CA folder, sha1 and sha256
banks, EK and platform certificates. ``swtpm_tcti`` copies that state into a fresh temp dir per test,
starts ``swtpm socket`` on free ports, yields ``swtpm:host=127.0.0.1,port=N`` and kills it afterwards, so
every test starts from a just-manufactured TPM with reset PCRs and no objects left loaded.

A missing swtpm is a failure, never a skip: tests that need a TPM must not pass without one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_TOOLS = ("swtpm", "swtpm_setup", "swtpm_localca")


@dataclass(frozen=True)
class SwtpmState:
    """A manufactured TPM state folder and the CA folder that issued its EK certificates."""

    state_dir: Path
    ca_dir: Path


@dataclass(frozen=True)
class RunningSwtpm:
    """A running swtpm: the TCTI string tpm2-pytss and tpm2-tools take, its ports and its state folder."""

    tcti: str
    port: int
    ctrl_port: int
    state_dir: Path
    ca_dir: Path


def _require_tools() -> None:
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: install Debian packages swtpm and swtpm-tools "
            "(see ../shared/PLATFORM-NOTES.md); swtpm tests never skip",
            pytrace=False,
        )


def manufacture(work: Path) -> SwtpmState:
    """Run swtpm_setup into ``work`` (absolute) with a local CA; return the state and CA folders."""
    work = work.resolve()
    ca, state = work / "ca", work / "tpm"
    ca.mkdir(parents=True)
    state.mkdir()
    (work / "swtpm-localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n"
        f"certserial = {ca}/certserial\n"
    )
    (work / "swtpm_setup.conf").write_text(
        "create_certs_tool = /usr/bin/swtpm_localca\n"
        f"create_certs_tool_config = {work}/swtpm-localca.conf\n"
        "create_certs_tool_options = /etc/swtpm-localca.options\n"
        "active_pcr_banks = sha1,sha256\n"
    )
    cmd = [
        "swtpm_setup",
        "--config",
        str(work / "swtpm_setup.conf"),
        "--tpm2",
        "--tpmstate",
        str(state),
        "--create-ek-cert",
        "--create-platform-cert",
        "--overwrite",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"swtpm_setup failed ({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False
        )
    return SwtpmState(state, ca)


def _free_port_pair() -> int:
    """Return a free port N with N+1 free too: the swtpm TCTI always looks for the control port at N+1."""
    for _ in range(50):
        with socket.socket() as server, socket.socket() as ctrl:
            server.bind(("127.0.0.1", 0))
            port = server.getsockname()[1]
            try:
                ctrl.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free TCP ports on 127.0.0.1")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"swtpm exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"swtpm did not listen on port {port} within 10 s")


def start_swtpm(state: SwtpmState, work: Path) -> tuple[subprocess.Popen[bytes], RunningSwtpm]:
    """Copy ``state`` into ``work`` and start swtpm on free ports (retrying if a port got taken)."""
    tpm_dir = work.resolve() / "tpm"
    shutil.copytree(state.state_dir, tpm_dir)
    last_error: Exception | None = None
    for _ in range(5):
        port = _free_port_pair()
        ctrl = port + 1
        log = work.resolve() / f"swtpm-{port}.log"
        cmd = [
            "swtpm",
            "socket",
            "--tpm2",
            "--tpmstate",
            f"dir={tpm_dir}",
            "--server",
            f"type=tcp,port={port},bindaddr=127.0.0.1",
            "--ctrl",
            f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
            "--flags",
            "not-need-init,startup-clear",
            "--log",
            f"file={log}",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening(port, proc, log)
        except RuntimeError as exc:
            last_error = exc
            _stop(proc)
            continue
        tcti = f"swtpm:host=127.0.0.1,port={port}"
        return proc, RunningSwtpm(tcti, port, ctrl, tpm_dir, state.ca_dir)
    pytest.fail(f"could not start swtpm: {last_error}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def swtpm_state(tmp_path_factory: pytest.TempPathFactory) -> SwtpmState:
    """One manufactured TPM state per test session (EK certificates from a local CA)."""
    _require_tools()
    return manufacture(tmp_path_factory.mktemp("swtpm-manufactured"))


@pytest.fixture
def swtpm(swtpm_state: SwtpmState, tmp_path: Path) -> Iterator[RunningSwtpm]:
    """A fresh swtpm for this test, started from a copy of the manufactured state."""
    work = tmp_path / "swtpm"
    work.mkdir()
    proc, running = start_swtpm(swtpm_state, work)
    try:
        yield running
    finally:
        _stop(proc)


@pytest.fixture
def swtpm_tcti(swtpm: RunningSwtpm) -> str:
    """The TCTI string of a fresh swtpm: ``swtpm:host=127.0.0.1,port=N``."""
    return swtpm.tcti
