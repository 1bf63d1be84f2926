"""Hex text in evidence (nonces, digests, PCR values): what exactly is wrong with text that is not hex.

``bytes.fromhex`` says only "non-hexadecimal number found", even when every character is a hex digit and
one is missing. An operator who pasted a nonce or a digest needs to hear which: a stray character (and
where), or an odd number of digits.
"""

from __future__ import annotations

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

__all__ = ["hex_problem"]


def hex_problem(text: str) -> str:
    """Why ``text`` is not an even run of hex digits, as a phrase for an error message; "" if it is one."""
    for position, char in enumerate(text):
        if char not in _HEX_DIGITS:
            return f"has {char!r} at position {position}, which is not a hex digit"
    if len(text) % 2:
        return f"has an odd number of hex digits ({len(text)}): a digit is missing or one too many"
    return ""
