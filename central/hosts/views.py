"""/hvs/v2/hosts: the hosts the central attests, and the flavor groups each is verified against.

``GET /hvs/v2/hosts?trusted=true&tag=country=DE&tag=rack=R12`` selects the hosts whose newest unexpired report
is trusted and verified every tag given (see :mod:`secl.central.hosts.service`).
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint
from sqlalchemy.orm import Session

from secl.central.cms.enrollment import host_of
from secl.central.endpoints import current_principal, db, endpoint
from secl.central.flavorgroups.service import host_groups
from secl.central.hosts import service
from secl.central.hosts.schemas import (
    HostCollection,
    HostCreate,
    HostFlavorgroupCreate,
    HostFlavorgroupOut,
    HostOut,
    HostSearch,
    HostUpdate,
)
from secl.central.hosts.service import Standing
from secl.central.store.hvs_flavor_models import Host

bp = Blueprint("hosts", __name__, url_prefix="/hvs/v2")


def _out(session: Session, host: Host, standing: Standing | None = None) -> HostOut:
    if standing is None:
        standing = service.standing(session, host)
    return HostOut(
        id=host.id,
        host_name=host.name,
        connection_string=host.connection_string,
        description=host.description,
        hardware_uuid=host.hardware_uuid,
        status=host.status,
        flavorgroup_names=[g.name for g in host_groups(session, host.id)],
        created_at=host.created_at,
        updated_at=host.updated_at,
        trusted=standing.trusted,
        tags=standing.tags,
    )


@endpoint(
    bp,
    "/hosts",
    "POST",
    permission="HVS:hosts:create",
    body=HostCreate,
    response=HostOut,
    status=201,
    summary="Register a host by its trust agent's connection string (intel:https://host:1443) and "
    "link it to flavor groups (default: automatic)",
)
def create_host(body: HostCreate) -> HostOut:
    session, caller = db(), current_principal()
    service.check_self_registration(host_of(caller), body.host_name, body.connection_string)
    host = service.create_host(
        session,
        name=body.host_name,
        connection_string=body.connection_string,
        description=body.description,
        flavorgroup_names=body.flavorgroup_names,
        actor=caller.username,
    )
    return _out(session, host)


@endpoint(
    bp,
    "/hosts",
    "GET",
    permission="HVS:hosts:search",
    query=HostSearch,
    response=HostCollection,
    summary="Search hosts (id, nameEqualTo, nameContains, hostHardwareId; trusted and repeatable "
    "tag=name=value select by the newest unexpired report)",
)
def search_hosts(query: HostSearch) -> HostCollection:
    session = db()
    found = service.search_hosts(
        session,
        host_id=query.id,
        name_equal_to=query.nameEqualTo,
        name_contains=query.nameContains,
        hardware_uuid=query.hostHardwareId,
        trusted=query.trusted,
        tags=[cast(tuple[str, str], tuple(t.split("=", 1))) for t in query.tag],
    )
    return HostCollection(hosts=[_out(session, host, standing) for host, standing in found])


@endpoint(
    bp,
    "/hosts/<host_id>",
    "GET",
    permission="HVS:hosts:retrieve",
    response=HostOut,
    summary="One host, its status and its flavor groups",
)
def retrieve_host(host_id: str) -> HostOut:
    session = db()
    return _out(session, service.get_host(session, host_id))


@endpoint(
    bp,
    "/hosts/<host_id>",
    "PUT",
    permission="HVS:hosts:update",
    body=HostUpdate,
    response=HostOut,
    summary="Change a host's name, connection string or description (a new connection string resets "
    "its status to unknown)",
)
def update_host(host_id: str, body: HostUpdate) -> HostOut:
    session = db()
    host = service.update_host(
        session,
        host_id,
        name=body.host_name,
        connection_string=body.connection_string,
        description=body.description,
        actor=current_principal().username,
    )
    return _out(session, host)


@endpoint(
    bp,
    "/hosts/<host_id>",
    "DELETE",
    permission="HVS:hosts:delete",
    summary="Delete a host and its flavor group links",
)
def delete_host(host_id: str) -> None:
    service.delete_host(db(), host_id, actor=current_principal().username)


@endpoint(
    bp,
    "/hosts/<host_id>/flavorgroups",
    "POST",
    permission="HVS:host-flavorgroups:create",
    body=HostFlavorgroupCreate,
    response=HostFlavorgroupOut,
    status=201,
    summary="Verify a host against one more flavor group",
)
def link_host_flavorgroup(host_id: str, body: HostFlavorgroupCreate) -> HostFlavorgroupOut:
    host, group = service.link_group(db(), host_id, body.flavorgroup_id, actor=current_principal().username)
    return HostFlavorgroupOut(host_id=host.id, flavorgroup_id=group.id)


@endpoint(
    bp,
    "/hosts/<host_id>/flavorgroups",
    "GET",
    permission="HVS:host-flavorgroups:search",
    response=list[HostFlavorgroupOut],
    summary="The flavor groups a host is verified against",
)
def search_host_flavorgroups(host_id: str) -> list[HostFlavorgroupOut]:
    session = db()
    host = service.get_host(session, host_id)
    return [HostFlavorgroupOut(host_id=host.id, flavorgroup_id=g.id) for g in host_groups(session, host.id)]


@endpoint(
    bp,
    "/hosts/<host_id>/flavorgroups/<group_id>",
    "DELETE",
    permission="HVS:host-flavorgroups:delete",
    summary="Stop verifying a host against a flavor group",
)
def unlink_host_flavorgroup(host_id: str, group_id: str) -> None:
    service.unlink_group(db(), host_id, group_id, actor=current_principal().username)
