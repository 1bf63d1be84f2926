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
from typing import Any, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

K = TypeVar("K")
V = TypeVar("V")


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


class ResultMemo(Generic[K, V]):
    """A bounded, thread-safe map from the exact inputs of a pure computation (hashed) to its result.

    Used for work that a verifier repeats report after report on unchanged evidence: the host manifest
    built from the same event log, PCR values and host info, or a flavor document parsed and verified.
    The value must be immutable (frozen dataclasses, mapping proxies): every caller shares it.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._results: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._results[key] = value
            self._results.move_to_end(key)
            while len(self._results) > self._size:
                self._results.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._results)


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
