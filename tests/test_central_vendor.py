"""What the central answers for a host whose flavors' vendor cannot be determined (secl.core.vendor).

A flavor saying ``"vendor": "UNKNOWN"`` takes the host's vendor from its OS; a host whose OS is blank (an
agent that says nothing, or a tampered answer) names no vendor, and the core refuses to judge it rather
than apply the Intel rules. The central must turn that into a named 409, on the synchronous report route
and in the report queue, never a 500 or a silently "Intel" report.

Real processes: swtpm, the trust agent over mTLS, the central; the agent's host info is blanked on the way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from secl.central import create_app
from secl.central.context import services_of
from secl.central.evidence import fetch
from secl.central.evidence.agentclient import AgentClient
from secl.central.evidence.hostinfo import ClaimedHostInfo
from secl.central.reports import jobs
from secl.central.reports.worker import Worker
from tests.agent_harness import ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral

pytestmark = pytest.mark.swtpm

UNKNOWN_VENDOR_FLAVOR = {
    "meta": {
        "vendor": "UNKNOWN",
        "description": {"flavor_part": "PLATFORM", "label": "unknown-vendor", "tpm_version": "2.0"},
    },
    "pcrs": [{"pcr": {"index": 0, "bank": "SHA256"}, "measurement": "00" * 32, "pcr_matches": True}],
}


class BlankOSAgent(AgentClient):
    """The real agent, whose host info loses its OS on the way."""

    def host_info(self) -> ClaimedHostInfo:
        claimed = super().host_info()
        return ClaimedHostInfo({**claimed.document, "os_type": "", "os_name": ""})


@pytest.fixture
def inproc_app(central_state: CentralState) -> Iterator[Flask]:
    """The same central in this process (same database and keys), so its agent client can be replaced."""
    app = create_app(central_state.config)
    yield app
    app.extensions["secl.db"].dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_host_whose_os_names_no_vendor_is_a_named_409_not_a_500(
    live_central: LiveCentral,
    central_state: CentralState,
    golden: ProvisionedAgent,
    inproc_app: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = admin_headers(live_central, central_state)
    created = api(live_central, headers, "POST", "/hvs/v2/hosts",
                  json={"host_name": "golden", "connection_string": golden.connection_string})  # fmt: skip
    assert created.status_code == 201, created.text
    host_id = created.json()["id"]
    body = {"flavor_collection": {"flavors": [UNKNOWN_VENDOR_FLAVOR]}, "flavorgroup_names": ["automatic"]}
    uploaded = api(live_central, headers, "POST", "/hvs/v2/flavors", json=body)
    assert uploaded.status_code == 201, uploaded.text

    # The real agent says linux: the UNKNOWN flavor is judged with the Intel rules (PCR 0 differs).
    report = api(live_central, headers, "POST", "/hvs/v2/reports", json={"host_id": host_id})
    assert report.status_code == 201, report.text
    assert report.json()["trust_report"]["policy_name"] == "Intel Host Trust Policy"

    monkeypatch.setattr(fetch, "AgentClient", BlankOSAgent)
    client = inproc_app.test_client()
    refused = client.post("/hvs/v2/reports", json={"host_id": host_id}, headers=headers)
    assert refused.status_code == 409, refused.get_json()
    answer = refused.get_json()
    assert answer["code"] == "vendor-undetermined"
    assert "could not determine the vendor from the host's OS name ''" in answer["message"]
    assert "the flavor's vendor is UNKNOWN" in answer["message"]

    # The report queue records the same name, and does not retry what cannot change by itself.
    with inproc_app.extensions["secl.db"].sessions() as session:
        (job,) = jobs.enqueue(session, [host_id], actor="test")
    (outcome,) = Worker(
        services_of(inproc_app), name="vendor", refresh=False, batch_size=1, concurrency=1
    ).run_once()
    assert (outcome.job_id, outcome.status, outcome.error_code) == (job.id, "failed", "vendor-undetermined")
    reports = client.get(f"/hvs/v2/reports?hostId={host_id}", headers=headers).get_json()
    assert len(reports["reports"]) == 1  # only the report made while the agent still named its OS
