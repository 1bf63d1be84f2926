"""The ima-ng line fast path of secl.core.ima reads exactly what the general line reader reads.

``parse_ascii_ima_log`` takes an ima-ng line apart with a split and a few checks (bench/ima.py: ~2.5 µs a
line with the template-hash check and the replay) and hands every other line to ``_parse_ascii_line``.
Whatever the fast path accepts, the general reader must read identically; whatever the general reader
refuses, the fast path must leave to it (so the error and its code stay the general reader's).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secl.core.errors import IMALogError
from secl.core.ima import _ima_ng_entry, _parse_ascii_line, parse_ima_log
from tests.corpus import corpus_bytes

LOGS = [
    "rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements",
    "intel-secl/pkg/tagent/test/mockImaDir/ascii_runtime_measurements",
    "rust-keylime/keylime/test-data/ima_log.txt",
]


def assert_same_reading(line: str) -> None:
    fast = _ima_ng_entry(line, 3, 7)
    try:
        general = _parse_ascii_line(line, 3, 7)
    except IMALogError:
        assert fast is None, line
        return
    if fast is not None:
        assert fast == general and type(fast) is type(general), line


@pytest.mark.parametrize("log", LOGS)
def test_corpus_lines_read_alike(log: str) -> None:
    lines = [line for line in corpus_bytes(log).decode().splitlines() if line.strip()]
    taken = [line for line in lines if _ima_ng_entry(line, 0, 1) is not None]
    assert taken or "ima-sig" in lines[0]  # the ima-ng logs go through the fast path
    for line in lines:
        assert_same_reading(line)


_HEX = "0123456789abcdefABCDEF"


@settings(max_examples=1000, deadline=None)
@given(
    pcr=st.sampled_from(["10", "0", "31", "32", "010", "1000", "x", "", "١٠", " 10"]),
    template_hash=st.one_of(
        st.text(alphabet=_HEX, min_size=0, max_size=130),
        st.sampled_from(["ab" * 20, "AB" * 32, "00" * 20, "ab" * 19 + "a\t", "ab" * 19 + " a"]),
    ),
    name=st.sampled_from(["ima-ng", "ima-sig", "ima", "IMA-NG", "ima-ng "]),
    alg=st.sampled_from(["sha1", "sha256", "a:b", "", "sha 1", "sh\x7fa", "sha\u00e91", "s:"]),
    digest=st.one_of(st.text(alphabet=_HEX, max_size=70), st.sampled_from(["abc", "zz", "ab cd", "ab\tcd"])),
    path=st.text(max_size=30).filter(lambda p: "\n" not in p and "\r" not in p),
    colon=st.booleans(),
)
def test_generated_lines_read_alike(
    *, pcr: str, template_hash: str, name: str, alg: str, digest: str, path: str, colon: bool
) -> None:
    d_ng = f"{alg}:{digest}" if colon else digest
    assert_same_reading(f"{pcr} {template_hash} {name} {d_ng} {path}")


def test_a_whole_log_parses_the_same_either_way() -> None:
    data = corpus_bytes(LOGS[0])
    log = parse_ima_log(data)
    lines = [line for line in data.decode().split("\n") if line.strip()]
    assert list(log.entries) == [_parse_ascii_line(line, i, i + 1) for i, line in enumerate(lines)]
    log.verify_template_hashes()
