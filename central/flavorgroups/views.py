"""/hvs/v2/flavorgroups: flavor groups with SecL's match policies, and their flavors (see the service)."""

from __future__ import annotations

from flask import Blueprint

from secl.central.endpoints import current_principal, db, endpoint
from secl.central.flavorgroups import service
from secl.central.flavorgroups.schemas import (
    FlavorgroupCollection,
    FlavorgroupCreate,
    FlavorgroupFlavorCreate,
    FlavorgroupFlavorOut,
    FlavorgroupOut,
    FlavorgroupSearch,
    FlavorMatchPolicyCollection,
)
from secl.central.store.hvs_flavor_models import FlavorGroup

bp = Blueprint("flavorgroups", __name__, url_prefix="/hvs/v2")


def _out(group: FlavorGroup) -> FlavorgroupOut:
    return FlavorgroupOut(
        id=group.id,
        name=group.name,
        is_default=group.is_default,
        created_at=group.created_at,
        flavor_match_policy_collection=FlavorMatchPolicyCollection(
            flavor_match_policies=service.match_policies(group)
        ),
    )


@endpoint(
    bp,
    "/flavorgroups",
    "POST",
    permission="HVS:flavorgroups:create",
    body=FlavorgroupCreate,
    response=FlavorgroupOut,
    status=201,
    summary="Create a flavor group with a match policy per flavor part (SecL's "
    "flavor_match_policy_collection)",
)
def create_flavorgroup(body: FlavorgroupCreate) -> FlavorgroupOut:
    return _out(service.create_group(db(), body.name, body.policies, actor=current_principal().username))


@endpoint(
    bp,
    "/flavorgroups",
    "GET",
    permission="HVS:flavorgroups:search",
    query=FlavorgroupSearch,
    response=FlavorgroupCollection,
    summary="Search flavor groups (id, nameEqualTo, nameContains)",
)
def search_flavorgroups(query: FlavorgroupSearch) -> FlavorgroupCollection:
    found = service.search_groups(
        db(), group_id=query.id, name_equal_to=query.nameEqualTo, name_contains=query.nameContains
    )
    return FlavorgroupCollection(flavorgroups=[_out(g) for g in found])


@endpoint(
    bp,
    "/flavorgroups/<group_id>",
    "GET",
    permission="HVS:flavorgroups:retrieve",
    response=FlavorgroupOut,
    summary="One flavor group and its match policies",
)
def retrieve_flavorgroup(group_id: str) -> FlavorgroupOut:
    return _out(service.get_group(db(), group_id))


@endpoint(
    bp,
    "/flavorgroups/<group_id>",
    "DELETE",
    permission="HVS:flavorgroups:delete",
    summary="Delete a flavor group (not a default group, not one hosts are linked to); its flavors stay",
)
def delete_flavorgroup(group_id: str) -> None:
    service.delete_group(db(), group_id, actor=current_principal().username)


@endpoint(
    bp,
    "/flavorgroups/<group_id>/flavors",
    "POST",
    permission="HVS:flavorgroup-flavors:create",
    body=FlavorgroupFlavorCreate,
    response=FlavorgroupFlavorOut,
    status=201,
    summary="Add a flavor to a flavor group",
)
def link_flavorgroup_flavor(group_id: str, body: FlavorgroupFlavorCreate) -> FlavorgroupFlavorOut:
    group = service.add_flavor(db(), group_id, body.flavor_id, actor=current_principal().username)
    return FlavorgroupFlavorOut(flavorgroup_id=group.id, flavor_id=body.flavor_id)


@endpoint(
    bp,
    "/flavorgroups/<group_id>/flavors",
    "GET",
    permission="HVS:flavorgroup-flavors:search",
    response=list[FlavorgroupFlavorOut],
    summary="The flavors of a flavor group",
)
def search_flavorgroup_flavors(group_id: str) -> list[FlavorgroupFlavorOut]:
    group, flavor_ids = service.group_flavor_ids(db(), group_id)
    return [FlavorgroupFlavorOut(flavorgroup_id=group.id, flavor_id=i) for i in flavor_ids]


@endpoint(
    bp,
    "/flavorgroups/<group_id>/flavors/<flavor_id>",
    "DELETE",
    permission="HVS:flavorgroup-flavors:delete",
    summary="Remove a flavor from a flavor group (the flavor itself stays)",
)
def unlink_flavorgroup_flavor(group_id: str, flavor_id: str) -> None:
    service.remove_flavor(db(), group_id, flavor_id, actor=current_principal().username)
