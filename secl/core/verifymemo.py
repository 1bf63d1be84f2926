"""Memoized verification results, for a verifier that checks the same signatures report after report.

A signature check is a pure function of its inputs: the same certificate bytes under the same issuer, or
the same flavor document with the same signature under the same key, always verify the same way. The memo
keys every result on those exact bytes (hashed), so a remembered result is the result a fresh check would
give; any change to a flavor, a signature or a certificate is a new key and is checked afresh. Only
*successful* checks are remembered, so a failure is always re-examined (and re-reported with its reason).
Validity periods are not cached: callers check them against the evaluation time on every use.

The memo is an object the caller owns (one per central application), never module state.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class VerificationMemo:
    """A bounded, thread-safe set of checks that succeeded."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: bytes, verify: Callable[[], Any]) -> None:
        """Run ``verify`` (which raises on failure) unless a check with this key already passed."""
        with self._lock:
            if key in self._passed:
                self._passed.move_to_end(key)
                return
        verify()
        with self._lock:
            self._passed[key] = None
            while len(self._passed) > self._size:
                self._passed.popitem(last=False)

    def __len__(self) -> int:
        return len(self._passed)


def certificate_key(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The memo key of "``cert`` was signed by ``issuer``": both certificates' exact DER."""
    h = hashlib.sha256(b"issued-by\0")
    h.update(cert.public_bytes(serialization.Encoding.DER))
    h.update(b"\0")
    h.update(issuer.public_bytes(serialization.Encoding.DER))
    return h.digest()


def flavor_signature_key(flavor_document: Any, signature: str, signer: x509.Certificate | Any) -> bytes:
    """The memo key of "this flavor document carries this valid signature by this signer"."""
    h = hashlib.sha256(b"flavor-signature\0")
    # Any change to the document changes this serialization (sorted keys make it independent of order).
    h.update(json.dumps(flavor_document, sort_keys=True, separators=(",", ":")).encode())
    h.update(b"\0" + signature.encode() + b"\0")
    if isinstance(signer, x509.Certificate):
        h.update(signer.public_bytes(serialization.Encoding.DER))
    else:
        h.update(
            signer.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return h.digest()
