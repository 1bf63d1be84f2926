"""Hosts: the machines the central attests, and the flavor groups each is verified against.

A host is registered with SecL's connection string ``intel:https://<host>:<port>`` (its trust agent). Its
``hardware_uuid`` and ``status`` (unknown, connected, unreachable, unauthorized, ...) are filled in by the
verifier when it reaches the agent; the API only shows them. Changing the connection string sets the
status back to ``unknown``.

What an orchestrator places workloads by is the host's :class:`Standing`, from its newest report while it
is unexpired: ``trusted`` and the asset ``tags`` it verified.

The lookups (:func:`find_host`, :func:`get_host`, :func:`find_hosts`) are shared with the verifier, the
report queue's worker and the other areas; the operations commit, with their audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.errors import Conflict, Forbidden, NotFound
from secl.central.flavorgroups.service import get_group, groups_by_name, host_groups
from secl.central.store.db import rowcount
from secl.central.store.hvs_flavor_models import FlavorGroup, Host, host_flavorgroups
from secl.central.store.hvs_report_models import Report
from secl.central.store.models import utcnow

# One statement built once: every report starts by reading its host, and ``Session.get`` assembles its
# query anew on each call (about a tenth of a millisecond more per report, measured in the verifier).
_BY_ID = select(Host).where(Host.id == bindparam("host_id"))


# --- lookups ----------------------------------------------------------------------------------------------


def find_host(session: Session, host_id: str) -> Host | None:
    """The host with this id, or None."""
    return session.execute(_BY_ID, {"host_id": host_id}).scalar_one_or_none()


def get_host(session: Session, host_id: str) -> Host:
    """The host with this id; NotFound ``host-not-found`` when there is none."""
    host = find_host(session, host_id)
    if host is None:
        raise NotFound(f"no host {host_id}", code="host-not-found")
    return host


def find_hosts(session: Session, host_ids: Sequence[str]) -> dict[str, Host]:
    """The hosts with these ids that exist, by id, in one statement (a worker's batch)."""
    if not host_ids:
        return {}
    return {h.id: h for h in session.scalars(select(Host).where(Host.id.in_(set(host_ids))))}


def get_host_by_name(session: Session, name: str | None) -> Host:
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise NotFound(f"no host named {name}", code="host-not-found")
    return host


def get_host_by_connection(session: Session, connection_string: str | None) -> Host:
    """The registered host with this connection string: the central only talks to agents it knows."""
    host = session.scalar(select(Host).where(Host.connection_string == connection_string))
    if host is None:
        raise NotFound(
            f"no registered host has the connection string {connection_string}: register it first "
            "(POST /hvs/v2/hosts)",
            code="host-not-found",
        )
    return host


# --- standing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A host's newest unexpired report, as placement sees it: trusted or not (None: no such report)."""

    trusted: bool | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def matches(self, trusted: bool | None, tags: Sequence[tuple[str, str]]) -> bool:
        if trusted is not None and (self.trusted is True) != trusted:
            return False
        return all(self.tags.get(name) == value for name, value in tags)


def standings(
    session: Session, host_ids: list[str] | None = None, now: datetime | None = None
) -> dict[str, Standing]:
    """Each host's standing from its newest report (one query; the reports' large columns are not read)."""
    ranked = select(
        Report.id,
        func.row_number()
        .over(partition_by=Report.host_id, order_by=(Report.created_at.desc(), Report.id.desc()))
        .label("rank"),
    )
    if host_ids is not None:
        ranked = ranked.where(Report.host_id.in_(host_ids))
    newest = ranked.subquery()
    rows = session.execute(
        select(Report.host_id, Report.trusted, Report.expires_at, Report.tags)
        .join(newest, newest.c.id == Report.id)
        .where(newest.c.rank == 1)
    )
    instant = now or utcnow()
    return {
        host_id: Standing(bool(trusted), dict(tags or {}))
        for host_id, trusted, expires_at, tags in rows
        if expires_at > instant
    }


def standing(session: Session, host: Host) -> Standing:
    return standings(session, [host.id]).get(host.id, Standing())


# --- operations -------------------------------------------------------------------------------------------


def _name_taken(session: Session, name: str, but: str | None = None) -> None:
    other = session.scalar(select(Host).where(Host.name == name))
    if other is not None and other.id != but:
        raise Conflict(f"a host named {name} is registered (id {other.id})", code="host-exists")


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:  # registered meanwhile by another request
        session.rollback()
        raise Conflict(f"a host named {name} is registered", code="host-exists") from None


def check_self_registration(enrolled_host: str | None, host_name: str, connection_string: str) -> None:
    """A host registering itself with its enrollment token (``enrolled_host``: the token's host name; None
    for a user) may register its own name and address only."""
    if enrolled_host is None:
        return
    address = urlsplit(connection_string.removeprefix("intel:")).hostname
    if host_name != enrolled_host or address != enrolled_host:
        raise Forbidden(
            f"this enrollment token registers {enrolled_host} only (not {host_name} at {address})",
            code="enrollment-name-mismatch",
        )


def create_host(
    session: Session,
    *,
    name: str,
    connection_string: str,
    description: str,
    flavorgroup_names: Sequence[str],
    actor: str,
) -> Host:
    _name_taken(session, name)
    groups = groups_by_name(session, flavorgroup_names)
    host = Host(
        name=name,
        connection_string=connection_string,
        description=description,
        status="unknown",
        status_detail="",
    )
    session.add(host)
    session.flush()
    for group in groups:
        session.execute(insert(host_flavorgroups).values(host_id=host.id, flavorgroup_id=group.id))
    audit.record(
        session,
        "host.created",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        connection_string=host.connection_string,
        flavorgroups=[g.name for g in groups],
    )
    _commit(session, name)
    return host


def search_hosts(
    session: Session,
    *,
    host_id: str | None,
    name_equal_to: str | None,
    name_contains: str | None,
    hardware_uuid: str | None,
    trusted: bool | None,
    tags: Sequence[tuple[str, str]],
) -> list[tuple[Host, Standing]]:
    """The hosts that match, each with its standing; ``trusted`` and ``tags`` select by the standing."""
    statement = select(Host).order_by(Host.name)
    if host_id is not None:
        statement = statement.where(Host.id == host_id)
    if name_equal_to is not None:
        statement = statement.where(Host.name == name_equal_to)
    if name_contains is not None:
        statement = statement.where(Host.name.contains(name_contains, autoescape=True))
    if hardware_uuid is not None:
        statement = statement.where(Host.hardware_uuid == hardware_uuid)
    hosts = list(session.scalars(statement))
    found = standings(session)
    return [
        (h, found.get(h.id, Standing())) for h in hosts if found.get(h.id, Standing()).matches(trusted, tags)
    ]


def update_host(
    session: Session,
    host_id: str,
    *,
    name: str | None,
    connection_string: str | None,
    description: str | None,
    actor: str,
) -> Host:
    host = get_host(session, host_id)
    changed = {}
    if name is not None and name != host.name:
        _name_taken(session, name, but=host.id)
        changed["host_name"], host.name = name, name
    if connection_string is not None and connection_string != host.connection_string:
        changed["connection_string"], host.connection_string = connection_string, connection_string
        host.status, host.status_detail = "unknown", ""
    if description is not None and description != host.description:
        changed["description"], host.description = description, description
    if changed:
        host.updated_at = utcnow()
        audit.record(
            session,
            "host.updated",
            actor=actor,
            outcome="success",
            target=host.name,
            host_id=host.id,
            changed=sorted(changed),
        )
        _commit(session, host.name)
    return host


def delete_host(session: Session, host_id: str, *, actor: str) -> None:
    host = get_host(session, host_id)
    session.delete(host)
    audit.record(session, "host.deleted", actor=actor, outcome="success", target=host.name, host_id=host.id)
    session.commit()


def link_group(session: Session, host_id: str, group_id: str, *, actor: str) -> tuple[Host, FlavorGroup]:
    host = get_host(session, host_id)
    group = get_group(session, group_id)
    if group.id in {g.id for g in host_groups(session, host.id)}:
        raise Conflict(f"host {host.name} is already in flavor group {group.name}", code="link-exists")
    session.execute(insert(host_flavorgroups).values(host_id=host.id, flavorgroup_id=group.id))
    audit.record(
        session,
        "host.flavorgroup-linked",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        flavorgroup=group.name,
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"host {host.name} cannot be linked to {group.name} now", code="link-exists") from None
    return host, group


def unlink_group(session: Session, host_id: str, group_id: str, *, actor: str) -> None:
    host = get_host(session, host_id)
    removed = rowcount(
        session.execute(
            delete(host_flavorgroups).where(
                host_flavorgroups.c.host_id == host.id, host_flavorgroups.c.flavorgroup_id == group_id
            )
        )
    )
    if not removed:
        session.rollback()
        raise NotFound(f"host {host.name} is not in flavor group {group_id}", code="link-not-found")
    audit.record(
        session,
        "host.flavorgroup-unlinked",
        actor=actor,
        outcome="success",
        target=host.name,
        host_id=host.id,
        flavorgroup_id=group_id,
    )
    session.commit()
