"""The central as a service: the systemd unit, gunicorn over TLS with Type=notify readiness, two instances
on one PostgreSQL, the example configuration, and the unit started by a real systemd in systemd-nspawn."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import requests

import secl.central
from secl.central.config import CentralConfig, load_config
from tests.central_fixtures import CentralState
from tests.live_central import GUNICORN, WSGI_APP, LiveCentral

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "secl-central.service"
WORKER_UNIT = SYSTEMD / "secl-central-worker.service"
EXAMPLE_CONFIG = Path(secl.central.__file__).parent / "central.example.toml"


def _exec_start(unit: Path) -> list[str]:
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0].removeprefix("ExecStart="))


# --- the unit, sysusers and tmpfiles snippets ------------------------------------------------------------


@pytest.mark.parametrize("name", [UNIT.name, WORKER_UNIT.name])
def test_unit_passes_systemd_analyze_verify_without_any_warning(tmp_path: Path, name: str):
    unit = tmp_path / name
    shutil.copy(SYSTEMD / name, unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )
    # An unknown key only warns with exit status 0: any output on stderr is a failure.
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_systemd_analyze_verify_does_report_a_bad_key(tmp_path: Path):
    # Guards the test above: verify really reads our file and reports on stderr.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("[Service]\n", "[Service]\nNoSuchSetting=1\n"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )
    assert "NoSuchSetting" in result.stderr


def test_unit_runs_the_command_the_live_tests_run():
    # The live tests below start exactly this command line (with the venv's interpreter).
    argv = _exec_start(UNIT)
    assert argv[0] == "/usr/bin/python3" and Path(argv[0]).exists()
    assert argv[1:] == [*GUNICORN[1:], WSGI_APP]


def test_worker_unit_runs_secl_central_worker():
    argv = _exec_start(WORKER_UNIT)
    assert argv[0] == "/usr/bin/python3" and Path(argv[0]).exists()
    assert argv[1:] == ["-m", "secl.central.cli", "worker"]
    # Same state and user as the server: it signs reports with the central's keys.
    for key in ("User=secl", "StateDirectory=secl/central", "Type=notify", "NotifyAccess=main"):
        assert key in WORKER_UNIT.read_text().splitlines()


def test_sysusers_and_tmpfiles_create_the_user_and_state_directory(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    sysusers = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "secl-central.sysusers.conf")],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sysusers.returncode == 0, sysusers.stderr
    passwd = {
        line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    assert passwd["secl"][6] == "/usr/sbin/nologin"
    tmpfiles = subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(SYSTEMD / "secl-central.tmpfiles.conf")],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert tmpfiles.returncode == 0 and tmpfiles.stderr == "", tmpfiles.stderr
    state = (tmp_path / "var/lib/secl/central").stat()
    assert state.st_mode & 0o777 == 0o700
    assert state.st_uid == int(passwd["secl"][2])


# --- the example configuration -------------------------------------------------------------------------


def test_example_config_loads_and_equals_the_defaults():
    assert load_config(EXAMPLE_CONFIG, environ={}) == CentralConfig()


def test_example_config_documents_every_setting_with_its_default():
    # Every setting appears as a commented-out "#key = default" line; uncommented, they are the defaults.
    commented = "\n".join(
        line[1:] for line in EXAMPLE_CONFIG.read_text().splitlines() if line.startswith("#") and " = " in line
    )
    values = tomllib.loads(commented)
    assert set(values) == {f.name for f in fields(CentralConfig)}
    assert load_config(EXAMPLE_CONFIG, environ={}, overrides=values) == CentralConfig()


# --- gunicorn over TLS, SQLite and PostgreSQL ----------------------------------------------------------


def _token(live: LiveCentral, username: str, password: str) -> str:
    response = requests.post(
        f"{live.url}/aas/v1/token",
        json={"username": username, "password": password},
        verify=live.ca_file,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_gunicorn_serves_the_central_over_tls(live_central: LiveCentral, central_state: CentralState):
    assert any("READY=1" in message.split("\n") for message in live_central.notifications)

    # verify= on each request: a Session's .verify loses to $REQUESTS_CA_BUNDLE (psf/requests#3829).
    def get(path: str, **kwargs: object) -> requests.Response:
        return requests.get(f"{live_central.url}{path}", verify=live_central.ca_file, timeout=30, **kwargs)

    version = get("/aas/v1/version")
    assert version.status_code == 200 and version.json()["service"] == "AAS"

    token = _token(live_central, central_state.admin_username, central_state.admin_password)
    headers = {"Authorization": f"Bearer {token}"}
    roles = get("/aas/v1/roles", headers=headers)
    assert roles.status_code == 200 and "administrator" in {r["name"] for r in roles.json()}
    assert get("/aas/v1/users?name=query-secret", headers=headers).status_code == 200

    bad = requests.post(
        f"{live_central.url}/aas/v1/token",
        data=b'{"username": "admin", ',
        headers={"Content-Type": "application/json"},
        verify=live_central.ca_file,
        timeout=30,
    )
    assert 400 <= bad.status_code < 500
    assert bad.headers["Content-Type"].startswith("application/json") and bad.json()["code"]

    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{live_central.url}/aas/v1/version", timeout=30)  # not signed by a public CA

    assert live_central.stop() == 0
    log = live_central.output()
    assert '"GET /aas/v1/users HTTP/1.1" 200' in log
    assert "query-secret" not in log and token not in log


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_instances_on_one_postgresql_are_interchangeable(
    central_state: CentralState, start_central: Callable[[CentralConfig], LiveCentral]
):
    a, b = start_central(central_state.config), start_central(central_state.config)
    admin = {
        "Authorization": f"Bearer {_token(a, central_state.admin_username, central_state.admin_password)}"
    }
    created = requests.post(
        f"{a.url}/aas/v1/users",
        json={"username": "dave", "password": "a long enough password"},
        headers=admin,
        verify=a.ca_file,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    _token(b, "dave", "a long enough password")  # created through A, logs in through B
    # A token issued by A is honoured by B: both sign with the key set-up wrote.
    listed = requests.get(f"{b.url}/aas/v1/users", headers=admin, verify=b.ca_file, timeout=30)
    assert "dave" in {u["username"] for u in listed.json()}

    threshold = central_state.config.lockout_threshold
    for attempt in range(threshold):
        live = (a, b)[attempt % 2]
        failed = requests.post(
            f"{live.url}/aas/v1/token",
            json={"username": "dave", "password": "wrong"},
            verify=live.ca_file,
            timeout=30,
        )
        assert failed.status_code == 401, failed.text
    for live in (a, b):
        locked = requests.post(
            f"{live.url}/aas/v1/token",
            json={"username": "dave", "password": "a long enough password"},
            verify=live.ca_file,
            timeout=30,
        )
        assert locked.status_code == 423 and locked.json()["code"] == "account-locked"


# --- a real systemd in systemd-nspawn starts the unit --------------------------------------------------


class Container:
    """systemd booted in systemd-nspawn on a tmpfs root with the host's /usr (PLATFORM-NOTES)."""

    def __init__(self, nspawn: subprocess.Popen[bytes], log: Path) -> None:
        self.nspawn, self.log = nspawn, log
        self.pid = self._init_pid()

    def _init_pid(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                pytest.fail(f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.log.read_text()}")
            # nspawn forks a helper first, which starts the container's init and exits.
            for child in Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split():
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
                except FileNotFoundError:
                    continue
            time.sleep(0.05)
        pytest.fail(f"systemd-nspawn started no init:\n{self.log.read_text()}")

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-a", *argv],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            journal = self.run("journalctl", "--no-pager", "-u", "secl-central", check=False)
            pytest.fail(f"{argv} failed ({result.returncode}): {result.stdout}{result.stderr}\n{journal}")
        return result.stdout

    def wait_booted(self) -> None:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            # Empty until the container's systemd listens on its control socket, and "offline" or
            # "initializing" while it is still coming up (seen under load): keep waiting through those.
            state = self.run("systemctl", "is-system-running", "--wait", check=False).strip()
            if state not in ("", "offline", "initializing", "starting"):
                break
            time.sleep(0.1)
        assert state == "running", f"the container's systemd is {state!r}:\n{self.log.read_text()}"

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in out.splitlines())


def _container_python(code: str) -> list[str]:
    # The container has the host's /usr but not the venv's interpreter (under /root, which the unit's
    # ProtectHome hides): Debian's python3 runs with the venv's site-packages instead of its own.
    purelib = sysconfig.get_paths()["purelib"]
    return ["/usr/bin/python3", "-S", "-c", f"import site, sys; site.addsitedir({purelib!r}); {code}"]


def _systemd_command_line(argv: list[str]) -> str:
    # systemd's quoting is not the shell's: double quotes around words with spaces (no "$" or "%" here).
    assert not any(c in "".join(argv) for c in '"$%\\')
    return " ".join(f'"{word}"' if " " in word or "'" in word else word for word in argv)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    if os.geteuid() != 0:
        pytest.fail("systemd-nspawn needs root: run the test suite as root (as CI does)")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is not installed (Debian package systemd-container)")
    if not Path("/usr/bin/python3").exists() or subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip() != str(sys.version_info[:2]):
        pytest.fail(
            "the venv's Python differs from /usr/bin/python3 in its minor version, so the container cannot "
            "reuse its compiled packages: create .venv with the system's Python 3 minor version"
        )
    runner = _container_python(
        "sys.argv[0] = 'gunicorn'; import runpy; runpy.run_module('gunicorn', run_name='__main__')"
    )
    code_dirs = {REPO, Path(sysconfig.get_paths()["purelib"]).resolve()}
    dropin = tmp_path / "test.conf"
    # The code is bound into the container read-only; if it lies under /tmp (a CI clone), the unit's
    # PrivateTmp would hide it from the service, so the drop-in binds it into the service's view too.
    dropin.write_text(
        "[Service]\nExecStart=\nExecStart="
        + _systemd_command_line([*runner, *_exec_start(UNIT)[3:]])
        + "\n"
        + "BindReadOnlyPaths="
        + " ".join(str(d) for d in sorted(code_dirs))
        + "\n"
    )
    # /etc starts empty, so this is a first boot and presets would enable every unit — ours too (before
    # setup) and systemd-networkd-wait-online, which waits two minutes on the private network for nothing.
    preset = tmp_path / "00-secl-test.preset"
    preset.write_text("disable *\n")
    config = tmp_path / "central.toml"
    config.write_text('listen = "127.0.0.1:8443"\n')
    binds = {
        UNIT: "/etc/systemd/system/secl-central.service",
        dropin: "/etc/systemd/system/secl-central.service.d/test.conf",
        SYSTEMD / "secl-central.sysusers.conf": "/etc/sysusers.d/secl-central.conf",
        SYSTEMD / "secl-central.tmpfiles.conf": "/etc/tmpfiles.d/secl-central.conf",
        config: "/etc/secl/central.toml",
        preset: "/etc/systemd/system-preset/00-secl-test.preset",
    }
    log = tmp_path / "nspawn.log"
    with log.open("wb") as out:
        nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", "/", "--volatile=yes", "--private-network", "--register=no", "--keep-unit",
             f"--machine=secl-test-{uuid.uuid4().hex[:8]}", "--boot",
             *(f"--bind-ro={src}:{dst}" for src, dst in binds.items()),
             *(f"--bind-ro={d}" for d in sorted(code_dirs)),
             "systemd.firstboot=off"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        box = Container(nspawn, log)
        box.wait_booted()
        yield box
    finally:
        nspawn.send_signal(signal.SIGTERM)  # an orderly shutdown of the container
        try:
            nspawn.wait(30)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait()


def test_systemd_starts_the_unit_sandboxed_and_stops_it_cleanly(container: Container):
    setup = "sys.argv[0] = 'secl-central'; from secl.central.cli import main; main()"
    container.run(*_container_python(setup), "setup", "--owner", "secl")
    # Type=notify: `systemctl start` returns once gunicorn has sent READY=1, and fails if it never does.
    container.run("systemctl", "start", "secl-central", timeout=120)
    state = container.show("secl-central", "ActiveState", "MainPID", "StatusText")
    assert state["ActiveState"] == "active" and state["StatusText"] == "Gunicorn arbiter booted"

    status = dict(
        line.split(":", 1) for line in container.run("cat", f"/proc/{state['MainPID']}/status").splitlines()
    )
    uid = container.run("id", "-u", "secl").strip()
    assert status["Uid"].split()[0] == uid  # runs as the unprivileged user
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    assert int(status["CapBnd"], 16) == 0

    fetch = (
        "import ssl, urllib.request; "
        "ctx = ssl.create_default_context(cafile='/var/lib/secl/central/keys/root-ca.pem'); "
        "print(urllib.request.urlopen('https://127.0.0.1:8443/aas/v1/version', context=ctx).read().decode())"
    )
    # Through the sandbox: MemoryDenyWriteExecute, the system-call filter and the address families all
    # leave TLS (cryptography, ssl) and SQLite working.
    assert '"service":"AAS"' in container.run("/usr/bin/python3", "-c", fetch)

    container.run("systemctl", "stop", "secl-central")
    stopped = container.show("secl-central", "Result", "ExecMainStatus")
    assert stopped == {"Result": "success", "ExecMainStatus": "0"}
    journal = container.run("journalctl", "--no-pager", "-u", "secl-central")
    assert "Traceback" not in journal and "Shutting down: Master" in journal
