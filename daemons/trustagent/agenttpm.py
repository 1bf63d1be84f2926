"""The one owner of the trust agent's TPM connection.

:class:`AgentTPM` serializes TPM access with one lock (a TPM runs one command at a time, and a raw device
or swtpm has no resource manager), keeps the AIK loaded, and reopens the TPM after the connection was
lost, so a TPM that comes back is used again without restarting the agent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter, TPMAttestation, TPMError, TPMKey
from secl.trustagent import assettag, hostinfo
from secl.trustagent.config import AIK_HIERARCHY, AIK_KIND, TrustAgentConfig

__all__ = ["AgentTPM", "PCRValues"]

log = logging.getLogger("secl.trustagent")

# After these faults the ESAPI context or the AIK handle is useless: drop both and reopen on next use.
_RECONNECT_CODES = {"tpm-unreachable", "tpm-bad-handle"}
# PCRs can move between reading them and quoting (IMA extends PCR 10 at any time): read, quote, read
# again, and accept only when both reads agree (PCRs never return to an earlier value).
_QUOTE_ATTEMPTS = 3

PCRValues = dict[HashAlg, dict[int, bytes]]


class AgentTPM:
    """The agent's TPM: one adapter behind one lock, the AIK loaded, active banks probed once."""

    def __init__(self, open_adapter: Callable[[], TPMAdapter]) -> None:
        self._open = open_adapter
        self._lock = threading.Lock()
        self._adapter: TPMAdapter | None = None
        self._aik: TPMKey | None = None
        self._facts: hostinfo.TPMFacts | None = None

    @classmethod
    def from_config(cls, config: TrustAgentConfig) -> AgentTPM:
        return cls(lambda: TPMAdapter(config.tcti))

    @contextmanager
    def _session(self) -> Iterator[tuple[TPMAdapter, TPMKey]]:
        with self._lock:
            try:
                if self._adapter is None:
                    self._adapter = self._open()
                if self._aik is None:
                    self._aik = self._adapter.create_ak(AIK_KIND, AIK_HIERARCHY)
                yield self._adapter, self._aik
            except TPMError as exc:
                if exc.code in _RECONNECT_CODES:
                    log.warning("lost the TPM (%s); reconnecting on the next request", exc.code)
                    self._drop()
                raise

    def _drop(self) -> None:
        adapter, self._adapter, self._aik = self._adapter, None, None
        if adapter is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                adapter.close()

    def start(self) -> None:
        """Open the TPM and load the AIK now (fail fast at startup); raise :class:`TPMError`."""
        self.facts()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def aik(self) -> TPMKey:
        with self._session() as (_, aik):
            return aik

    def facts(self) -> hostinfo.TPMFacts:
        with self._session() as (tpm, _):
            if self._facts is None:
                self._facts = hostinfo.tpm_facts(tpm)
            return self._facts

    def quote(
        self, selection: dict[HashAlg, list[int]], qualifying_data: bytes
    ) -> tuple[TPMAttestation, PCRValues]:
        with self._session() as (tpm, aik):
            for _ in range(_QUOTE_ATTEMPTS):
                before = tpm.read_pcrs(selection)
                quote = tpm.quote(aik, selection, qualifying_data)
                if tpm.read_pcrs(selection) == before:
                    return quote, before
        raise TPMError("PCRs kept changing while quoting", code="tpm-pcrs-changing")

    def asset_tag(self) -> bytes | None:
        """The asset-tag digest in NV (None: no tag), read for every quote: the owner may change it."""
        with self._session() as (tpm, _):
            return assettag.read_tag(tpm)

    def write_asset_tag(self, digest: bytes) -> None:
        with self._session() as (tpm, _):
            assettag.write_tag(tpm, digest)
