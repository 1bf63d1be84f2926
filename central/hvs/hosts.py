"""/hvs/v2/hosts: the hosts the central attests, and the flavor groups each is verified against.

A host is registered with SecL's connection string ``intel:https://<host>:<port>`` (its trust agent). Its
``hardware_uuid`` and ``status`` (unknown, connected, unreachable, unauthorized, ...) are filled in by the
verifier when it reaches the agent; the API only shows them. Changing the connection string sets the
status back to ``unknown``.

What an orchestrator places workloads by is shown from the host's newest report while it is unexpired:
``trusted`` and the asset ``tags`` it verified. ``GET /hvs/v2/hosts?trusted=true&tag=country=DE&tag=rack=R12``
selects the hosts whose newest unexpired report is trusted and verified every tag given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from secl.central import audit
from secl.central.cms.enrollment import host_of
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, Forbidden, NotFound
from secl.central.hvs.groupstore import get_group, groups_by_name, host_groups
from secl.central.hvs.hoststore import get_host
from secl.central.hvs.store_schemas import (
    HostCollection,
    HostCreate,
    HostFlavorgroupCreate,
    HostFlavorgroupOut,
    HostOut,
    HostSearch,
    HostUpdate,
)
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import Host, host_flavorgroups
from secl.central.store.hvs_report_models import Report
from secl.central.store.models import utcnow
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# --- service ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A host's newest unexpired report, as placement sees it: trusted or not (None: no such report)."""

    trusted: bool | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def matches(self, trusted: bool | None, tags: list[tuple[str, str]]) -> bool:
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
        .join(newest, newest.c.id == Report.id).where(newest.c.rank == 1)
    )  # fmt: skip
    instant = now or utcnow()
    return {
        host_id: Standing(bool(trusted), dict(tags or {}))
        for host_id, trusted, expires_at, tags in rows
        if expires_at > instant
    }


def _out(session: Session, host: Host, standing: Standing | None = None) -> HostOut:
    if standing is None:
        standing = standings(session, [host.id]).get(host.id, Standing())
    return HostOut(
        id=host.id, host_name=host.name, connection_string=host.connection_string,
        description=host.description, hardware_uuid=host.hardware_uuid, status=host.status,
        flavorgroup_names=[g.name for g in host_groups(session, host.id)], created_at=host.created_at,
        updated_at=host.updated_at, trusted=standing.trusted, tags=standing.tags,
    )  # fmt: skip


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


# --- hosts ------------------------------------------------------------------------------------------------


@endpoint(bp, "/hosts", "POST", permission="HVS:hosts:create", body=HostCreate, response=HostOut, status=201,
          summary="Register a host by its trust agent's connection string (intel:https://host:1443) and "
                  "link it to flavor groups (default: automatic)")  # fmt: skip
def create_host(body: HostCreate) -> HostOut:
    session, actor = db(), current_principal().username
    _only_itself(body)
    _name_taken(session, body.host_name)
    groups = groups_by_name(session, body.flavorgroup_names)
    host = Host(name=body.host_name, connection_string=body.connection_string, description=body.description,
                status="unknown", status_detail="")  # fmt: skip
    session.add(host)
    session.flush()
    for group in groups:
        session.execute(insert(host_flavorgroups).values(host_id=host.id, flavorgroup_id=group.id))
    audit.record(session, "host.created", actor=actor, outcome="success", target=host.name, host_id=host.id,
                 connection_string=host.connection_string, flavorgroups=[g.name for g in groups])  # fmt: skip
    _commit(session, body.host_name)
    return _out(session, host)


def _only_itself(body: HostCreate) -> None:
    """A host registering itself with its enrollment token may register its own name and address only."""
    host = host_of(current_principal())
    if host is None:
        return
    address = urlsplit(body.connection_string.removeprefix("intel:")).hostname
    if body.host_name != host or address != host:
        raise Forbidden(
            f"this enrollment token registers {host} only (not {body.host_name} at {address})",
            code="enrollment-name-mismatch",
        )


@endpoint(bp, "/hosts", "GET", permission="HVS:hosts:search", query=HostSearch, response=HostCollection,
          summary="Search hosts (id, nameEqualTo, nameContains, hostHardwareId; trusted and repeatable "
                  "tag=name=value select by the newest unexpired report)")  # fmt: skip
def search_hosts(query: HostSearch) -> HostCollection:
    statement = select(Host).order_by(Host.name)
    if query.id is not None:
        statement = statement.where(Host.id == query.id)
    if query.nameEqualTo is not None:
        statement = statement.where(Host.name == query.nameEqualTo)
    if query.nameContains is not None:
        statement = statement.where(Host.name.contains(query.nameContains, autoescape=True))
    if query.hostHardwareId is not None:
        statement = statement.where(Host.hardware_uuid == query.hostHardwareId)
    session = db()
    hosts = list(session.scalars(statement))
    found = standings(session)
    wanted: list[Any] = [tuple(t.split("=", 1)) for t in query.tag]
    hosts = [h for h in hosts if found.get(h.id, Standing()).matches(query.trusted, wanted)]
    return HostCollection(hosts=[_out(session, h, found.get(h.id, Standing())) for h in hosts])


@endpoint(bp, "/hosts/<host_id>", "GET", permission="HVS:hosts:retrieve", response=HostOut,
          summary="One host, its status and its flavor groups")  # fmt: skip
def retrieve_host(host_id: str) -> HostOut:
    session = db()
    return _out(session, get_host(session, host_id))


@endpoint(bp, "/hosts/<host_id>", "PUT", permission="HVS:hosts:update", body=HostUpdate, response=HostOut,
          summary="Change a host's name, connection string or description (a new connection string resets "
                  "its status to unknown)")  # fmt: skip
def update_host(host_id: str, body: HostUpdate) -> HostOut:
    session, actor = db(), current_principal().username
    host = get_host(session, host_id)
    changed = {}
    if body.host_name is not None and body.host_name != host.name:
        _name_taken(session, body.host_name, but=host.id)
        changed["host_name"], host.name = body.host_name, body.host_name
    if body.connection_string is not None and body.connection_string != host.connection_string:
        changed["connection_string"], host.connection_string = body.connection_string, body.connection_string
        host.status, host.status_detail = "unknown", ""
    if body.description is not None and body.description != host.description:
        changed["description"], host.description = body.description, body.description
    if changed:
        host.updated_at = utcnow()
        audit.record(session, "host.updated", actor=actor, outcome="success", target=host.name,
                     host_id=host.id, changed=sorted(changed))  # fmt: skip
        _commit(session, host.name)
    return _out(session, host)


@endpoint(bp, "/hosts/<host_id>", "DELETE", permission="HVS:hosts:delete",
          summary="Delete a host and its flavor group links")  # fmt: skip
def delete_host(host_id: str) -> None:
    session, actor = db(), current_principal().username
    host = get_host(session, host_id)
    session.delete(host)
    audit.record(session, "host.deleted", actor=actor, outcome="success", target=host.name, host_id=host.id)
    session.commit()


# --- host <-> flavor group links --------------------------------------------------------------------------


@endpoint(bp, "/hosts/<host_id>/flavorgroups", "POST", permission="HVS:host-flavorgroups:create",
          body=HostFlavorgroupCreate, response=HostFlavorgroupOut, status=201,
          summary="Verify a host against one more flavor group")  # fmt: skip
def link_host_flavorgroup(host_id: str, body: HostFlavorgroupCreate) -> HostFlavorgroupOut:
    session, actor = db(), current_principal().username
    host = get_host(session, host_id)
    group = get_group(session, body.flavorgroup_id)
    if group.id in {g.id for g in host_groups(session, host.id)}:
        raise Conflict(f"host {host.name} is already in flavor group {group.name}", code="link-exists")
    session.execute(insert(host_flavorgroups).values(host_id=host.id, flavorgroup_id=group.id))
    audit.record(session, "host.flavorgroup-linked", actor=actor, outcome="success", target=host.name,
                 host_id=host.id, flavorgroup=group.name)  # fmt: skip
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"host {host.name} cannot be linked to {group.name} now", code="link-exists") from None
    return HostFlavorgroupOut(host_id=host.id, flavorgroup_id=group.id)


@endpoint(bp, "/hosts/<host_id>/flavorgroups", "GET", permission="HVS:host-flavorgroups:search",
          response=list[HostFlavorgroupOut], summary="The flavor groups a host is verified against")  # fmt: skip
def search_host_flavorgroups(host_id: str) -> list[HostFlavorgroupOut]:
    session = db()
    host = get_host(session, host_id)
    return [HostFlavorgroupOut(host_id=host.id, flavorgroup_id=g.id) for g in host_groups(session, host.id)]


@endpoint(bp, "/hosts/<host_id>/flavorgroups/<group_id>", "DELETE",
          permission="HVS:host-flavorgroups:delete",
          summary="Stop verifying a host against a flavor group")  # fmt: skip
def unlink_host_flavorgroup(host_id: str, group_id: str) -> None:
    session, actor = db(), current_principal().username
    host = get_host(session, host_id)
    removed = session.execute(
        delete(host_flavorgroups).where(
            host_flavorgroups.c.host_id == host.id, host_flavorgroups.c.flavorgroup_id == group_id
        )
    ).rowcount  # fmt: skip
    if not removed:
        session.rollback()
        raise NotFound(f"host {host.name} is not in flavor group {group_id}", code="link-not-found")
    audit.record(session, "host.flavorgroup-unlinked", actor=actor, outcome="success", target=host.name,
                 host_id=host.id, flavorgroup_id=group_id)  # fmt: skip
    session.commit()
