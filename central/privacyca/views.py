"""/hvs/v2/privacyca: AIK certification through MakeCredential / ActivateCredential, and the Privacy CA's
certificate (see :mod:`secl.central.privacyca.service`)."""

from __future__ import annotations

import base64

from flask import Blueprint

from secl.central.cms import pki
from secl.central.cms.enrollment import host_of
from secl.central.cms.hostidentity import asserted_host
from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.privacyca import hostkeys, service
from secl.central.privacyca.schemas import (
    AIKCertificateIssued,
    BindingKeyCertificate,
    IdentityChallenge,
    IdentityChallengeRequest,
    IdentityChallengeResponse,
    PrivacyCAOut,
    RegisterKeyInfo,
    SigningKeyCertificate,
)
from secl.core.certifiedkey import KeyCertificationRequest, KeyUsage

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


def _key_request(body: RegisterKeyInfo) -> KeyCertificationRequest:
    return KeyCertificationRequest(
        public_area=base64.b64decode(body.public_key_modulus),
        certify_info=base64.b64decode(body.tpm_certify_key),
        certify_signature=base64.b64decode(body.tpm_certify_key_signature),
        aik_certificate=base64.b64decode(body.aik_der_certificate),
        name_digest=base64.b64decode(body.name_digest),
        tpm_version=body.tpm_version,
        operating_system=body.operating_system,
    )


def _certify(body: RegisterKeyInfo, usage: KeyUsage) -> bytes:
    caller = current_principal()
    row = hostkeys.certify_host_key(
        db(), services(), _key_request(body), usage, actor=caller.username, caller_host=asserted_host(caller)
    )
    return row.der


@endpoint(
    bp,
    "/rpc/certify-host-binding-key",
    "POST",
    permission="HVS:host-keys:certify",
    body=RegisterKeyInfo,
    response=BindingKeyCertificate,
    status=201,
    summary="Certify a host's TPM binding key (decrypt-only, non-migratable, TPM2_Certify'd by the host's "
    "AIK): the Privacy CA's certificate, which key transfers wrap keys to",
)
def certify_host_binding_key(body: RegisterKeyInfo) -> BindingKeyCertificate:
    return BindingKeyCertificate(binding_key_der_certificate=_b64(_certify(body, KeyUsage.BINDING)))


@endpoint(
    bp,
    "/rpc/certify-host-signing-key",
    "POST",
    permission="HVS:host-keys:certify",
    body=RegisterKeyInfo,
    response=SigningKeyCertificate,
    status=201,
    summary="Certify a host's TPM signing key (sign-only, non-migratable, TPM2_Certify'd by the host's AIK), "
    "which signs its VM trust reports",
)
def certify_host_signing_key(body: RegisterKeyInfo) -> SigningKeyCertificate:
    return SigningKeyCertificate(signing_key_der_certificate=_b64(_certify(body, KeyUsage.SIGNING)))
