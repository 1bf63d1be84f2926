"""/wls/v2: key requests of workload agents, images and image flavors, VM trust reports
(see :mod:`secl.central.wls.service`, :mod:`secl.central.wls.images`, :mod:`secl.central.wls.vmreports`)."""

from __future__ import annotations

import base64

from flask import Blueprint, request

from secl.central.cms.hostidentity import asserted_host
from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.store.wls_models import VmReport
from secl.central.versions import add_version_route
from secl.central.wls import images, service, vmreports
from secl.central.wls.schemas import (
    FlavorCreate,
    FlavorKeyOut,
    FlavorKeyQuery,
    FlavorSearch,
    ImageCreate,
    ImageOut,
    ImageSearch,
    KeyOut,
    KeyRequestBody,
    ReportCreate,
    ReportOut,
    ReportSearch,
    SignedFlavorOut,
)

bp = Blueprint("wls", __name__, url_prefix="/wls/v2")
add_version_route(bp, "WLS", "v2")


def _own_authorities() -> frozenset[str]:
    """How callers reach this central: a key URL naming one of these is this central's own broker."""
    config = services().config
    return frozenset({request.host.lower(), config.hostname.lower()})


def _key_request(hardware_uuid: str, key_url: str) -> service.WrappedKey:
    principal = current_principal()
    return service.request_key(
        db(),
        services(),
        service.KeyRequest(
            hardware_uuid=hardware_uuid,
            key_url=key_url,
            caller_host=asserted_host(principal),
            own_authorities=_own_authorities(),
        ),
        actor=principal.username,
    )


@endpoint(
    bp,
    "/keys",
    "POST",
    permission="WLS:keys:request",
    body=KeyRequestBody,
    response=KeyOut,
    summary="A host's key, wrapped to its TPM binding key: on the host's newest report when it is young "
    "enough for the key's policy, else after attesting the host now. A host (host assertion) may ask only "
    "for its own hardware UUID",
)
def request_key(body: KeyRequestBody) -> KeyOut:
    released = _key_request(body.hardware_uuid, body.key_url)
    return KeyOut(key=base64.b64encode(released.wrapped).decode(), key_id=released.key_id)


# --- image flavors -----------------------------------------------------------------------------------------


def _flavor_out(signed: images.SignedImageFlavor) -> SignedFlavorOut:
    return SignedFlavorOut(flavor=signed.flavor, signature=signed.signature)


@endpoint(
    bp,
    "/flavors",
    "POST",
    permission="WLS:flavors:create",
    body=FlavorCreate,
    response=SignedFlavorOut,
    status=201,
    summary="Store an image flavor (SecL's JSON), signed with the central's flavor-signing key",
)
def create_flavor(body: FlavorCreate) -> SignedFlavorOut:
    flavor = body.flavor.model_dump(mode="json", exclude_none=True)
    flavor["meta"]["id"] = flavor["meta"]["id"].lower()  # ids are compared in lower case everywhere
    return _flavor_out(images.create_flavor(db(), services(), flavor, actor=current_principal().username))


@endpoint(
    bp,
    "/flavors",
    "GET",
    permission="WLS:flavors:search",
    query=FlavorSearch,
    response=list[SignedFlavorOut],
    summary="List image flavors, by label",
)
def search_flavors(query: FlavorSearch) -> list[SignedFlavorOut]:
    return [_flavor_out(f) for f in images.search_flavors(db(), services(), label=query.label)]


@endpoint(
    bp, "/flavors/<flavor_id>", "GET", permission="WLS:flavors:retrieve", response=SignedFlavorOut,
    summary="Get an image flavor with its signature (checked before it is served)",
)  # fmt: skip
def get_flavor(flavor_id: str) -> SignedFlavorOut:
    return _flavor_out(images.get_flavor(db(), services(), flavor_id.lower()))


@endpoint(
    bp, "/flavors/<flavor_id>", "DELETE", permission="WLS:flavors:delete",
    summary="Delete an image flavor that no image uses",
)  # fmt: skip
def delete_flavor(flavor_id: str) -> None:
    images.delete_flavor(db(), flavor_id.lower(), actor=current_principal().username)


# --- images ------------------------------------------------------------------------------------------------


def _image_out(image: images.Image) -> ImageOut:
    return ImageOut(id=image.id, flavor_ids=image.flavor_ids)


@endpoint(
    bp, "/images", "POST", permission="WLS:images:create", body=ImageCreate, response=ImageOut, status=201,
    summary="Register an image (its UUID) and link it to its image flavors",
)  # fmt: skip
def create_image(body: ImageCreate) -> ImageOut:
    image_id = body.id.lower()
    flavor_ids = [f.lower() for f in body.flavor_ids]
    return _image_out(images.create_image(db(), image_id, flavor_ids, actor=current_principal().username))


@endpoint(
    bp, "/images", "GET", permission="WLS:images:search", query=ImageSearch, response=list[ImageOut],
    summary="List images, by flavor",
)  # fmt: skip
def search_images(query: ImageSearch) -> list[ImageOut]:
    flavor_id = query.flavor_id.lower() if query.flavor_id else None
    return [_image_out(i) for i in images.search_images(db(), flavor_id=flavor_id)]


@endpoint(
    bp,
    "/images/<image_id>",
    "GET",
    permission="WLS:images:retrieve",
    response=ImageOut,
    summary="Get an image",
)
def get_image(image_id: str) -> ImageOut:
    return _image_out(images.get_image(db(), image_id.lower()))


@endpoint(
    bp,
    "/images/<image_id>",
    "DELETE",
    permission="WLS:images:delete",
    summary="Delete an image and its links",
)
def delete_image(image_id: str) -> None:
    images.delete_image(db(), image_id.lower(), actor=current_principal().username)


@endpoint(
    bp,
    "/images/<image_id>/flavor-key",
    "GET",
    permission="WLS:keys:request",
    query=FlavorKeyQuery,
    response=FlavorKeyOut,
    summary="The image's signed flavor and, when it is encrypted, its key wrapped to the host's TPM "
    "(the checks of POST /wls/v2/keys)",
)
def flavor_key(image_id: str, query: FlavorKeyQuery) -> FlavorKeyOut:
    signed = images.image_flavor(db(), services(), image_id.lower())
    out = FlavorKeyOut(flavor=signed.flavor, signature=signed.signature)
    encryption = signed.flavor.get("encryption") or {}
    if signed.flavor.get("encryption_required") and encryption.get("key_url"):
        released = _key_request(query.hardware_uuid, encryption["key_url"])
        out.key = base64.b64encode(released.wrapped).decode()
        out.key_id = released.key_id
    return out


# --- VM trust reports --------------------------------------------------------------------------------------


def _report_out(row: VmReport) -> ReportOut:
    doc = row.document
    return ReportOut(
        id=row.id,
        instance_manifest=doc["instance_manifest"],
        policy_name=doc.get("policy_name"),
        results=doc.get("results") or [],
        trusted=row.trusted,
        data=doc["data"],
        hash_alg=doc["hash_alg"],
        signature=doc["signature"],
        created_at=row.created_at,
    )


@endpoint(
    bp,
    "/reports",
    "POST",
    permission="WLS:reports:create",
    body=ReportCreate,
    response=ReportOut,
    status=201,
    summary="File a VM's instance trust report (SecL's), signed by the host's certified TPM signing key; "
    "a host files reports only about itself",
)
def create_report(body: ReportCreate) -> ReportOut:
    principal = current_principal()
    signed = vmreports.SignedReport(
        data=vmreports.decode_b64(body.data, "data"),
        hash_alg=body.hash_alg,
        signature=vmreports.decode_b64(body.signature, "signature"),
        unsigned=body.model_dump(
            include={"instance_manifest", "policy_name", "results", "trusted"}, exclude_none=True
        ),
    )
    row = vmreports.create_report(
        db(), signed, caller_host=asserted_host(principal), actor=principal.username
    )
    return _report_out(row)


@endpoint(
    bp,
    "/reports",
    "GET",
    permission="WLS:reports:search",
    query=ReportSearch,
    response=list[ReportOut],
    summary="VM trust reports, newest first, by instance, host hardware UUID and time window",
)
def search_reports(query: ReportSearch) -> list[ReportOut]:
    rows = vmreports.search_reports(
        db(),
        instance_id=query.instance_id,
        hardware_uuid=query.hardware_uuid,
        since=query.from_,
        until=query.to,
        limit=query.limit,
    )
    return [_report_out(row) for row in rows]
