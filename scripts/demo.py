"""The demo: a central and a trust agent on one machine, attesting a host whose TPM holds a real firmware log.

Everything runs for real, through the commands an operator uses:
1. `secl-central setup` and the central under gunicorn over TLS (SQLite, in a temporary directory);
2. a swtpm whose PCRs get the measurements of a real OVMF boot (the corpus log's digests);
3. `secl-trustagent setup` (TLS certificate, AIK enrollment through the Privacy CA, host registration)
   and `run` (mTLS);
4. `secl flavors import` (flavors from this golden host) and `secl report`: trusted;
5. a changed boot measurement (PCR 0 extended, as a modified firmware would) and `secl report`: untrusted,
   with the fault naming the PCR.
Nothing is left running or written outside the temporary directory.
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
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from secl.core.eventlog import parse_event_log  # noqa: E402
from secl.core.hashalg import HashAlg  # noqa: E402
from secl.host.tpm import TPMAdapter  # noqa: E402
from tests.corpus import corpus_path  # noqa: E402
from tests.swtpm import manufacture, start_swtpm  # noqa: E402

BIN = Path(sys.executable).parent
OVMF_LOG = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"
HOSTINFO = "intel-secl/pkg/lib/hostinfo/test_data/whitley"  # a real Intel server's SMBIOS table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(
    *args: str, env: dict[str, str], check: bool = True, show: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if show and result.stdout.strip():
        print(result.stdout.rstrip())
    if check and result.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args[:3])} …` failed ({result.returncode}):\n{result.stderr}")
    return result


def wait_for_https(url: str, ca: Path, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"demo: {what} exited with {process.returncode}")
        try:
            requests.get(url, verify=str(ca), timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"demo: {what} did not answer at {url}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def boot(tcti: str, log: bytes) -> None:
    """Extend every measurement of the firmware log into the TPM, as the firmware did during boot."""
    with TPMAdapter(tcti) as tpm:
        for event in parse_event_log(log).iter_extended():
            digests = {bank: d for bank, d in event.digests.items() if bank in (HashAlg.SHA1, HashAlg.SHA256)}
            if event.pcr < 24 and digests:
                tpm.extend_pcr(event.pcr, digests)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="secl-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECL_") and k != "NOTIFY_SOCKET"}
    env |= {"XDG_CONFIG_HOME": str(work / "cli"), "PATH": f"{BIN}:{env.get('PATH', '')}"}
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)

        step("central: secl-central setup, then gunicorn over TLS (SQLite)")
        central_port = free_port()
        central_url = f"https://localhost:{central_port}"
        (work / "central.toml").write_text(
            f'state_dir = "{work / "central"}"\nlisten = "127.0.0.1:{central_port}"\nhostname = "localhost"\n'
        )
        central_env = env | {"SECL_CENTRAL_CONFIG": str(work / "central.toml"),
                             "GUNICORN_CMD_ARGS": "--workers 1 --threads 4"}  # fmt: skip
        setup = run(str(BIN / "secl-central"), "setup", env=central_env, show=False)
        fingerprint = setup.stdout.split("root CA SHA-384 fingerprint: ")[1].split()[0]
        username, password = (work / "central/keys/admin-credential").read_text().strip().split(":", 1)
        print(f"root CA fingerprint {fingerprint[:24]}…; administrator {username}")
        central = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:secl.central.gunicorn_conf", "secl.central.wsgi:app"],
            env=central_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        cleanup.callback(stop, central)
        root_ca = work / "central/keys/root-ca.pem"
        wait_for_https(f"{central_url}/aas/v1/version", root_ca, central, "the central")
        print(f"central ready at {central_url}")

        step("a TPM (swtpm) that measured a real OVMF firmware boot")
        state = manufacture(work / "tpm-state")
        swtpm_process, swtpm = start_swtpm(state, work / "tpm")
        cleanup.callback(stop, swtpm_process)
        boot(swtpm.tcti, corpus_path(OVMF_LOG).read_bytes())
        print(f"swtpm at {swtpm.tcti}; PCRs 0-9 hold the measurements of {OVMF_LOG}")

        step("admin: log in, trust the TPM vendor's EK CA, mint an enrollment token for the host")
        password_file = work / "admin-password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        secl = str(BIN / "secl")
        run(secl, "login", "--url", central_url, "--ca-fingerprint", fingerprint, "--username", username,
            "--password-file", str(password_file), env=env)  # fmt: skip
        ek_cas = [*sorted(swtpm.ca_dir.glob("*rootca-cert.pem")), swtpm.ca_dir / "issuercert.pem"]
        run(secl, "endorsement-cas", "add", *map(str, ek_cas), env=env)
        token = run(str(BIN / "secl-central"), "create-enrollment-token", "--host", "localhost",
                    env=central_env, show=False).stdout.strip()  # fmt: skip

        step(
            "host: secl-trustagent setup (TLS certificate, AIK enrolled with the Privacy CA, host registered), then run"
        )
        agent_port = free_port()
        efivars = work / "efi/efivars"
        efivars.mkdir(parents=True)
        # SecureBoot=0, as the OVMF boot logged it; the folder stands for /sys/firmware/efi.
        (efivars / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(b"\x06\x00\x00\x00\x00")
        (work / "agent.toml").write_text(
            f'tcti = "swtpm:host=127.0.0.1,port={swtpm.port}"\nlisten = "127.0.0.1:{agent_port}"\n'
            f'state_dir = "{work / "agent"}"\nhost_name = "localhost"\n'
            f'event_log_path = "{corpus_path(OVMF_LOG)}"\nefi_dir = "{work / "efi"}"\nefi_vars_dir = "{efivars}"\n'
            # This machine's own SMBIOS table may carry no hardware UUID (a VM): use a real server's.
            f'dmi_table_path = "{corpus_path(HOSTINFO + "/DMI")}"\nos_release = "{corpus_path(HOSTINFO + "/os-release")}"\n'
        )
        agent_env = env | {"SECL_TRUSTAGENT_CONFIG": str(work / "agent.toml"), "SECL_ENROLLMENT_TOKEN": token}
        run(str(BIN / "secl-trustagent"), "setup", "--central", central_url, "--ca-fingerprint", fingerprint,
            "--host", "localhost", env=agent_env)  # fmt: skip

        def start_agent() -> subprocess.Popen[bytes]:
            process = subprocess.Popen(
                [str(BIN / "secl-trustagent"), "run"], env=agent_env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", agent_port)) == 0:
                        return process
                if process.poll() is not None:
                    raise SystemExit(f"demo: the trust agent exited with {process.returncode}")
                time.sleep(0.2)
            raise SystemExit("demo: the trust agent did not start")

        agent = start_agent()
        cleanup.callback(lambda: stop(agent))
        print(f"trust agent serving mTLS on 127.0.0.1:{agent_port}")

        step("admin: the host registered itself; import flavors from it (the golden host), attest it")
        run(secl, "hosts", "list", env=env)
        run(secl, "flavors", "import", "localhost", env=env)
        trusted = run(secl, "report", "localhost", env=env, check=False)
        if trusted.returncode != 0:
            raise SystemExit(f"demo: the host should be trusted:\n{trusted.stderr}")

        step(
            "the host reboots with a modified firmware (one more measurement in PCR 0), and is attested again"
        )
        stop(agent)
        with TPMAdapter(swtpm.tcti) as tpm:
            tpm.extend_pcr(
                0, {HashAlg.SHA1: HashAlg.SHA1.hash(b"evil"), HashAlg.SHA256: HashAlg.SHA256.hash(b"evil")}
            )
        agent = start_agent()
        untrusted = run(secl, "report", "localhost", env=env, check=False)
        if untrusted.returncode == 0:
            raise SystemExit("demo: the host should be untrusted after the firmware changed")
        print("\ndemo complete: trusted, then untrusted with the changed PCR named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
