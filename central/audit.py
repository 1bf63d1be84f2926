"""The security audit log: one row per login, failure, token, user or role change (later: key releases)."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from secl.central.store.models import AuditEvent
from sqlalchemy.orm import Session


def record(
    session: Session, action: str, *, actor: str, outcome: str, target: str = "", **details: Any
) -> None:
    """Add an audit row to the session; it commits with the change it describes (or alone, for failures)."""
    remote = request.remote_addr or "" if has_request_context() else ""
    session.add(
        AuditEvent(
            action=action,
            actor=actor or "-",
            outcome=outcome,
            target=target,
            remote_addr=remote,
            details=details,
        )
    )
