"""The verification memo: a remembered check is exactly a check of the same bytes; failures are never kept."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.cms import pki
from secl.core.flavor import SignedFlavor, parse_flavor
from secl.core.flavorsign import FlavorSignatureError, sign_flavor, verify_flavor_signature
from secl.core.rules_trust import chains_to
from secl.core.verifymemo import VerificationMemo
from tests.corpus import corpus_bytes

FLAVORS = "intel-secl/pkg/lib/verifier/test_data/vmware12/signed_flavors.json"


def _a_signed_flavor() -> tuple[SignedFlavor, pki.Issuer]:
    root = pki.create_root_ca()
    signer = pki.create_signing_certificate(root, "flavor signer", ec.SECP384R1())
    flavor = parse_flavor(json.loads(corpus_bytes(FLAVORS))[0]["flavor"])
    return sign_flavor(flavor, signer.key), signer


def test_a_passed_check_is_remembered_and_a_changed_flavor_is_checked_again():
    signed, signer = _a_signed_flavor()
    memo = VerificationMemo()
    verify_flavor_signature(signed, signer.certificate, memo=memo)
    assert len(memo) == 1
    verify_flavor_signature(signed, signer.certificate, memo=memo)
    assert len(memo) == 1  # served from the memo
    document = signed.flavor.to_json()
    document["meta"]["description"]["label"] = "tampered"
    tampered = SignedFlavor(parse_flavor(document), signed.signature, MappingProxyType(dict(signed.extra)))
    with pytest.raises(FlavorSignatureError):
        verify_flavor_signature(tampered, signer.certificate, memo=memo)
    with pytest.raises(FlavorSignatureError):  # failures are not remembered: checked, and refused, again
        verify_flavor_signature(tampered, signer.certificate, memo=memo)
    assert len(memo) == 1


def test_another_signer_is_another_key():
    signed, _ = _a_signed_flavor()
    _, stranger = _a_signed_flavor()
    memo = VerificationMemo()
    with pytest.raises(FlavorSignatureError):
        verify_flavor_signature(signed, stranger.certificate, memo=memo)


def test_chain_checks_are_memoized_per_certificate_pair_and_validity_is_not():
    root = pki.create_root_ca()
    leaf = pki.create_signing_certificate(root, "leaf", ec.SECP256R1())
    other = pki.create_root_ca()
    memo = VerificationMemo()
    at = leaf.certificate.not_valid_before_utc
    assert chains_to(leaf.certificate, (root.certificate,), at, memo=memo)
    assert chains_to(leaf.certificate, (root.certificate,), at, memo=memo)
    assert not chains_to(leaf.certificate, (other.certificate,), at, memo=memo)
    expired = root.certificate.not_valid_after_utc.replace(year=root.certificate.not_valid_after_utc.year + 1)
    assert not chains_to(
        leaf.certificate, (root.certificate,), expired, memo=memo
    )  # validity checked each time


def test_the_memo_is_bounded():
    memo = VerificationMemo(size=3)
    for i in range(10):
        memo.check(bytes([i]), lambda: None)
    assert len(memo) == 3
