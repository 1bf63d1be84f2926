"""RFC 8785 (JCS) canonical JSON, checked against the RFC's own examples."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secl.core.canonicaljson import CanonicalJSONError, canonicalize, format_number


def test_rfc8785_section_3_2_2_example() -> None:
    # The input of RFC 8785 §3.2.2 (whitespace and escapes as in the RFC) and its canonical output.
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    want = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(text)).decode("utf-8") == want


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    values = list(json.loads(canonicalize(obj)).values())
    # The emoji (UTF-16 D83D DE00) sorts before U+FB33, although its code point is larger.
    assert values == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript string forms.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "want"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, want: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert format_number(value) == want


def test_integers_are_doubles() -> None:
    assert canonicalize([1, -7, 10**21, 2**53]) == b"[1,-7,1e+21,9007199254740992]"
    # Beyond 2**53 the RFC's double conversion applies (SecL's tag serial numbers are such integers).
    assert canonicalize(1954084345555666250) == b"1954084345555666200"


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), {1: "x"}, "\ud800", b"bytes", 10**400],
)
def test_rejects_values_without_a_canonical_form(bad: object) -> None:
    with pytest.raises(CanonicalJSONError):
        canonicalize(bad)


def test_control_characters_and_unicode() -> None:
    assert canonicalize("\x00\x1f\u2028é") == '"\\u0000\\u001f\u2028é"'.encode()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_is_a_fixed_point_and_parses_back(value: object) -> None:
    data = canonicalize(value)
    assert canonicalize(json.loads(data)) == data


def _reference_quote(text: str) -> str:
    # RFC 8785 §3.2.2.2 spelled out character by character: the oracle for the fast encoder.
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for ch in text:
        out.append(short.get(ch) or (f"\\u{ord(ch):04x}" if ch < " " else ch))
    return '"' + "".join(out) + '"'


@given(st.text())
def test_string_escaping_matches_the_rfc_rules(text: str):
    assert canonicalize(text) == _reference_quote(text).encode("utf-8")
