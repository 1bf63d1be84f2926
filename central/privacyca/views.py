"""/hvs/v2/privacyca: AIK certification through MakeCredential / ActivateCredential, and the Privacy CA's
certificate (see :mod:`secl.central.privacyca.service`)."""

from __future__ import annotations

import base64

from flask import Blueprint

from secl.central.cms import pki
from secl.central.cms.enrollment import host_of
from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.privacyca import service
from secl.central.privacyca.schemas import (
    AIKCertificateIssued,
    IdentityChallenge,
    IdentityChallengeRequest,
    IdentityChallengeResponse,
    PrivacyCAOut,
)

bp = Blueprint("privacyca", __name__, url_prefix="/hvs/v2")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@endpoint(
    bp,
    "/privacyca/identity-challenge-request",
    "POST",
    permission="HVS:aik:certify",
    body=IdentityChallengeRequest,
    response=IdentityChallenge,
    status=201,
    summary="Start AIK certification: check the EK certificate against the endorsement CAs and the "
    "AIK's attributes, and return a MakeCredential challenge for the host's TPM",
)
def identity_challenge_request(body: IdentityChallengeRequest) -> IdentityChallenge:
    caller = current_principal()
    issued = service.request_challenge(
        db(),
        services(),
        ek_certificate=base64.b64decode(body.ek_certificate),
        ek_public=base64.b64decode(body.ek_public),
        aik_public=base64.b64decode(body.aik_public),
        host_name=body.host_name,
        actor=caller.username,
        enrolled_host=host_of(caller),
    )
    return IdentityChallenge(
        challenge_id=issued.row.id,
        credential_blob=_b64(issued.credential_blob),
        encrypted_secret=_b64(issued.encrypted_secret),
        expires_at=issued.row.expires_at,
    )


@endpoint(
    bp,
    "/privacyca/identity-challenge-response",
    "POST",
    permission="HVS:aik:certify",
    body=IdentityChallengeResponse,
    response=AIKCertificateIssued,
    status=201,
    summary="Finish AIK certification: the secret recovered by ActivateCredential buys an AIK "
    "certificate signed by the Privacy CA; each challenge is answered once",
)
def identity_challenge_response(body: IdentityChallengeResponse) -> AIKCertificateIssued:
    context = services()
    cert = service.redeem_challenge(
        db(),
        context,
        challenge_id=body.challenge_id,
        secret=base64.b64decode(body.secret),
        actor=current_principal().username,
    )
    return AIKCertificateIssued(
        aik_certificate=service.pem(cert),
        privacy_ca=service.pem(*context.keys.privacy_ca.chain),
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


@endpoint(
    bp,
    "/privacyca/certificate",
    "GET",
    permission="HVS:privacyca:retrieve",
    response=PrivacyCAOut,
    summary="The Privacy CA certificate that signs AIK certificates, and its chain",
)
def privacy_ca_certificate() -> PrivacyCAOut:
    ca = services().keys.privacy_ca
    cert = ca.issuer.certificate
    return PrivacyCAOut(
        certificate=service.pem(cert),
        chain=service.pem(*ca.chain),
        subject=cert.subject.rfc4514_string(),
        fingerprint_sha384=pki.fingerprint_sha384(cert),
        not_after=cert.not_valid_after_utc,
    )
