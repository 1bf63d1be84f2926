"""Making and checking key material in the one form every key store keeps (raw AES, PKCS#8 DER)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secl.central.kbs.keystore import (
    AES_LENGTHS,
    EC_CURVES,
    RSA_LENGTHS,
    KeyAlgorithm,
    KeyMaterialInvalid,
    KeySpec,
)

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "prime256v1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}


def check_spec(spec: KeySpec) -> KeySpec:
    """Refuse a spec the broker does not make; return it with EC's alias names made canonical."""
    if spec.algorithm is KeyAlgorithm.AES and spec.length not in AES_LENGTHS:
        raise KeyMaterialInvalid(
            f"AES keys are {', '.join(map(str, AES_LENGTHS))} bits, not {spec.length}",
            code="key-length-unsupported",
        )
    if spec.algorithm is KeyAlgorithm.RSA and spec.length not in RSA_LENGTHS:
        raise KeyMaterialInvalid(
            f"RSA keys are {', '.join(map(str, RSA_LENGTHS))} bits, not {spec.length}",
            code="key-length-unsupported",
        )
    if spec.algorithm is KeyAlgorithm.EC:
        if spec.curve not in EC_CURVES:
            raise KeyMaterialInvalid(
                f"EC keys use {', '.join(EC_CURVES)}, not {spec.curve!r}", code="key-curve-unsupported"
            )
        curve = "secp256r1" if spec.curve == "prime256v1" else spec.curve
        return KeySpec(KeyAlgorithm.EC, _CURVES[curve]().key_size, curve)
    return spec


def generate(spec: KeySpec) -> bytes:
    spec = check_spec(spec)
    if spec.algorithm is KeyAlgorithm.AES:
        assert spec.length is not None
        return os.urandom(spec.length // 8)
    if spec.algorithm is KeyAlgorithm.RSA:
        assert spec.length is not None
        return _pkcs8(rsa.generate_private_key(65537, spec.length))
    assert spec.curve is not None
    return _pkcs8(ec.generate_private_key(_CURVES[spec.curve]()))


def normalize(spec: KeySpec, material: bytes) -> bytes:
    """Check registered material against its spec and return it in the stored form.

    AES: the raw key, exactly ``length`` bits. RSA/EC: a private key in PEM or DER (PKCS#8 or the
    traditional forms), unencrypted, of the spec's size or curve; stored as PKCS#8 DER.
    """
    spec = check_spec(spec)
    if spec.algorithm is KeyAlgorithm.AES:
        assert spec.length is not None
        if len(material) * 8 != spec.length:
            raise KeyMaterialInvalid(
                f"an AES-{spec.length} key is {spec.length // 8} octets, not {len(material)}",
                code="key-material-invalid",
            )
        return bytes(material)
    key = _load_private_key(material)
    if spec.algorithm is KeyAlgorithm.RSA:
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != spec.length:
            raise KeyMaterialInvalid(
                f"the key is not an RSA-{spec.length} private key", code="key-material-invalid"
            )
    elif not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != spec.curve:
        raise KeyMaterialInvalid(
            f"the key is not an EC private key on {spec.curve}", code="key-material-invalid"
        )
    return _pkcs8(key)


def _load_private_key(material: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    loader = (
        serialization.load_pem_private_key
        if material.lstrip().startswith(b"-----BEGIN")
        else serialization.load_der_private_key
    )
    try:
        key = loader(material, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialInvalid(
            f"not an unencrypted private key in PEM or DER: {exc}", code="key-material-invalid"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyMaterialInvalid("only RSA and EC private keys are held", code="key-material-invalid")
    return key


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
