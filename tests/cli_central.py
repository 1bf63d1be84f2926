"""The ``secl`` admin command line against a real central over real HTTPS.

``central`` (a fixture) serves the central app with werkzeug and the TLS certificate ``secl-central setup``
made, on a free loopback port, and gives a :class:`Central` that runs the CLI in-process through click's
CliRunner, with HOME and XDG_CONFIG_HOME in a temporary directory. ``assert_one_line_error`` is how
every refused command must end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from werkzeug.serving import make_server

from secl.central.keyfiles import KeyFiles
from secl.cli.main import cli
from tests.central_fixtures import CentralState


@dataclass(frozen=True)
class Central:
    url: str
    root_ca: Path
    state: CentralState
    home: Path

    def run(self, *args: str, input: str | None = None) -> Result:
        env = {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config")}
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    @property
    def session_file(self) -> Path:
        return self.home / "config" / "secl" / "session.json"

    def password_file(self, name: str, password: str) -> str:
        path = self.home / name
        path.write_text(password + "\n")
        return str(path)

    def login(self, *extra: str) -> Result:
        password = self.password_file("admin-password", self.state.admin_password)
        return self.run(
            "login", "--url", self.url, "--ca-file", str(self.root_ca),
            "--username", self.state.admin_username, "--password-file", password, *extra,
        )  # fmt: skip


@pytest.fixture
def central(central_app: Flask, central_state: CentralState, tmp_path: Path) -> Iterator[Central]:
    keys = KeyFiles(central_state.config.keys_dir)
    server = make_server(
        "127.0.0.1", 0, central_app, threaded=True, ssl_context=(str(keys.tls_cert), str(keys.tls_key))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home = tmp_path / "home"
    home.mkdir()
    try:
        yield Central(f"https://localhost:{server.server_port}", keys.root_ca_cert, central_state, home)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def assert_one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code not in (0, None), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("secl: error: "), lines
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
