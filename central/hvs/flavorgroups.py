"""/hvs/v2/flavorgroups: flavor groups with SecL's match policies, and which flavors belong to which group.

A group says, per flavor part, how a host's flavors are matched (ANY_OF, ALL_OF, LATEST) and whether the part
must be present (REQUIRED, REQUIRED_IF_DEFINED). SecL's four default groups (``automatic``, ``host_unique``,
``platform_software``, ``workload_software``) are created by migration 0004 and cannot be deleted. A group
still linked to hosts cannot be deleted either (the hosts would silently lose their policy); its flavor
links go with it, the flavors stay.
"""

from __future__ import annotations

from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, NotFound
from secl.central.hvs.groupstore import get_group, link_flavor, match_policies
from secl.central.hvs.store_schemas import (
    FlavorgroupCollection,
    FlavorgroupCreate,
    FlavorgroupFlavorCreate,
    FlavorgroupFlavorOut,
    FlavorgroupOut,
    FlavorgroupSearch,
    FlavorMatchPolicyCollection,
)
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import (
    FlavorGroup,
    StoredFlavor,
    flavorgroup_flavors,
    host_flavorgroups,
)
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError


def _out(group: FlavorGroup) -> FlavorgroupOut:
    return FlavorgroupOut(
        id=group.id, name=group.name, is_default=group.is_default, created_at=group.created_at,
        flavor_match_policy_collection=FlavorMatchPolicyCollection(flavor_match_policies=match_policies(group)),
    )  # fmt: skip


# --- routes -----------------------------------------------------------------------------------------------


@endpoint(bp, "/flavorgroups", "POST", permission="HVS:flavorgroups:create", body=FlavorgroupCreate,
          response=FlavorgroupOut, status=201,
          summary="Create a flavor group with a match policy per flavor part (SecL's "
                  "flavor_match_policy_collection)")  # fmt: skip
def create_flavorgroup(body: FlavorgroupCreate) -> FlavorgroupOut:
    session, actor = db(), current_principal().username
    if session.scalar(select(FlavorGroup).where(FlavorGroup.name == body.name)) is not None:
        raise Conflict(f"a flavor group named {body.name} exists", code="flavorgroup-exists")
    group = FlavorGroup(
        name=body.name, match_policies=[p.model_dump() for p in body.policies], is_default=False
    )
    session.add(group)
    session.flush()
    audit.record(session, "flavorgroup.created", actor=actor, outcome="success", target=body.name,
                 flavorgroup_id=group.id)  # fmt: skip
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a flavor group named {body.name} exists", code="flavorgroup-exists") from None
    return _out(group)


@endpoint(bp, "/flavorgroups", "GET", permission="HVS:flavorgroups:search", query=FlavorgroupSearch,
          response=FlavorgroupCollection, summary="Search flavor groups (id, nameEqualTo, nameContains)")  # fmt: skip
def search_flavorgroups(query: FlavorgroupSearch) -> FlavorgroupCollection:
    statement = select(FlavorGroup).order_by(FlavorGroup.name)
    if query.id is not None:
        statement = statement.where(FlavorGroup.id == query.id)
    if query.nameEqualTo is not None:
        statement = statement.where(FlavorGroup.name == query.nameEqualTo)
    if query.nameContains is not None:
        statement = statement.where(FlavorGroup.name.contains(query.nameContains, autoescape=True))
    return FlavorgroupCollection(flavorgroups=[_out(g) for g in db().scalars(statement)])


@endpoint(bp, "/flavorgroups/<group_id>", "GET", permission="HVS:flavorgroups:retrieve",
          response=FlavorgroupOut, summary="One flavor group and its match policies")  # fmt: skip
def retrieve_flavorgroup(group_id: str) -> FlavorgroupOut:
    return _out(get_group(db(), group_id))


@endpoint(bp, "/flavorgroups/<group_id>", "DELETE", permission="HVS:flavorgroups:delete",
          summary="Delete a flavor group (not a default group, not one hosts are linked to); its flavors "
                  "stay")  # fmt: skip
def delete_flavorgroup(group_id: str) -> None:
    session, actor = db(), current_principal().username
    group = get_group(session, group_id)
    if group.is_default:
        raise Conflict(
            f"{group.name} is a default flavor group and cannot be deleted", code="flavorgroup-default"
        )
    hosts = session.scalar(
        select(func.count())
        .select_from(host_flavorgroups)
        .where(host_flavorgroups.c.flavorgroup_id == group.id)
    )
    if hosts:
        raise Conflict(
            f"{hosts} host(s) are linked to flavor group {group.name}; unlink them first",
            code="flavorgroup-in-use",
        )
    session.delete(group)
    audit.record(session, "flavorgroup.deleted", actor=actor, outcome="success", target=group.name,
                 flavorgroup_id=group.id)  # fmt: skip
    session.commit()


@endpoint(bp, "/flavorgroups/<group_id>/flavors", "POST", permission="HVS:flavorgroup-flavors:create",
          body=FlavorgroupFlavorCreate, response=FlavorgroupFlavorOut, status=201,
          summary="Add a flavor to a flavor group")  # fmt: skip
def link_flavorgroup_flavor(group_id: str, body: FlavorgroupFlavorCreate) -> FlavorgroupFlavorOut:
    session, actor = db(), current_principal().username
    group = get_group(session, group_id)
    if session.get(StoredFlavor, body.flavor_id) is None:
        raise NotFound(f"no flavor {body.flavor_id}", code="flavor-not-found")
    link_flavor(session, group, body.flavor_id)
    audit.record(session, "flavorgroup.flavor-linked", actor=actor, outcome="success", target=group.name,
                 flavorgroup_id=group.id, flavor_id=body.flavor_id)  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # linked meanwhile, or the flavor deleted meanwhile
        session.rollback()
        raise Conflict(
            f"flavor {body.flavor_id} cannot be linked to {group.name} now", code="link-exists"
        ) from None
    return FlavorgroupFlavorOut(flavorgroup_id=group.id, flavor_id=body.flavor_id)


@endpoint(bp, "/flavorgroups/<group_id>/flavors", "GET", permission="HVS:flavorgroup-flavors:search",
          response=list[FlavorgroupFlavorOut], summary="The flavors of a flavor group")  # fmt: skip
def search_flavorgroup_flavors(group_id: str) -> list[FlavorgroupFlavorOut]:
    group = get_group(db(), group_id)
    ids = db().scalars(
        select(flavorgroup_flavors.c.flavor_id).where(flavorgroup_flavors.c.flavorgroup_id == group.id)
        .order_by(flavorgroup_flavors.c.flavor_id)
    )  # fmt: skip
    return [FlavorgroupFlavorOut(flavorgroup_id=group.id, flavor_id=i) for i in ids]


@endpoint(bp, "/flavorgroups/<group_id>/flavors/<flavor_id>", "DELETE",
          permission="HVS:flavorgroup-flavors:delete",
          summary="Remove a flavor from a flavor group (the flavor itself stays)")  # fmt: skip
def unlink_flavorgroup_flavor(group_id: str, flavor_id: str) -> None:
    session, actor = db(), current_principal().username
    group = get_group(session, group_id)
    removed = session.execute(
        delete(flavorgroup_flavors).where(
            flavorgroup_flavors.c.flavorgroup_id == group.id, flavorgroup_flavors.c.flavor_id == flavor_id
        )
    ).rowcount  # fmt: skip
    if not removed:
        session.rollback()
        raise NotFound(f"flavor {flavor_id} is not in flavor group {group.name}", code="link-not-found")
    audit.record(session, "flavorgroup.flavor-unlinked", actor=actor, outcome="success", target=group.name,
                 flavorgroup_id=group.id, flavor_id=flavor_id)  # fmt: skip
    session.commit()
