"""The key broker's memo of verified certificate signatures: a remembered success never vouches for a
namesake CA's certificate or another certificate, failures are not remembered, and the memo stays bounded."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.kbs.transfer import _IssuanceMemo
from tests.tpmkeys import issue_certificate, make_ca


def test_only_the_exact_pair_that_verified_is_remembered() -> None:
    ca = make_ca("Privacy CA")
    namesake = make_ca("Privacy CA")  # same subject, another key
    certificate = issue_certificate(ca, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK")
    forged = issue_certificate(namesake, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK")
    memo = _IssuanceMemo(2)
    assert memo.verified(certificate, ca[0]) and memo.verified(certificate, ca[0])  # the second from the memo
    assert not memo.verified(certificate, namesake[0])
    assert not memo.verified(forged, ca[0])
    assert memo.verified(forged, namesake[0])
    assert len(memo._verified) == 2
    other = issue_certificate(ca, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK 2")
    assert memo.verified(other, ca[0])
    assert len(memo._verified) == 2  # bounded: the least recently used pair went out
    assert not memo.verified(forged, ca[0])  # still refused after the eviction
