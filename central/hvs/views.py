"""/hvs/v2: the Privacy CA (AIK certification) and the endorsement trust store (TPM vendor EK CAs)."""

from __future__ import annotations

import base64

from flask import Blueprint, current_app
from secl.central.cms import pki
from secl.central.cms.enrollment import host_of
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Forbidden
from secl.central.hvs import privacyca
from secl.central.hvs.schemas import (
    AIKCertificateIssued,
    EndorsementCACreate,
    EndorsementCAOut,
    IdentityChallenge,
    IdentityChallengeRequest,
    IdentityChallengeResponse,
    PrivacyCAOut,
)
from secl.central.store.db import db
from secl.central.versions import add_version_route

bp = Blueprint("hvs", __name__, url_prefix="/hvs/v2")
add_version_route(bp, "HVS", "v2")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@endpoint(bp, "/privacyca/identity-challenge-request", "POST", permission="HVS:aik:certify",
          body=IdentityChallengeRequest, response=IdentityChallenge, status=201,
          summary="Start AIK certification: check the EK certificate against the endorsement CAs and the "
                  "AIK's attributes, and return a MakeCredential challenge for the host's TPM")  # fmt: skip
def identity_challenge_request(body: IdentityChallengeRequest) -> IdentityChallenge:
    host = host_of(current_principal())
    if host is not None and host != body.host_name:
        raise Forbidden(
            f"this enrollment token is for {host}, not {body.host_name}", code="enrollment-name-mismatch"
        )
    issued = privacyca.request_challenge(
        db(), current_app, ek_certificate=base64.b64decode(body.ek_certificate),
        ek_public=base64.b64decode(body.ek_public), aik_public=base64.b64decode(body.aik_public),
        host_name=body.host_name, actor=current_principal().username,
    )  # fmt: skip
    return IdentityChallenge(
        challenge_id=issued.row.id, credential_blob=_b64(issued.credential_blob),
        encrypted_secret=_b64(issued.encrypted_secret), expires_at=issued.row.expires_at,
    )  # fmt: skip


@endpoint(bp, "/privacyca/identity-challenge-response", "POST", permission="HVS:aik:certify",
          body=IdentityChallengeResponse, response=AIKCertificateIssued, status=201,
          summary="Finish AIK certification: the secret recovered by ActivateCredential buys an AIK "
                  "certificate signed by the Privacy CA; each challenge is answered once")  # fmt: skip
def identity_challenge_response(body: IdentityChallengeResponse) -> AIKCertificateIssued:
    cert = privacyca.redeem_challenge(
        db(), current_app, challenge_id=body.challenge_id, secret=base64.b64decode(body.secret),
        actor=current_principal().username, days=current_app.extensions["secl.config"].certificate_days,
    )  # fmt: skip
    return AIKCertificateIssued(
        aik_certificate=privacyca.pem(cert), privacy_ca=privacyca.pem(*privacyca.privacy_ca(current_app).chain),
        serial=format(cert.serial_number, "x"), subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )  # fmt: skip


@endpoint(bp, "/privacyca/certificate", "GET", permission="HVS:privacyca:retrieve", response=PrivacyCAOut,
          summary="The Privacy CA certificate that signs AIK certificates, and its chain")  # fmt: skip
def privacy_ca_certificate() -> PrivacyCAOut:
    ca = privacyca.privacy_ca(current_app)
    cert = ca.issuer.certificate
    return PrivacyCAOut(
        certificate=privacyca.pem(cert), chain=privacyca.pem(*ca.chain), subject=cert.subject.rfc4514_string(),
        fingerprint_sha384=pki.fingerprint_sha384(cert), not_after=cert.not_valid_after_utc,
    )  # fmt: skip


def _ca_out(ca: privacyca.TrustedCA) -> EndorsementCAOut:
    cert, row = ca.certificate, ca.row
    return EndorsementCAOut(
        id=row.id if row else None, source="database" if row else "file", subject=str(cert.subject),
        issuer=str(cert.issuer), fingerprint_sha256=cert.fingerprint_sha256, not_before=cert.not_before,
        not_after=cert.not_after, created_at=row.created_at if row else None,
        created_by=row.created_by if row else None, pem=privacyca.der_to_pem(cert.der),
    )  # fmt: skip


@endpoint(bp, "/endorsement-cas", "POST", permission="HVS:endorsement-cas:create", body=EndorsementCACreate,
          response=EndorsementCAOut, status=201,
          summary="Trust a TPM vendor's EK CA certificate (PEM) for EK certificate validation")  # fmt: skip
def create_endorsement_ca(body: EndorsementCACreate) -> EndorsementCAOut:
    return _ca_out(
        privacyca.add_endorsement_ca(db(), current_app, body.certificate, actor=current_principal().username)
    )


@endpoint(bp, "/endorsement-cas", "GET", permission="HVS:endorsement-cas:search",
          response=list[EndorsementCAOut],
          summary="The trusted EK CAs: those in the database, then those of keys/endorsement-cas.pem")  # fmt: skip
def search_endorsement_cas() -> list[EndorsementCAOut]:
    return [_ca_out(ca) for ca in privacyca.trusted_cas(db(), current_app)]


@endpoint(bp, "/endorsement-cas/<ca_id>", "DELETE", permission="HVS:endorsement-cas:delete",
          summary="Stop trusting an EK CA held in the database (the bundle file is edited by hand)")  # fmt: skip
def delete_endorsement_ca(ca_id: str) -> None:
    privacyca.delete_endorsement_ca(db(), ca_id, actor=current_principal().username)


from secl.central.hvs import flavorgroups, flavors, hosts, templates  # noqa: E402, F401  (their routes join bp)

from secl.central.hvs import reports  # noqa: E402, F401  # isort: skip
from secl.central.hvs import flavorimport  # noqa: E402, F401  # isort: skip
from secl.central.hvs import jobviews  # noqa: E402, F401  # isort: skip
from secl.central.hvs import tpmendorsements  # noqa: E402, F401  # isort: skip
from secl.central.hvs import tagcerts  # noqa: E402, F401  # isort: skip
from secl.central.hvs import softwareflavors  # noqa: E402, F401  # isort: skip
