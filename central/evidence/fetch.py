"""Fetching evidence: a host's trust agent asked for its host info, its AIK and a quote over a fresh nonce.

This is the network half of an attestation, and nothing of it is believed yet: :class:`FetchedEvidence`
holds the agent's answers as they came, for :func:`secl.central.evidence.verify.accept_evidence` to check.
The report queue's worker runs this step for a batch's hosts concurrently, then checks them together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from secl.central.evidence.agentclient import AgentClient, QuoteResponse
from secl.central.evidence.hostinfo import ClaimedHostInfo
from secl.central.keyfiles import KeyFiles
from secl.central.store.hvs_flavor_models import Host

NONCE_BYTES = 32
ALL_PCRS = list(range(24))


@dataclass(frozen=True)
class FetchedEvidence:
    """The agent's three answers to one quote request over ``nonce``, not yet checked."""

    nonce: bytes
    host_info: ClaimedHostInfo
    aik: dict[str, Any]  # GET /v2/aik: the AIK certificate (PEM) or the AIK, unverified
    answer: QuoteResponse


def agent_client(files: KeyFiles, connection_string: str) -> AgentClient:
    """A client for the agent at ``connection_string``, authenticated with the central's TLS key."""
    return AgentClient(connection_string, files)


def fetch_evidence(
    files: KeyFiles, host: Host | None, *, client: AgentClient | None = None, pcrs: Sequence[int] = ALL_PCRS
) -> FetchedEvidence:
    """Ask the host's agent for its host info, AIK and a quote over a fresh nonce (nothing is checked or
    stored). ``client`` defaults to one for ``host.connection_string``. Raises :class:`AgentError`."""
    own_client = client is None
    if client is None:
        assert host is not None
        client = agent_client(files, host.connection_string)
    nonce = os.urandom(NONCE_BYTES)
    try:
        host_info = client.host_info()
        aik = client.aik()
        return FetchedEvidence(
            nonce, host_info, aik, client.quote(nonce, list(pcrs), host_info.quote_banks())
        )
    finally:
        if own_client:
            client.close()
