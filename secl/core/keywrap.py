"""Wrapping a key for a host's TPM: RSA-OAEP-SHA256 with the label ``TPM2\\0``, as SecL's key broker does.

A TPM's RSA decryption (TPM2_RSA_Decrypt with an OAEP scheme) takes the label as a parameter; SecL's
workload agent passes ``TPM2\\0`` (five octets, the NUL included), so a key wrapped with any other label
does not open there. Only the TPM that holds the binding key's private part can unwrap.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from secl.core.errors import EvidenceError

#: The OAEP label of SecL's key transfer, NUL included (TPM2_RSA_Decrypt's ``label`` parameter).
TPM_OAEP_LABEL = b"TPM2\x00"


class KeyWrapError(EvidenceError):
    """A key cannot be wrapped to (or unwrapped for) a binding key."""

    code = "key-wrap-failed"


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=TPM_OAEP_LABEL)


def max_wrappable_bytes(public_key: rsa.RSAPublicKey) -> int:
    """The largest key OAEP-SHA256 can wrap to ``public_key`` (190 octets for RSA-2048)."""
    return public_key.key_size // 8 - 2 * hashes.SHA256.digest_size - 2


def wrap_key(public_key: rsa.RSAPublicKey, key: bytes) -> bytes:
    """Encrypt ``key`` to a TPM binding key (its public part) with RSA-OAEP-SHA256, label ``TPM2\\0``."""
    if len(key) > max_wrappable_bytes(public_key):
        raise KeyWrapError(
            f"a {len(key)}-octet key does not fit RSA-{public_key.key_size} OAEP-SHA256 "
            f"(at most {max_wrappable_bytes(public_key)} octets)",
            code="key-too-large-to-wrap",
        )
    return public_key.encrypt(key, _oaep())


def unwrap_key(private_key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    """The software counterpart of TPM2_RSA_Decrypt, for keys that are not in a TPM (an image owner's)."""
    try:
        return private_key.decrypt(wrapped, _oaep())
    except ValueError:
        raise KeyWrapError("the wrapped key does not open with this key", code="key-unwrap-failed") from None
