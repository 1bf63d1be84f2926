"""The trust agent as a real process: ``python -m secl.trustagent.cli`` in an isolated environment.

``agent_env`` gives it a configuration and state directory of its own (never the machine's
/etc/secl/trustagent.toml), ``agent`` runs one command, ``enrollment_token`` and ``setup_args`` are what
``setup`` needs from a live central, and ``start_agent`` runs ``run`` until it signals READY=1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral
from tests.swtpm import RunningSwtpm

AGENT = [sys.executable, "-m", "secl.trustagent.cli"]
READY_TIMEOUT = 60.0


def agent_env(tmp_path: Path, tcti: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECL_") and k != "NOTIFY_SOCKET"}
    config = tmp_path / "trustagent.toml"
    config.touch()  # never the machine's /etc/secl/trustagent.toml
    env |= {"SECL_TRUSTAGENT_CONFIG": str(config), "SECL_TRUSTAGENT_STATE_DIR": str(tmp_path / "state")}
    env |= {"SECL_TRUSTAGENT_TCTI": tcti}
    env |= {f"SECL_TRUSTAGENT_{key.upper()}": value for key, value in settings.items()}
    return env


def agent(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def enrollment_token(live: LiveCentral, central: CentralState, host: str = "localhost") -> str:
    login = requests.post(
        f"{live.url}/aas/v1/token",
        json={"username": central.admin_username, "password": central.admin_password},
        verify=live.ca_file,
        timeout=30,
    )
    assert login.status_code == 200, login.text
    minted = requests.post(
        f"{live.url}/cms/v1/enrollment-tokens",
        json={"host": host},
        headers={"Authorization": f"Bearer {login.json()['token']}"},
        verify=live.ca_file,
        timeout=30,
    )
    assert minted.status_code == 201, minted.text
    return minted.json()["token"]


def setup_args(live: LiveCentral, central: CentralState, token: str) -> list[str]:
    return ["setup", "--central", live.url, "--ca-fingerprint", central.root_ca_fingerprint,
            "--token", token, "--host", "localhost"]  # fmt: skip


def admin_headers(live: LiveCentral, central: CentralState) -> dict[str, str]:
    login = requests.post(
        f"{live.url}/aas/v1/token",
        json={"username": central.admin_username, "password": central.admin_password},
        verify=live.ca_file,
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


def trust_the_swtpm_ek_ca(live: LiveCentral, central: CentralState, swtpm: RunningSwtpm) -> None:
    for path in [*sorted(swtpm.ca_dir.glob("*rootca-cert.pem")), swtpm.ca_dir / "issuercert.pem"]:
        added = requests.post(
            f"{live.url}/hvs/v2/endorsement-cas",
            json={"certificate": path.read_text()},
            headers=admin_headers(live, central),
            verify=live.ca_file,
            timeout=30,
        )
        assert added.status_code == 201, added.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningAgent:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, url: str, notifications: list[str]):
        self.process, self.log, self.url, self.notifications = process, log, url, notifications

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(notify: socket.socket, process: subprocess.Popen[bytes], log: Path) -> list[str]:
    received: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    notify.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            received.append(notify.recv(4096).decode())
        except TimeoutError:
            if process.poll() is not None:
                pytest.fail(f"the agent exited with {process.returncode} before READY=1:\n{log.read_text()}")
            continue
        if "READY=1" in received[-1].split("\n"):
            return received
    process.kill()
    process.wait()
    pytest.fail(f"no READY=1 from the agent within {READY_TIMEOUT} s:\n{log.read_text()}")


def start_agent(env: dict[str, str], work: Path, port: int) -> RunningAgent:
    notify_path = work / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        log = work / "agent.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*AGENT, "run"],
                env=env | {"NOTIFY_SOCKET": str(notify_path)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        messages = _wait_ready(notify, process, log)
    return RunningAgent(process, log, f"https://localhost:{port}", messages)
