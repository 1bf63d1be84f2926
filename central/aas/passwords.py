"""Salted, deliberately slow password hashes (scrypt from the standard library).

Stored as ``scrypt$n$r$p$salt_b64$hash_b64`` so the parameters can be raised later without breaking
existing hashes: :func:`needs_rehash` tells the login path when to upgrade one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

# n=2**15, r=8, p=1: about 50 ms and 32 MiB per hash on these machines, OWASP's scrypt floor.
N, R, P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, checked when the user does not exist, so that a login for an unknown
    user takes as long as one for a known user and the timing does not reveal which usernames exist."""
    return hash_password(os.urandom(16).hex())
