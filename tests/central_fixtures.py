"""Fixtures for central-server tests: a set-up state directory, a real PostgreSQL, apps and tokens.

PostgreSQL is a throwaway cluster the session creates (initdb into a temp dir, started on a free port);
every test that uses it gets a database of its own. A missing PostgreSQL installation fails the tests
that need it, with the package to install; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from secl.central import create_app
from secl.central.config import CentralConfig
from secl.central.setup import run_setup

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PostgresCluster:
    port: int
    directory: Path

    def create_database(self) -> str:
        name = f"secl_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-q", "-c", f"CREATE DATABASE {name}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(
            "PostgreSQL 15 is not installed (Debian package postgresql); scripts/setup.sh installs it"
        )
    # Not under pytest's temp root: that is 0700 root, and the cluster runs as the postgres user.
    directory = Path(tempfile.mkdtemp(prefix="secl-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = _free_port()
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"]),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield PostgresCluster(port, directory)
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class CentralState:
    config: CentralConfig
    admin_username: str
    admin_password: str
    root_ca_fingerprint: str


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def central_state(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> CentralState:
    """A central set up by the real `run_setup` on SQLite or on its own PostgreSQL database."""
    url = "" if backend == "sqlite" else request.getfixturevalue("postgres").create_database()
    config = CentralConfig(state_dir=tmp_path / "central", database_url=url, hostname="localhost")
    result = run_setup(config)
    assert result.admin_credential is not None
    username, password = result.admin_credential.read_text().strip().split(":", 1)
    return CentralState(config, username, password, result.root_ca_fingerprint_sha384)


@pytest.fixture
def central_app(central_state: CentralState) -> Iterator[Flask]:
    app = create_app(central_state.config)
    yield app
    app.extensions["secl.db"].dispose()


@pytest.fixture
def client(central_app: Flask) -> FlaskClient:
    return central_app.test_client()


def login(client: FlaskClient, username: str, password: str) -> str:
    response = client.post("/aas/v1/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return response.json["token"]


@pytest.fixture
def admin_headers(client: FlaskClient, central_state: CentralState) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {login(client, central_state.admin_username, central_state.admin_password)}"
    }
