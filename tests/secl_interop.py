"""SecL's verifier test data in the corpus (intel-secl/pkg/lib/verifier/test_data): its cases, the trust
anchors each case was signed under, and certificates made for the rules' positive and negative paths."""

from __future__ import annotations

import datetime as dt
import json
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from secl.core.flavor import parse_signed_flavors
from secl.core.hostmanifest import parse_host_manifest
from secl.core.trustreport import TrustAnchors
from tests.corpus import corpus_bytes

BASE = "intel-secl/pkg/lib/verifier/test_data"
AT = {
    "UnknownVendor": dt.datetime(2021, 3, 9, tzinfo=dt.UTC),
    "vmware12": dt.datetime(2021, 1, 15, tzinfo=dt.UTC),
}


def certs(case: str, name: str) -> tuple[x509.Certificate, ...]:
    with warnings.catch_warnings():
        # SecL's CMS root (cms-ca-cert.pem) has a non-positive serial number, which cryptography still
        # loads but deprecates; the corpus is what it is.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return tuple(x509.load_pem_x509_certificates(corpus_bytes(f"{BASE}/{case}/{name}")))


def anchors(case: str, **changes) -> TrustAnchors:
    signer, *intermediates = certs(case, "flavor-signer.crt.pem")
    values = {
        "at": AT[case],
        "privacy_cas": certs(case, "PrivacyCA.pem"),
        "flavor_signing_cert": signer,
        "flavor_intermediates": tuple(intermediates),
        "flavor_cas": certs(case, "cms-ca-cert.pem"),
        "tag_cas": certs(case, "tag-cacerts.pem"),
    }
    values.update(changes)
    return TrustAnchors(**values)


def load(case: str):
    manifest = parse_host_manifest(corpus_bytes(f"{BASE}/{case}/host_manifest.json"))
    flavors = parse_signed_flavors(corpus_bytes(f"{BASE}/{case}/signed_flavors.json"))
    secl = json.loads(corpus_bytes(f"{BASE}/{case}/trust_report.json"))
    return manifest, flavors, secl


def make_cert(
    cn: str, key, issuer_key, issuer: x509.Certificate | None, *, ca: bool = False, days: int = 365
):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA384())
