"""The security audit log: one row per login, failure, token, user or role change (later: key releases)."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from secl.central.store.models import AuditEvent, utcnow
from sqlalchemy import insert
from sqlalchemy.orm import Session

_INSERT = insert(AuditEvent.__table__)


def record(
    session: Session, action: str, *, actor: str, outcome: str, target: str = "", **details: Any
) -> None:
    """Add an audit row to the session; it commits with the change it describes (or alone, for failures)."""
    session.add(AuditEvent(**_row(action, actor, outcome, target, details)))


def record_now(
    session: Session, action: str, *, actor: str, outcome: str, target: str = "", **details: Any
) -> None:
    """Write an audit row at once, on the session's connection, without flushing the session's pending
    changes: for the verifier, which writes one per report and whose report row is an INSERT too (an ORM
    object's flush costs more than the row). It still commits or rolls back with the session."""
    session.connection().execute(_INSERT, _row(action, actor, outcome, target, details))


def _row(action: str, actor: str, outcome: str, target: str, details: dict[str, Any]) -> dict[str, Any]:
    remote = request.remote_addr or "" if has_request_context() else ""
    return {"at": utcnow(), "action": action, "actor": actor or "-", "outcome": outcome, "target": target,
            "remote_addr": remote, "details": details}  # fmt: skip
