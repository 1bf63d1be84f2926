"""/hvs/v2/flavors: manual upload, search, retrieval, export and deletion of signed flavors; flavor import
from a golden host (``/flavors/from-host``); SOFTWARE flavors (``/flavor-from-app-manifest``,
``/rpc/deploy-software-manifest``).

Export is the search itself: ``GET /hvs/v2/flavors`` (with or without filters) answers SecL's
``{"signed_flavors": [{"flavor", "signature", ...}]}``; ``GET /hvs/v2/flavors/<id>`` answers one envelope. A
stored flavor whose signature does not verify is never returned: the request is refused with 409
``flavor-signature-invalid`` naming it, and the server log says so as an error.
"""

from __future__ import annotations

from flask import Blueprint

from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.flavors import hostimport, service, software
from secl.central.flavors.schemas import (
    DeploySoftwareManifest,
    FlavorCreate,
    FlavorFromAppManifest,
    FlavorImport,
    FlavorSearch,
    ManifestDeployed,
    SeclSignatureOut,
    SignedFlavorCollection,
    SignedFlavorOut,
)
from secl.central.flavors.store import verified
from secl.central.hosts.service import get_host, get_host_by_connection
from secl.central.store.hvs_flavor_models import StoredFlavor
from secl.core.flavor import SignedFlavor
from secl.core.pcrevents import thaw

bp = Blueprint("flavors", __name__, url_prefix="/hvs/v2")


def _signed_out(row: StoredFlavor, signed: SignedFlavor) -> SignedFlavorOut:
    secl = None
    if row.secl_signature is not None:
        secl = SeclSignatureOut(
            signature=row.secl_signature,
            status=row.secl_signature_status or "unchecked",
            detail=row.secl_signature_detail or "",
        )
    source = signed.flavor.source
    flavor = thaw(source) if source is not None else signed.flavor.to_json()
    return SignedFlavorOut(
        flavor=flavor, signature=signed.signature, signature_scheme=row.signature_scheme, secl_signature=secl
    )


def _verified_out(row: StoredFlavor) -> SignedFlavorOut:
    return _signed_out(row, verified(services(), row))


@endpoint(
    bp,
    "/flavors",
    "POST",
    permission="HVS:flavors:create",
    body=FlavorCreate,
    response=SignedFlavorCollection,
    status=201,
    summary="Upload flavors (SecL's flavor_collection, or signed_flavors whose SecL signature is kept); "
    "each is signed with the central's flavor-signing key and added to its flavor groups",
)
def create_flavors(body: FlavorCreate) -> SignedFlavorCollection:
    rows = service.upload(db(), services(), body, actor=current_principal().username)
    return SignedFlavorCollection(signed_flavors=[_verified_out(r) for r in rows])


@endpoint(
    bp,
    "/flavors",
    "GET",
    permission="HVS:flavors:search",
    query=FlavorSearch,
    response=SignedFlavorCollection,
    summary="Search and export signed flavors (id, flavorgroupId, flavorPart, key/value on "
    "meta.description); every flavor is verified before it is returned",
)
def search_flavors(query: FlavorSearch) -> SignedFlavorCollection:
    rows = service.search(
        db(),
        flavor_id=query.id,
        flavor_part=query.flavorPart,
        key=query.key,
        value=query.value,
        flavorgroup_id=query.flavorgroupId,
    )
    return SignedFlavorCollection(signed_flavors=[_verified_out(r) for r in rows])


@endpoint(
    bp,
    "/flavors/<flavor_id>",
    "GET",
    permission="HVS:flavors:retrieve",
    response=SignedFlavorOut,
    summary="One signed flavor {flavor, signature}, after verifying the central's signature over it",
)
def retrieve_flavor(flavor_id: str) -> SignedFlavorOut:
    return _verified_out(service.get_flavor(db(), flavor_id))


@endpoint(
    bp,
    "/flavors/<flavor_id>",
    "DELETE",
    permission="HVS:flavors:delete",
    summary="Delete a flavor and its flavor group links",
)
def delete_flavor(flavor_id: str) -> None:
    service.delete_flavor(db(), flavor_id, actor=current_principal().username)


@endpoint(
    bp,
    "/flavors/from-host",
    "POST",
    permission="HVS:flavors:create",
    body=FlavorImport,
    response=SignedFlavorCollection,
    status=201,
    summary="Import flavors from a registered golden host: verified evidence from its trust agent, "
    "the active flavor templates that apply to it, each flavor signed and stored",
)
def import_flavors(body: FlavorImport) -> SignedFlavorCollection:
    session = db()
    host = (
        get_host(session, body.host_id)
        if body.host_id is not None
        else get_host_by_connection(session, body.connection_string)
    )
    rows = hostimport.import_from_host(
        session,
        services(),
        host,
        parts=body.partial_flavor_types,
        flavorgroup_names=body.flavorgroup_names,
        actor=current_principal().username,
    )
    return SignedFlavorCollection(signed_flavors=[_verified_out(r) for r in rows])


@endpoint(
    bp,
    "/flavor-from-app-manifest",
    "POST",
    permission="HVS:flavors:create",
    body=FlavorFromAppManifest,
    response=SignedFlavorOut,
    status=201,
    summary="Make a SOFTWARE flavor from a SecL Manifest XML measured now on a registered host by its "
    "trust agent; the flavor is signed and stored in the flavor groups named",
)
def flavor_from_app_manifest(body: FlavorFromAppManifest) -> SignedFlavorOut:
    _, row = software.flavor_from_app_manifest(
        db(),
        services(),
        host_id=body.host_id,
        connection_string=body.connection_string,
        manifest_xml=body.manifest,
        flavorgroup_names=body.flavorgroup_names,
        actor=current_principal().username,
    )
    return _verified_out(row)


@endpoint(
    bp,
    "/rpc/deploy-software-manifest",
    "POST",
    permission="HVS:software-manifests:deploy",
    body=DeploySoftwareManifest,
    response=ManifestDeployed,
    summary="Store the manifest of a SOFTWARE flavor on a registered host, through its trust agent, "
    "for the host's initrd to measure from the next boot on",
)
def deploy_software_manifest(body: DeploySoftwareManifest) -> ManifestDeployed:
    deployed = software.deploy_manifest(
        db(), services(), body.flavor_id, body.host_id, actor=current_principal().username
    )
    return ManifestDeployed(
        host_id=deployed.host.id,
        flavor_id=deployed.flavor_id,
        label=deployed.label,
        manifest=deployed.manifest,
    )
