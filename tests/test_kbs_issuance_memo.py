"""The key broker's fast paths. The memo of verified certificate signatures: a remembered success never
vouches for a namesake CA's certificate or another certificate, failures are not remembered, and the memo
stays bounded. The JWT header read that picks the report signer: anything but a JSON object is malformed."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.kbs.transfer import TransferRefused, _unverified_kid, issued_by
from secl.core.verifymemo import VerificationMemo
from tests.tpmkeys import issue_certificate, make_ca


def test_only_the_exact_pair_that_verified_is_remembered() -> None:
    ca = make_ca("Privacy CA")
    namesake = make_ca("Privacy CA")  # same subject, another key
    certificate = issue_certificate(ca, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK")
    forged = issue_certificate(namesake, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK")
    memo = VerificationMemo(2)
    assert issued_by(certificate, ca[0], memo) and issued_by(
        certificate, ca[0], memo
    )  # the second from the memo
    assert not issued_by(certificate, namesake[0], memo)
    assert not issued_by(forged, ca[0], memo)
    assert issued_by(forged, namesake[0], memo)
    assert len(memo) == 2
    other = issue_certificate(ca, ec.generate_private_key(ec.SECP256R1()).public_key(), "AIK 2")
    assert issued_by(other, ca[0], memo)
    assert len(memo) == 2  # bounded: the least recently used pair went out
    assert not issued_by(forged, ca[0], memo)  # still refused after the eviction


def test_a_token_whose_header_is_not_a_json_object_is_malformed() -> None:
    def segment(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    assert _unverified_kid(segment(b'{"alg":"ES256","kid":"ab"}') + ".e30.sig") == "ab"
    assert _unverified_kid(segment(b'{"alg":"ES256"}') + ".e30.sig") is None
    for token in ("not-a-jwt", segment(b"[1]") + ".e30.x", segment(b"\xff\xfe") + ".e30.x", "%%%.e30.x"):
        with pytest.raises(TransferRefused) as refused:
            _unverified_kid(token)
        assert refused.value.code == "attestation-malformed", token
