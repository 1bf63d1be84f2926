"""Bench: token-authenticated ``GET /aas/v1/roles`` on the central under gunicorn against a Flask hello-world.

Run: ``.venv/bin/python bench/central_api.py [--seconds 10] [--connections 32]``. Needs ``wrk`` (Debian
package wrk). Both servers run one after the other under the same gunicorn settings — the central's own
``secl.central.gunicorn_conf`` (gthread, TLS with the central's certificate, keep-alive, same workers and
threads, access log on) — each started the way systemd starts it and driven for the same time by wrk on
loopback with keep-alive connections. The central is a fresh SQLite set-up in a temporary directory; its
request verifies an ES256 JWT, checks the ``AAS:roles:search`` permission and reads the roles table. The
ratio hello/central is what our authentication, framework layers and database read cost per request.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from flask import Flask

# A hello-world under the same gunicorn settings: no authentication, no database, a constant JSON body.
hello_app = Flask("hello")


@hello_app.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    app: str, config_file: Path, workdir: Path, name: str, settings: str = "secl.central.gunicorn_conf"
) -> subprocess.Popen[bytes]:
    """gunicorn with the central's gunicorn_conf, as secl-central.service runs it; returns after READY=1."""
    notify_path = workdir / f"{name}.notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECL_CENTRAL_", "GUNICORN_"))}
    env |= {"SECL_CENTRAL_CONFIG": str(config_file), "NOTIFY_SOCKET": str(notify_path)}
    # gunicorn imports its settings module before it applies --pythonpath: bench/ goes on the path first.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent), env.get("PYTHONPATH")])
    )
    argv = [sys.executable, "-m", "gunicorn", "--config", f"python:{settings}",
            "--pythonpath", str(Path(__file__).resolve().parent), app]  # fmt: skip
    with (workdir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
    except TimeoutError:
        process.kill()
        sys.exit(f"{name}: no READY=1 within 60 s:\n{(workdir / f'{name}.log').read_text()}")
    finally:
        notify.close()
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def run_wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> float:
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", *header_args, url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"wrk saw failed requests on {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per server (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    from secl.central.config import CentralConfig
    from secl.central.setup import run_setup

    workdir = Path(tempfile.mkdtemp(prefix="secl-bench-"))
    try:
        port = _free_port()
        config = CentralConfig(state_dir=workdir / "central", listen=f"127.0.0.1:{port}", log_level="WARNING")
        result = run_setup(config)
        assert result.admin_credential is not None
        username, password = result.admin_credential.read_text().strip().split(":", 1)
        config_file = workdir / "central.toml"
        config_file.write_text(
            f'state_dir = "{config.state_dir}"\nlisten = "{config.listen}"\nlog_level = "WARNING"\n'
        )
        base = f"https://127.0.0.1:{port}"
        ca = config.keys_dir / "root-ca.pem"

        central = start_gunicorn("secl.central.wsgi:app", config_file, workdir, "central")
        try:
            token = requests.post(
                f"{base}/aas/v1/token",
                json={"username": username, "password": password},
                verify=ca,
                timeout=30,
            ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            check = requests.get(f"{base}/aas/v1/roles", headers=auth, verify=ca, timeout=30)
            assert check.status_code == 200, check.text
            central_rps = run_wrk(f"{base}/aas/v1/roles", args.seconds, args.connections, auth)
        finally:
            stop(central)

        hello_server = start_gunicorn(
            "central_api:hello_app", config_file, workdir, "hello", "hello_gunicorn_conf"
        )
        try:
            assert requests.get(f"{base}/hello", verify=ca, timeout=30).json() == {"hello": "world"}
            hello_rps = run_wrk(f"{base}/hello", args.seconds, args.connections, {})
        finally:
            stop(hello_server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    from secl.central import gunicorn_conf

    print(
        f"gunicorn gthread, {gunicorn_conf.workers} workers x {gunicorn_conf.threads} threads, TLS (ECDSA P-256), "
        f"keep-alive {gunicorn_conf.keepalive} s, access log on; wrk -t2 -c{args.connections} for {args.seconds} s "
        f"each on loopback, {os.cpu_count()} CPUs shared with wrk"
    )
    print(f"  central  GET /aas/v1/roles with a bearer JWT (SQLite): {central_rps:9,.0f} requests/s")
    print(f"  hello    GET /hello, Flask hello-world, no auth:        {hello_rps:9,.0f} requests/s")
    print(f"  ratio    hello / central:                               {hello_rps / central_rps:9.2f}x")


if __name__ == "__main__":
    main()
