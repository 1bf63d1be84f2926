"""Signing and checking flavor signatures.

Our scheme (DESIGN §3): the signature covers the RFC 8785 canonical JSON of the flavor with ``meta.id``
replaced by the nil UUID (the id is assigned when a flavor is stored, so it must not invalidate the
signature; SecL's Go HVS zeroes it for the same reason). An EC key signs with ECDSA using the hash that
matches its curve (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512); an RSA key signs RSASSA-PKCS1-v1_5 with
SHA-384 (SecL's choice). The envelope is SecL's ``{"flavor", "signature"}`` plus ``"signature_scheme"``,
a version marker, so a verifier never confuses our signatures with SecL's.

Flavors signed by SecL's Java HVS keep their original signature. Java signed its own Jackson serialization,
which nothing else reproduces byte for byte, so :func:`check_secl_signature` tries the serializations we
*can* reproduce and reports honestly whether one verified; it never pretends.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from secl.core.canonicaljson import canonicalize
from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, SignedFlavor
from secl.core.pcrevents import thaw
from secl.core.verifymemo import VerificationMemo, flavor_signature_key

__all__ = [
    "NIL_UUID",
    "SIGNATURE_SCHEME",
    "FlavorSignatureError",
    "SeclSignatureCheck",
    "check_secl_signature",
    "flavor_signing_payload",
    "sign_flavor",
    "sign_payload",
    "verify_flavor_signature",
    "verify_payload",
]

NIL_UUID = "00000000-0000-0000-0000-000000000000"
SIGNATURE_SCHEME = "jcs-nil-id/v1"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class FlavorSignatureError(EvidenceError):
    """A flavor signature is missing, malformed, of an unknown scheme, or does not verify."""

    code = "flavor-signature-invalid"


def flavor_signing_payload(flavor: Flavor) -> bytes:
    """The bytes our flavor signatures cover: JCS of the flavor with meta.id set to the nil UUID."""
    doc = flavor.to_json()
    doc["meta"]["id"] = NIL_UUID
    return canonicalize(doc)


def _ec_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    # Match the hash strength to the curve, as FIPS 186 / SEC 1 recommend.
    if curve.key_size <= 256:
        return hashes.SHA256()
    if curve.key_size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()


def sign_payload(payload: bytes, private_key: PrivateKey) -> str:
    """Our flavor signature (base64) over ``payload``: shared by HVS flavors and the workload service's
    image flavors, so both are signed the same way with the one flavor-signing key."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        sig = private_key.sign(payload, ec.ECDSA(_ec_hash(private_key.curve)))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        sig = private_key.sign(payload, padding.PKCS1v15(), hashes.SHA384())
    else:
        raise FlavorSignatureError(f"cannot sign flavors with a {type(private_key).__name__}")
    return base64.b64encode(sig).decode("ascii")


def verify_payload(
    payload: bytes, signature: bytes, public_key_or_cert: PublicKey | x509.Certificate
) -> None:
    """Check a signature :func:`sign_payload` made; raise :class:`FlavorSignatureError` if it fails."""
    key = _public_key(public_key_or_cert)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(_ec_hash(key.curve)))
        else:
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA384())
    except InvalidSignature:
        raise FlavorSignatureError("the flavor signature does not verify") from None


def sign_flavor(flavor: Flavor, private_key: PrivateKey) -> SignedFlavor:
    """Sign ``flavor`` with our scheme and return the envelope."""
    return SignedFlavor(
        flavor,
        sign_payload(flavor_signing_payload(flavor), private_key),
        MappingProxyType({"signature_scheme": SIGNATURE_SCHEME}),
    )


def _public_key(key_or_cert: PublicKey | x509.Certificate) -> PublicKey:
    key = key_or_cert.public_key() if isinstance(key_or_cert, x509.Certificate) else key_or_cert
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise FlavorSignatureError(f"cannot verify flavor signatures with a {type(key).__name__}")
    return key


def _decode_signature(signed: SignedFlavor) -> bytes:
    if not signed.signature:
        raise FlavorSignatureError(
            f"flavor {signed.flavor.id} has no signature", code="flavor-signature-missing"
        )
    try:
        return base64.b64decode(signed.signature, validate=True)
    except binascii.Error:
        raise FlavorSignatureError(f"flavor {signed.flavor.id}: signature is not base64") from None


def verify_flavor_signature(
    signed: SignedFlavor,
    public_key_or_cert: PublicKey | x509.Certificate,
    *,
    memo: VerificationMemo | None = None,
) -> None:
    """Verify a flavor signed with our scheme; raise :class:`FlavorSignatureError` if it does not verify.

    A certificate is used for its key only: whether the certificate itself is trusted is the caller's
    decision (FlavorTrusted checks it against the flavor-signing CA).
    """
    scheme = signed.extra.get("signature_scheme")
    if scheme != SIGNATURE_SCHEME:
        raise FlavorSignatureError(
            f"flavor {signed.flavor.id}: signature scheme {scheme!r} is not {SIGNATURE_SCHEME!r} "
            "(a SecL-signed flavor can only be checked with check_secl_signature)",
            code="flavor-signature-scheme",
        )
    if memo is not None:
        key_id = flavor_signature_key(signed.flavor.to_json(), signed.signature, public_key_or_cert)
        memo.check(key_id, lambda: _verify_signature(signed, public_key_or_cert))
    else:
        _verify_signature(signed, public_key_or_cert)


def _verify_signature(signed: SignedFlavor, public_key_or_cert: PublicKey | x509.Certificate) -> None:
    sig = _decode_signature(signed)
    key = _public_key(public_key_or_cert)
    payload = flavor_signing_payload(signed.flavor)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, payload, ec.ECDSA(_ec_hash(key.curve)))
        else:
            key.verify(sig, payload, padding.PKCS1v15(), hashes.SHA384())
    except InvalidSignature:
        raise FlavorSignatureError(f"flavor {signed.flavor.id}: signature does not verify") from None


@dataclass(frozen=True)
class SeclSignatureCheck:
    """What :func:`check_secl_signature` found: ``status`` is ``"verified"`` or ``"unverifiable"``."""

    status: str
    detail: str
    serialization: str | None = None  # Which candidate verified, when one did.

    @property
    def verified(self) -> bool:
        return self.status == "verified"


def _candidates(flavor: Flavor) -> Iterator[tuple[str, bytes]]:
    # The document as read keeps its member order, the closest we get to what the signer serialized.
    as_read = thaw(flavor.source) if flavor.source is not None else flavor.to_json()
    for id_label, doc in (("original id", as_read), ("nil id", _with_nil_id(as_read))):
        yield (
            f"compact JSON as read, {id_label}",
            json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(),
        )
        yield f"compact JSON as read (ASCII), {id_label}", json.dumps(doc, separators=(",", ":")).encode()
        yield f"RFC 8785 JCS, {id_label}", canonicalize(doc)


def _with_nil_id(doc: dict) -> dict:
    copy = json.loads(json.dumps(doc))
    copy["meta"]["id"] = NIL_UUID
    return copy


def _rsa_encoding_recoverable(sig: bytes, key: rsa.RSAPublicKey) -> bool:
    """True when the RSA public operation on ``sig`` yields a PKCS#1 v1.5 or PSS encoded message.

    Whatever bytes were signed, a signature made with this key must decode to one of those encodings; if it
    does not, no serialization can ever verify and the signer used a different key.
    """
    numbers = key.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    s = int.from_bytes(sig, "big")
    if len(sig) != k or s >= numbers.n:
        return False
    em = pow(s, numbers.e, numbers.n).to_bytes(k, "big")
    return em.startswith(b"\x00\x01\xff") or em.endswith(b"\xbc")


def check_secl_signature(signed: SignedFlavor, cert: x509.Certificate | PublicKey) -> SeclSignatureCheck:
    """Check a SecL-made flavor signature as far as it can be checked, and say how far that was."""
    try:
        sig = _decode_signature(signed)
        key = _public_key(cert)
    except FlavorSignatureError as exc:
        return SeclSignatureCheck("unverifiable", exc.message)
    schemes: list[tuple[str, tuple[Any, ...]]] = []
    if isinstance(key, rsa.RSAPublicKey):
        for h in (hashes.SHA384(), hashes.SHA256()):
            schemes.append((f"RSASSA-PKCS1-v1_5/{h.name}", (padding.PKCS1v15(), h)))
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
            schemes.append((f"RSASSA-PSS/{h.name}", (pss, h)))
    else:
        schemes.append(("ECDSA", (ec.ECDSA(_ec_hash(key.curve)),)))
    for name, payload in _candidates(signed.flavor):
        for scheme_name, args in schemes:
            try:
                key.verify(sig, payload, *args)
            except InvalidSignature:
                continue
            return SeclSignatureCheck("verified", f"{scheme_name} over {name}", name)
    detail = "signature does not match any reproducible serialization"
    if isinstance(key, rsa.RSAPublicKey) and not _rsa_encoding_recoverable(sig, key):
        detail += (
            "; moreover the RSA public operation with this certificate's key yields no PKCS#1 v1.5 or PSS"
            " encoding, so the signature was not made with this key at all"
        )
    return SeclSignatureCheck("unverifiable", detail)
