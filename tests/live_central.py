"""The central under real gunicorn over TLS, as secl-central.service runs it, for tests that talk HTTPS.

``start_central(config)`` writes the configuration to a TOML file, starts
``python -m gunicorn --config python:secl.central.gunicorn_conf secl.central.wsgi:app`` on a free loopback
port with ``NOTIFY_SOCKET`` pointing at a datagram socket bound here, and returns once gunicorn sends
``READY=1`` — the same readiness systemd waits for with ``Type=notify``. Stopping sends SIGTERM and
expects a clean exit (status 0) within a few seconds, like ``systemctl stop``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from secl.central.config import ENV_PREFIX, CentralConfig
from secl.central.keyfiles import KeyFiles
from tests.central_fixtures import CentralState

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "python:secl.central.gunicorn_conf"]
WSGI_APP = "secl.central.wsgi:app"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(config: CentralConfig) -> str:
    def value(v: object) -> str:
        if isinstance(v, bool):  # before int: bool is an int, and TOML spells it true/false
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f"{key} = {value(v)}\n" for key, v in config.to_mapping().items())


@dataclass
class LiveCentral:
    """A running gunicorn serving the central; ``stop()`` returns its exit status."""

    url: str
    ca_file: Path
    config: CentralConfig
    process: subprocess.Popen[bytes]
    log: Path
    notifications: list[str] = field(default_factory=list)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"gunicorn did not exit within {timeout} s of SIGTERM:\n{self.output()}")
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(notify: socket.socket, process: subprocess.Popen[bytes], log: Path) -> list[str]:
    """Collect sd_notify datagrams until one says READY=1; fail if gunicorn exits or takes too long."""
    received: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    notify.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode} before READY=1:\n{log.read_text()}")
            continue
        received.append(message)
        if "READY=1" in message.split("\n"):
            return received
    process.kill()
    process.wait()
    pytest.fail(f"no READY=1 from gunicorn within {READY_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture
def start_central() -> Iterator[Callable[[CentralConfig], LiveCentral]]:
    """Start any number of gunicorn-served centrals (e.g. two on one PostgreSQL); all stop at teardown."""
    started: list[LiveCentral] = []
    # Short, private directory: a unix socket path must fit in 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="secl-live-"))

    def start(config: CentralConfig) -> LiveCentral:
        index = len(started)
        port = _free_port()
        config = replace(config, listen=f"127.0.0.1:{port}")
        config_file = workdir / f"central-{index}.toml"
        config_file.write_text(_toml(config))
        notify_path = workdir / f"notify-{index}"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = {k: v for k, v in os.environ.items() if not k.startswith((ENV_PREFIX, "GUNICORN_"))}
        env |= {f"{ENV_PREFIX}CONFIG": str(config_file), "NOTIFY_SOCKET": str(notify_path)}
        log = workdir / f"gunicorn-{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([*GUNICORN, WSGI_APP], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            messages = _wait_ready(notify, process, log)
        finally:
            notify.close()
        live = LiveCentral(
            url=f"https://127.0.0.1:{port}",
            ca_file=KeyFiles(config.keys_dir).root_ca_cert,
            config=config,
            process=process,
            log=log,
            notifications=messages,
        )
        started.append(live)
        return live

    yield start
    try:
        for live in started:
            status = live.stop()
            assert status == 0, f"gunicorn exited with {status} after SIGTERM:\n{live.output()}"
            assert "Traceback" not in live.output(), live.output()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def live_central(
    central_state: CentralState, start_central: Callable[[CentralConfig], LiveCentral]
) -> LiveCentral:
    """The set-up central of ``central_state`` (SQLite or PostgreSQL) served by real gunicorn over TLS."""
    return start_central(central_state.config)
