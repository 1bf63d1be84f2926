"""/cms/v1: the public CA certificates, enrollment tokens, and CSR signing for enrolled hosts and services."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from secl.central.cms import enrollment, pki, service
from secl.central.cms.schemas import (
    CACertificateOut,
    CACertificatesOut,
    CertificateIssued,
    CertificateRequest,
    CertificateSearch,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenOut,
    EnrollmentTokenSearch,
    IssuedCertificateOut,
)
from secl.central.endpoints import PUBLIC, current_principal, db, endpoint, services
from secl.central.store.models import EnrollmentToken
from secl.central.versions import add_version_route

bp = Blueprint("cms", __name__, url_prefix="/cms/v1")
add_version_route(bp, "CMS", "v1")

PEM_MEDIA_TYPE = "application/x-pem-file"


def _token_out(token: EnrollmentToken) -> EnrollmentTokenOut:
    return EnrollmentTokenOut(
        id=token.id,
        host=token.host,
        kinds=token.kinds,
        created_at=token.created_at,
        expires_at=token.expires_at,
        created_by=token.created_by,
        uses=token.uses,
        max_uses=token.max_uses,
        state=enrollment.state(token),
    )


@endpoint(
    bp,
    "/ca-certificates",
    "GET",
    permission=PUBLIC,
    response=CACertificatesOut,
    summary="The root CA certificate and its SHA-384 fingerprint (JSON); with "
    "'Accept: application/x-pem-file', the PEM bundle alone",
)
def ca_certificates() -> CACertificatesOut | Response:
    certs = service.ca_certificates(services().keys.root_ca)
    bundle = service.pem(*certs)
    if request.accept_mimetypes.best_match(["application/json", PEM_MEDIA_TYPE]) == PEM_MEDIA_TYPE:
        return Response(bundle, mimetype=PEM_MEDIA_TYPE)
    return CACertificatesOut(
        fingerprint_sha384=pki.fingerprint_sha384(certs[0]),
        pem=bundle,
        certificates=[
            CACertificateOut(
                subject=c.subject.rfc4514_string(),
                fingerprint_sha384=pki.fingerprint_sha384(c),
                not_after=c.not_valid_after_utc,
                pem=service.pem(c),
            )
            for c in certs
        ],
    )


@endpoint(
    bp,
    "/enrollment-tokens",
    "POST",
    permission="CMS:enrollment-tokens:create",
    body=EnrollmentTokenCreate,
    response=EnrollmentTokenCreated,
    status=201,
    summary="Mint an enrollment token for one host; its value is returned once, here",
)
def create_enrollment_token(body: EnrollmentTokenCreate) -> EnrollmentTokenCreated:
    minted = enrollment.mint(
        db(),
        host=body.host,
        kinds=list(body.kinds),
        ttl_seconds=body.ttl_seconds,
        max_uses=body.max_uses,
        created_by=current_principal().username,
    )
    return EnrollmentTokenCreated(**_token_out(minted.row).model_dump(), token=minted.value)


@endpoint(
    bp,
    "/enrollment-tokens",
    "GET",
    permission="CMS:enrollment-tokens:search",
    query=EnrollmentTokenSearch,
    response=list[EnrollmentTokenOut],
    summary="List enrollment tokens (never their values), newest first",
)
def search_enrollment_tokens(query: EnrollmentTokenSearch) -> list[EnrollmentTokenOut]:
    return [_token_out(t) for t in enrollment.search(db(), query.host)]


@endpoint(
    bp,
    "/enrollment-tokens/<token_id>",
    "DELETE",
    permission="CMS:enrollment-tokens:delete",
    summary="Revoke an enrollment token",
)
def delete_enrollment_token(token_id: str) -> None:
    enrollment.delete(db(), token_id, actor=current_principal().username)


@bp.before_request
def _enrollment_token_first() -> None:
    # POST /certificates is authorized by an enrollment token, not a user JWT, so the endpoint decorator
    # sees it as PUBLIC. The decorator would then validate the body before anything checks the token; this
    # hook runs first, so, as for every protected route, a caller without a valid token gets 401 and learns
    # nothing about its body. The check itself (hash lookup, expiry, uses, audit) is in the service.
    if request.endpoint == f"{bp.name}.issue_certificate":
        g.enrollment_token = service.authenticate_enrollment(db(), request.headers.get("Authorization"))


@endpoint(
    bp,
    "/certificates",
    "POST",
    permission=PUBLIC,
    body=CertificateRequest,
    response=CertificateIssued,
    status=201,
    other_authorization="enrollmentToken",
    summary="Sign a CSR for the host an enrollment token names "
    "(Authorization: Bearer <enrollment token>; 401 without a valid one)",
)
def issue_certificate(body: CertificateRequest) -> CertificateIssued:
    context = services()
    issuer = context.keys.root_ca
    cert = service.issue_certificate(
        db(), issuer, g.enrollment_token, body.csr, kind=body.kind, days=context.config.certificate_days
    )
    return CertificateIssued(
        certificate=service.pem(cert),
        ca_certificates=service.pem(*service.ca_certificates(issuer)),
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(),
        kind=body.kind,
        fingerprint_sha384=pki.fingerprint_sha384(cert),
        not_after=cert.not_valid_after_utc,
    )


@endpoint(
    bp,
    "/certificates",
    "GET",
    permission="CMS:certificates:search",
    query=CertificateSearch,
    response=list[IssuedCertificateOut],
    summary="List issued certificates, newest first",
)
def search_certificates(query: CertificateSearch) -> list[IssuedCertificateOut]:
    certificates = service.search_certificates(db(), kind=query.kind, limit=query.limit)
    return [IssuedCertificateOut.model_validate(c, from_attributes=True) for c in certificates]
