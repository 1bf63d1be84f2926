"""The trust agent's API in this process, on a swtpm booted with the corpus OVMF log.

``agent`` (a fixture) gives an :class:`Agent`: the WSGI app's test client, its configuration (host info
from corpus data) and the :class:`~secl.trustagent.agenttpm.AgentTPM` it owns.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from secl.trustagent.agenttpm import AgentTPM
from secl.trustagent.api import create_app
from secl.trustagent.config import TrustAgentConfig
from tests.corpus import corpus_path
from tests.firmware_boot import HOSTINFO, OVMF_LOG, boot
from tests.swtpm import RunningSwtpm


def agent_config(tmp_path: Path, tcti: str) -> TrustAgentConfig:
    return TrustAgentConfig(
        tcti=tcti,
        state_dir=tmp_path / "state",
        event_log_path=corpus_path(OVMF_LOG),
        os_release=corpus_path(f"{HOSTINFO}/os-release"),
        dmi_table_path=corpus_path(f"{HOSTINFO}/DMI"),
        efi_dir=tmp_path,
        efi_vars_dir=corpus_path(HOSTINFO),
        msr_path=tmp_path / "no-msr",
        host_name="agent.example",
    )


class Agent:
    def __init__(self, client: FlaskClient, config: TrustAgentConfig, tpm: AgentTPM) -> None:
        self.client, self.config, self.tpm = client, config, tpm

    def quote(self, nonce: bytes, **fields: object) -> dict:
        response = self.client.post(
            "/v2/tpm/quote", json={"nonce": base64.b64encode(nonce).decode(), **fields}
        )
        assert response.status_code == 200, response.json
        return response.json


@pytest.fixture
def agent(swtpm: RunningSwtpm, tmp_path: Path) -> Iterator[Agent]:
    boot(swtpm.tcti, corpus_path(OVMF_LOG).read_bytes())
    config = agent_config(tmp_path, swtpm.tcti)
    tpm = AgentTPM.from_config(config)
    tpm.start()
    try:
        yield Agent(create_app(config, tpm).test_client(), config, tpm)
    finally:
        tpm.close()
