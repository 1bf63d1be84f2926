"""The security audit log: one row per login, failure, token, user or role change (later: key releases)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session

from secl.central.store.models import AuditEvent

#: The address of the caller whose request is being served, "" outside a request. The web layer sets it
#: for each request (:func:`secl.central.endpoints.register_request_state`), so the services that write
#: audit rows know nothing of HTTP.
caller_address: ContextVar[str] = ContextVar("secl_audit_caller_address", default="")


def record(
    session: Session, action: str, *, actor: str, outcome: str, target: str = "", **details: Any
) -> None:
    """Add an audit row to the session; it commits with the change it describes (or alone, for failures)."""
    session.add(
        AuditEvent(
            action=action,
            actor=actor or "-",
            outcome=outcome,
            target=target,
            remote_addr=caller_address.get(),
            details=details,
        )
    )
