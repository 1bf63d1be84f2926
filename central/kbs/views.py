"""/kbs/v1: keys, key-transfer policies, the trust stores of other centrals, and key transfers
(see :mod:`secl.central.kbs.service`)."""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, request

from secl.central.endpoints import PUBLIC, current_principal, db, endpoint, services
from secl.central.errors import Invalid, UnsupportedMediaType
from secl.central.kbs import service
from secl.central.kbs.keystore import KeyAlgorithm, KeySpec
from secl.central.kbs.schemas import (
    KeyCreate,
    KeyInformationOut,
    KeyOut,
    KeySearch,
    KeyTransferOut,
    KeyTransferRequest,
    NameSearch,
    TransferPolicyCreate,
    TransferPolicyOut,
    TrustedCertificateCreate,
    TrustedCertificateOut,
)
from secl.central.kbs.transfer import TransferEvidence
from secl.central.store.kbs_models import KeyRecord, TransferPolicyRecord, TrustedCertificate
from secl.central.versions import add_version_route

bp = Blueprint("kbs", __name__, url_prefix="/kbs/v1")
add_version_route(bp, "KBS", "v1")

_MAX_ENVELOPE_KEY = 64 * 1024


def _key_out(row: KeyRecord) -> KeyOut:
    return KeyOut(
        key_information=KeyInformationOut(
            id=row.id,
            algorithm=row.algorithm,
            key_length=row.key_length,
            curve_type=row.curve_type,
            kmip_key_id=row.reference if row.store == "kmip" else None,
        ),
        transfer_policy_id=row.transfer_policy_id,
        transfer_link=f"{request.host_url.rstrip('/')}/kbs/v1/keys/{row.id}/transfer",
        created_at=row.created_at,
        label=row.label,
        usage=row.usage,
    )


def _policy_out(row: TransferPolicyRecord) -> TransferPolicyOut:
    return TransferPolicyOut(
        id=row.id,
        name=row.name,
        require_trusted=row.require_trusted,
        required_flavor_parts=row.required_flavor_parts,
        required_tags=row.required_tags,
        usage=service.policy_usage(row),
        max_report_age_seconds=row.max_report_age_seconds,
        hardware_uuids=row.hardware_uuids,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _certificate_out(row: TrustedCertificate) -> TrustedCertificateOut:
    return TrustedCertificateOut(
        id=row.id,
        subject=row.subject,
        issuer=row.issuer,
        sha256=row.sha256,
        not_after=row.not_after,
        created_at=row.created_at,
        created_by=row.created_by,
    )


# --- keys --------------------------------------------------------------------------------------------------


@endpoint(
    bp,
    "/keys",
    "POST",
    permission="KBS:keys:create",
    body=KeyCreate,
    response=KeyOut,
    status=201,
    summary="Create a key in the configured key store (AES-128/192/256, RSA, EC), or register an existing "
    "one (key_information.key_string); the material never leaves the broker unwrapped",
)
def create_key(body: KeyCreate) -> KeyOut:
    info = body.key_information
    algorithm = KeyAlgorithm(info.algorithm)
    material = service.parse_material(algorithm, info.key_string) if info.key_string else None
    key_request = service.KeyRequest(
        spec=KeySpec(algorithm, info.key_length, info.curve_type),
        material=material,
        transfer_policy_id=body.transfer_policy_id,
        label=body.label,
        usage=body.usage,
    )
    return _key_out(service.create_key(db(), services(), key_request, actor=current_principal().username))


@endpoint(
    bp,
    "/keys",
    "GET",
    permission="KBS:keys:search",
    query=KeySearch,
    response=list[KeyOut],
    summary="List keys, by label or algorithm",
)
def search_keys(query: KeySearch) -> list[KeyOut]:
    return [_key_out(row) for row in service.search_keys(db(), label=query.label, algorithm=query.algorithm)]


@endpoint(bp, "/keys/<key_id>", "GET", permission="KBS:keys:retrieve", response=KeyOut, summary="Get a key")
def get_key(key_id: str) -> KeyOut:
    return _key_out(service.get_key(db(), key_id))


@endpoint(
    bp,
    "/keys/<key_id>",
    "DELETE",
    permission="KBS:keys:delete",
    summary="Delete a key and destroy its material in its store",
)
def delete_key(key_id: str) -> None:
    service.delete_key(db(), services(), key_id, actor=current_principal().username)


@endpoint(
    bp,
    "/keys/<key_id>/transfer",
    "POST",
    permission=PUBLIC,
    body=KeyTransferRequest,
    response=KeyTransferOut,
    summary="Release a key to a host's TPM. No token: the body's evidence authorizes it (the host's "
    "attestation result, signed by a trusted report signer, with its AIK and binding-key certificates), "
    "checked against the key's transfer policy; the key is wrapped with RSA-OAEP-SHA256 (label TPM2\\0) "
    "to the host's certified binding key",
)
def transfer_key(key_id: str, body: KeyTransferRequest) -> KeyTransferOut:
    evidence = TransferEvidence(
        attestation_jwt=body.attestation_result,
        aik_certificate=_certificate_bytes(body.aik_certificate, "aik_certificate"),
        binding_key_certificate=_certificate_bytes(body.binding_key_certificate, "binding_key_certificate"),
    )
    released = service.transfer_to_host(db(), services(), key_id, evidence, actor="host-evidence")
    return _transfer_out(released)


@endpoint(
    bp,
    "/keys/<key_id>",
    "POST",
    permission="KBS:keys:transfer",
    response=KeyTransferOut,
    summary="The image owner's envelope transfer (SecL's WPM): the key wrapped with RSA-OAEP-SHA256 (label "
    "TPM2\\0) to the RSA public key or certificate in the body (Content-Type: application/x-pem-file)",
)
def transfer_key_to_owner(key_id: str) -> KeyTransferOut:
    if request.mimetype not in ("application/x-pem-file", "text/plain"):
        raise UnsupportedMediaType("the body must be a PEM public key (Content-Type: application/x-pem-file)")
    pem = request.get_data(cache=False)
    if not pem or len(pem) > _MAX_ENVELOPE_KEY:
        raise Invalid("the body must be a PEM RSA public key or certificate", code="envelope-key-malformed")
    released = service.transfer_to_owner(db(), services(), key_id, pem, actor=current_principal().username)
    return _transfer_out(released)


def _transfer_out(released: service.Released) -> KeyTransferOut:
    row = released.key
    return KeyTransferOut(
        id=row.id,
        payload=base64.b64encode(released.wrapped).decode(),
        algorithm=row.algorithm,
        key_length=row.key_length,
        created_at=row.created_at,
    )


def _certificate_bytes(text: str, field: str) -> bytes:
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(
            f"{field} is neither PEM nor base64 of a DER certificate", code="certificate-malformed"
        ) from None


# --- key-transfer policies ---------------------------------------------------------------------------------


@endpoint(
    bp,
    "/key-transfer-policies",
    "POST",
    permission="KBS:key-transfer-policies:create",
    body=TransferPolicyCreate,
    response=TransferPolicyOut,
    status=201,
    summary="Create a key-transfer policy: trust (overall or named flavor parts), asset tags, the "
    "report's maximum age, and optionally the hosts it allows",
)
def create_policy(body: TransferPolicyCreate) -> TransferPolicyOut:
    policy_request = service.PolicyRequest(
        name=body.name,
        require_trusted=body.require_trusted,
        required_flavor_parts=tuple(body.required_flavor_parts),
        required_tags=body.required_tags,
        usage=body.usage,
        max_report_age_seconds=body.max_report_age_seconds,
        hardware_uuids=tuple(body.hardware_uuids) if body.hardware_uuids is not None else None,
    )
    return _policy_out(service.create_policy(db(), policy_request, actor=current_principal().username))


@endpoint(
    bp,
    "/key-transfer-policies",
    "GET",
    permission="KBS:key-transfer-policies:search",
    query=NameSearch,
    response=list[TransferPolicyOut],
    summary="List key-transfer policies",
)
def search_policies(query: NameSearch) -> list[TransferPolicyOut]:
    return [_policy_out(row) for row in service.search_policies(db(), query.name)]


@endpoint(
    bp,
    "/key-transfer-policies/<policy_id>",
    "GET",
    permission="KBS:key-transfer-policies:retrieve",
    response=TransferPolicyOut,
    summary="Get a key-transfer policy",
)
def get_policy(policy_id: str) -> TransferPolicyOut:
    return _policy_out(service.get_policy(db(), policy_id))


@endpoint(
    bp,
    "/key-transfer-policies/<policy_id>",
    "DELETE",
    permission="KBS:key-transfer-policies:delete",
    summary="Delete a key-transfer policy that no key uses (the default one stays)",
)
def delete_policy(policy_id: str) -> None:
    service.delete_policy(db(), policy_id, actor=current_principal().username)


# --- trust stores: other centrals' report signers (SecL's saml-certificates) and Privacy CAs ---------------


def _trust_store_routes(path: str, kind: str, resource: str, what: str) -> None:
    def add(body: TrustedCertificateCreate) -> TrustedCertificateOut:
        return _certificate_out(
            service.add_trusted_certificate(db(), kind, body.certificate, actor=current_principal().username)
        )

    def search() -> list[TrustedCertificateOut]:
        return [_certificate_out(row) for row in service.trusted_certificates(db(), kind)]

    def delete(certificate_id: str) -> None:
        service.delete_trusted_certificate(db(), kind, certificate_id, actor=current_principal().username)

    add.__name__, search.__name__, delete.__name__ = (
        f"add_{resource}",
        f"search_{resource}",
        f"delete_{resource}",
    )
    endpoint(
        bp,
        path,
        "POST",
        permission=f"KBS:{resource}:create",
        body=TrustedCertificateCreate,
        response=TrustedCertificateOut,
        status=201,
        summary=f"Trust {what} (PEM)",
    )(add)
    endpoint(
        bp,
        path,
        "GET",
        permission=f"KBS:{resource}:search",
        response=list[TrustedCertificateOut],
        summary=f"The {what} trusted besides this central's own",
    )(search)
    endpoint(
        bp,
        f"{path}/<certificate_id>",
        "DELETE",
        permission=f"KBS:{resource}:delete",
        summary=f"Stop trusting one of the {what}",
    )(delete)


_trust_store_routes(
    "/saml-certificates",
    service.REPORT_SIGNER,
    "saml-certificates",
    "another central's report-signing certificate, whose attestation results then release keys",
)
_trust_store_routes(
    "/tpm-identity-certificates",
    service.PRIVACY_CA,
    "tpm-identity-certificates",
    "another central's Privacy CA, whose AIK and binding-key certificates are then accepted",
)
