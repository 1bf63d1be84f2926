"""Helpers for the workload service's tests: a host signed in with a host assertion (enrolled through the
central's own /cms/v1), a host registered with a hardware UUID, SecL's signed instance trust report."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from secl.central.store.hvs_flavor_models import Host
from secl.core.hostassertion import sign_host_assertion

HVS = "/hvs/v2"
WLS = "/wls/v2"


@dataclass(frozen=True)
class EnrolledHost:
    id: str
    name: str
    hardware_uuid: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def headers(self, audience: str = "localhost") -> dict[str, str]:
        """A fresh host assertion, as a workload agent sends it."""
        return {
            "Authorization": f"Bearer {sign_host_assertion(self.certificate, self.key, audience=audience)}"
        }


def enroll_host(
    client: FlaskClient, app: Flask, admin: dict[str, str], name: str, hardware_uuid: str
) -> EnrolledHost:
    """Register ``name`` (an unreachable agent), give it ``hardware_uuid`` as the verifier would, and
    enroll a TLS client certificate for it (enrollment token, CSR)."""
    created = client.post(
        f"{HVS}/hosts",
        json={"host_name": name, "connection_string": "intel:https://127.0.0.1:9"},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    host_id = created.get_json()["id"]
    with app.app_context(), app.extensions["secl.db"].sessions() as session:
        row = session.get(Host, host_id)
        assert row is not None
        row.hardware_uuid = hardware_uuid
        session.commit()
    token = client.post(
        "/cms/v1/enrollment-tokens", json={"host": name, "kinds": ["tls-client"]}, headers=admin
    )
    assert token.status_code == 201, token.get_json()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    issued = client.post(
        "/cms/v1/certificates",
        json={"csr": csr, "kind": "tls-client"},
        headers={"Authorization": f"Bearer {token.get_json()['token']}"},
    )
    assert issued.status_code == 201, issued.get_json()
    certificate = x509.load_pem_x509_certificate(issued.get_json()["certificate"].encode())
    return EnrolledHost(host_id, name, hardware_uuid, certificate, key)


def instance_report(hardware_uuid: str, instance_id: str, *, trusted: bool = True) -> dict[str, Any]:
    """SecL's InstanceTrustReport (unsigned)."""
    return {
        "instance_manifest": {
            "instance_info": {
                "instance_id": instance_id,
                "host_hardware_uuid": hardware_uuid,
                "image_id": "7a7b1e4e-0000-4000-8000-0000000000a1",
            },
            "image_encrypted": True,
        },
        "policy_name": "Intel VM Policy",
        "results": [
            {
                "rule": {
                    "rule_name": "EncryptionMatches",
                    "markers": ["IMAGE"],
                    "expected": {"name": "encryption_required", "value": True},
                },
                "flavor_id": "0b0e9f58-0000-4000-8000-0000000000f1",
                "trusted": trusted,
            }
        ],
        "trusted": trusted,
    }


def signed_report(report: dict[str, Any], signature: bytes, data: bytes) -> dict[str, Any]:
    """SecL's WLS Report: the report's fields beside crypt.SignedData (data, hash_alg, signature)."""
    return {
        **report,
        "data": base64.b64encode(data).decode(),
        "hash_alg": "SHA-256",
        "signature": base64.b64encode(signature).decode(),
    }


def sign_in_software(report: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    data = json.dumps(report).encode()
    return signed_report(report, key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data)
