"""The trust agent's API errors: one family, each answered as JSON ``{"code", "message"}`` with its status.

The central has its own error classes (``secl.central.errors``); the agent is another process that must not
import Flask or the central, so its family is named for what it is. Request validation raises
:class:`AgentAPIError` directly; a module with refusals of its own (application integrity) subclasses it.
TPM failures keep their own :class:`secl.host.tpm.TPMError` (503 with the TPM's fault code), and anything
else is a 500 that leaks nothing (``secl.trustagent.api.AgentApp``).
"""

from __future__ import annotations

__all__ = ["AgentAPIError"]


class AgentAPIError(Exception):
    """A request the agent refuses: ``status`` (HTTP), ``code`` (stable, for machines), ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
