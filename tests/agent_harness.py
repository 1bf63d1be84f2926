"""A provisioned trust agent serving a swtpm that holds a real firmware's measurements, for central tests.

:func:`provision_agent` does what an operator does on a compute host: trusts the swtpm's EK CA at the
central (``POST /hvs/v2/endorsement-cas``), extends the corpus OVMF log's digests into the swtpm's PCRs (as
the firmware did during boot), runs ``secl-trustagent setup`` with an enrollment token (TLS certificate for
``localhost``, AIK certified by the central's Privacy CA) and starts ``secl-trustagent run`` (mTLS, on
127.0.0.1) with host info read from corpus data. :meth:`ProvisionedAgent.reboot_with` stops the agent,
extends extra measurements (a changed boot component), and starts it again.

The helpers of tests/agent_process.py and tests/firmware_boot.py are reused, not copied.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter
from secl.trustagent.hostinfo import SECURE_BOOT_VARIABLE
from tests.agent_process import (
    RunningAgent,
    admin_headers,
    agent,
    agent_env,
    enrollment_token,
    free_port,
    setup_args,
    start_agent,
    trust_the_swtpm_ek_ca,
)
from tests.central_fixtures import CentralState
from tests.corpus import corpus_path
from tests.firmware_boot import HOSTINFO, OVMF_LOG, boot
from tests.live_central import LiveCentral
from tests.swtpm import RunningSwtpm

__all__ = [  # admin_headers is re-exported: the e2e tests take it from here
    "CHANGED_BOOT",
    "HARDWARE_UUID",
    "ProvisionedAgent",
    "admin_headers",
    "api",
    "efi_variables",
    "golden",
    "provision_agent",
    "short_work",
]

#: The hardware UUID in the corpus's SMBIOS table (hostinfo test data "whitley").
HARDWARE_UUID = "88888888-8887-1615-0115-071ba5a5a5a5"
#: Digests of a changed boot component for :meth:`ProvisionedAgent.reboot_with` (the tests put them in PCR 4).
CHANGED_BOOT = {HashAlg.SHA1: b"\x04" * 20, HashAlg.SHA256: b"\x04" * 32}


@dataclass
class ProvisionedAgent:
    env: dict[str, str]
    work: Path  # short directory for the readiness socket
    port: int
    tcti: str
    running: RunningAgent

    @property
    def connection_string(self) -> str:
        # The agent's TLS certificate names "localhost" (setup --host localhost): the central checks it.
        return f"intel:https://localhost:{self.port}"

    def stop(self) -> None:
        process = self.running.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start(self) -> None:
        (self.work / "notify").unlink(missing_ok=True)
        self.running = start_agent(self.env, self.work, self.port)

    def reboot_with(self, pcr: int, digests: dict[HashAlg, bytes]) -> None:
        """Stop the agent, extend ``pcr`` with ``digests`` (a measurement the log does not show), restart."""
        self.stop()  # the swtpm serves one connection at a time: the agent must let go of it
        with TPMAdapter(self.tcti) as tpm:
            tpm.extend_pcr(pcr, digests)
        self.start()

    def output(self) -> str:
        return self.running.output()


def efi_variables(directory: Path, *, secure_boot: bool) -> Path:
    """An efivarfs-like folder with the SecureBoot variable (4 bytes of attributes, then 0 or 1)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SECURE_BOOT_VARIABLE).write_bytes(b"\x06\x00\x00\x00" + bytes([int(secure_boot)]))
    return directory


def provision_agent(
    live: LiveCentral,
    central: CentralState,
    swtpm: RunningSwtpm,
    tmp_path: Path,
    work: Path,
    *,
    secure_boot: bool = True,
    event_log: str = OVMF_LOG,
) -> ProvisionedAgent:
    """Provision and start the agent; with ``secure_boot`` its host info says Secure Boot is on, so the
    UEFI Secure Boot default template (PCRs 0, 2, 3, 4, 6, 7) applies besides the UEFI one. ``event_log``
    (a corpus path) is the firmware log the swtpm's PCRs are extended from and the agent serves."""
    port = free_port()
    efivars = efi_variables(tmp_path / "efivars", secure_boot=secure_boot)
    env = agent_env(
        tmp_path, swtpm.tcti, listen=f"127.0.0.1:{port}", event_log_path=str(corpus_path(event_log)),
        os_release=str(corpus_path(f"{HOSTINFO}/os-release")), dmi_table_path=str(corpus_path(f"{HOSTINFO}/DMI")),
        efi_dir=str(tmp_path), efi_vars_dir=str(efivars), msr_path=str(tmp_path / "no-msr"),
        host_name="localhost",
    )  # fmt: skip
    trust_the_swtpm_ek_ca(live, central, swtpm)
    setup = agent(env, *setup_args(live, central, enrollment_token(live, central)))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    boot(swtpm.tcti, corpus_path(event_log).read_bytes())
    return ProvisionedAgent(env, work, port, swtpm.tcti, start_agent(env, work, port))


def api(
    live: LiveCentral, headers: dict[str, str], method: str, path: str, **kwargs: object
) -> requests.Response:
    return requests.request(method, f"{live.url}{path}", headers=headers, verify=live.ca_file, timeout=120,
                            **kwargs)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def short_work() -> Iterator[Path]:
    """A short temporary directory: the agent's readiness socket path must fit in 108 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="secl-agent-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def golden(
    live_central: LiveCentral,
    central_state: CentralState,
    swtpm: RunningSwtpm,
    tmp_path: Path,
    short_work: Path,
) -> Iterator[ProvisionedAgent]:
    """A provisioned, running agent on a swtpm that booted the OVMF log (the golden host of the tests)."""
    provisioned = provision_agent(live_central, central_state, swtpm, tmp_path, short_work)
    try:
        yield provisioned
    finally:
        provisioned.stop()
        output = provisioned.output()
        assert "Traceback" not in output, output
