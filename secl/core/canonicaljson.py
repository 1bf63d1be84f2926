"""RFC 8785 JSON Canonicalization Scheme (JCS).

Our flavor signatures (and anything else we sign as JSON) cover these bytes, so two implementations that
agree on the JSON *value* agree on the signed bytes, whatever key order or whitespace the wire used. The
three rules of RFC 8785:

- object members are sorted by their names compared as arrays of UTF-16 code units (not code points: an
  emoji, a surrogate pair starting 0xD83D, sorts before U+FB33);
- numbers are IEEE 754 doubles printed the way ECMAScript's ``Number.prototype.toString`` prints them
  (shortest round-trip digits, exponent form outside 1e-7..1e21, ``-0`` printed as ``0``);
- strings are UTF-8 with the minimal escaping of ECMAScript's ``JSON.stringify``: ``"`` and ``\\``, the
  short forms ``\\b \\t \\n \\f \\r``, and ``\\u00xx`` (lower-case hex) for the other control characters.

Integers beyond 2**53 are converted to the nearest double, as the RFC requires (I-JSON numbers are doubles);
that is lossy for such integers, but deterministic, which is what a signature needs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from secl.core.errors import EvidenceError

__all__ = ["CanonicalJSONError", "canonicalize", "format_number"]


class CanonicalJSONError(EvidenceError):
    """A value cannot be canonicalized: NaN/Infinity, a non-string key, a lone surrogate, an unknown type."""

    code = "canonical-json-invalid"


def canonicalize(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value built from dict/list/str/int/float/bool/None."""
    parts: list[str] = []
    _emit(value, parts)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (for example from json.loads of "\ud800") has no UTF-8 form; RFC 8785 rejects it.
        raise CanonicalJSONError(f"string holds a lone surrogate at offset {exc.start}") from None


def _emit(value: object, out: list[str]) -> None:
    # bool is checked before int because bool is a subclass of int in Python.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, int | float):
        out.append(format_number(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalJSONError(f"object member name {key!r} is not a string")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_quote(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        raise CanonicalJSONError(f"{type(value).__name__} is not a JSON value")


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like sequences of 16-bit code units; "surrogatepass" keeps
    # lone surrogates sortable here so that the error is raised once, with its position, by canonicalize.
    return name.encode("utf-16-be", "surrogatepass")


def _quote(text: str) -> str:
    # RFC 8785 §3.2.2.2 escapes exactly what json.dumps(ensure_ascii=False) escapes: '"', '\\', the
    # short forms \b \t \n \f \r and other controls below U+0020 as lower-case \u00xx, nothing else.
    # The C encoder is ~20x faster than a character loop, and flavors are canonicalized on every check.
    return _json_string(text)


_json_string = json.JSONEncoder(ensure_ascii=False).encode


def format_number(number: int | float) -> str:
    """Format a number as ECMAScript's Number.prototype.toString does for the equivalent double."""
    try:
        value = float(number)
    except OverflowError:
        raise CanonicalJSONError(f"integer {number} is outside the range of an IEEE 754 double") from None
    if math.isnan(value) or math.isinf(value):
        raise CanonicalJSONError(f"{value!r} has no JSON form")
    if value == 0:
        return "0"  # Also for -0.0: ECMAScript prints negative zero as "0".
    if value < 0:
        return "-" + format_number(-value)
    # repr() gives the shortest digit string that round-trips, the same digits ECMAScript chooses.
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int) and sign == 0
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    digits = digits.lstrip("0")
    k = len(digits)
    n = k + exponent  # The value is 0.<digits> * 10**n.
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
