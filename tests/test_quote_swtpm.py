"""Quotes and certifications on a real TPM (swtpm), cross-checked with tpm2-tools in both directions.

tpm2-tools quotes -> secl.core.quote verifies; the trust agent's adapter quotes -> tpm2_checkquote verifies.
The swtpm has no resource manager and three transient slots, so every tpm2-tools step is followed by
``tpm2_flushcontext -t`` and the adapter flushes what it loads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from secl.core.errors import CertifyError, QuoteError
from secl.core.hashalg import HashAlg
from secl.core.pcrfile import dump_pcr_values_tpm2_tools, load_pcr_values
from secl.core.quote import unverified_quote_selection, verify_certify, verify_quote
from secl.core.tpm import load_ak_public
from secl.host.tpm import TPMAdapter, TPMError, TPMKey
from tests.swtpm import RunningSwtpm
from tests.tpm2tools import NONCE, tool, tools_quote

pytestmark = pytest.mark.swtpm

MULTI_BANK = {HashAlg.SHA1: [0, 1, 2, 7], HashAlg.SHA256: list(range(24))}


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
@pytest.mark.parametrize("pcrs_format", ["serialized", "values"])
def test_tpm2_tools_quote_verifies(swtpm: RunningSwtpm, tmp_path: Path, kind: str, pcrs_format: str) -> None:
    tools_quote(swtpm, tmp_path, kind, "sha1:0,1,2+sha256:0,1,2,3,4,5,6,7,8,9,10,16", pcrs_format)
    ak = load_ak_public((tmp_path / "ak.pub").read_bytes())
    attest, sig = (tmp_path / "msg").read_bytes(), (tmp_path / "sig").read_bytes()
    hint = unverified_quote_selection(attest) if pcrs_format == "values" else None
    pcrs = load_pcr_values((tmp_path / "pcrs").read_bytes(), selection_hint=hint)
    result = verify_quote(ak, attest, sig, qualifying_data=NONCE, pcrs=pcrs)
    assert dict(result.selection) == {HashAlg.SHA1: (0, 1, 2), HashAlg.SHA256: (*range(11), 16)}
    assert result.signature_scheme == {"rsa": "rsassa", "ecc": "ecdsa"}[kind]
    with pytest.raises(QuoteError) as err:
        verify_quote(ak, attest, sig, qualifying_data=NONCE[::-1], pcrs=pcrs)
    assert err.value.code == "quote-nonce-mismatch"


def test_tpm2_tools_pcr_file_is_what_we_write(swtpm: RunningSwtpm, tmp_path: Path) -> None:
    tools_quote(swtpm, tmp_path, "rsa", "sha1:0,1,2+sha256:0,1,2,3,4,5,6,7,8,9,10", "serialized")
    written = (tmp_path / "pcrs").read_bytes()
    assert dump_pcr_values_tpm2_tools(load_pcr_values(written)) == written


def write_checkquote_inputs(work: Path, ak: TPMKey, attest: bytes, sig: bytes, pcrs: bytes) -> None:
    (work / "ak.pem").write_bytes(ak.pem())
    (work / "msg").write_bytes(attest)
    (work / "sig").write_bytes(sig)
    (work / "pcrs").write_bytes(pcrs)


def checkquote(swtpm: RunningSwtpm, work: Path, nonce: bytes) -> subprocess.CompletedProcess[str]:
    args = ("tpm2_checkquote", "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs", "-g", "sha256")
    return tool(swtpm, work, *args, "-q", nonce.hex(), check=False)


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
@pytest.mark.parametrize("hierarchy", ["endorsement", "owner"])
def test_adapter_quote_passes_tpm2_checkquote(
    swtpm: RunningSwtpm, tmp_path: Path, kind: str, hierarchy: str
) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        ak = tpm.create_ak(kind, hierarchy)
        quote = tpm.quote(ak, MULTI_BANK, NONCE)
        pcrs = tpm.read_pcrs(MULTI_BANK)
        tpm.flush(ak)
    assert {bank: sorted(values) for bank, values in pcrs.items()} == MULTI_BANK
    write_checkquote_inputs(tmp_path, ak, quote.attest, quote.signature, dump_pcr_values_tpm2_tools(pcrs))
    result = checkquote(swtpm, tmp_path, NONCE)
    assert result.returncode == 0, result.stderr
    assert checkquote(swtpm, tmp_path, NONCE[::-1]).returncode != 0
    verified = verify_quote(
        load_ak_public(ak.public), quote.attest, quote.signature, qualifying_data=NONCE, pcrs=pcrs
    )
    assert verified.pcrs is not None and verified.pcrs.get(HashAlg.SHA256, 23) == bytes(32)


def test_extended_pcr_after_quote_is_rejected(swtpm: RunningSwtpm) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        ak = tpm.create_ak("rsa")
        quote = tpm.quote(ak, MULTI_BANK, NONCE)
        tpm.extend_pcr(7, {HashAlg.SHA1: b"\x01" * 20, HashAlg.SHA256: b"\x01" * 32})
        after = tpm.read_pcrs(MULTI_BANK)
        requote = tpm.quote(ak, MULTI_BANK, NONCE)
        tpm.flush(ak)
    akp = load_ak_public(ak.public)
    assert after[HashAlg.SHA256][7] == HashAlg.SHA256.hash(bytes(32) + b"\x01" * 32)
    with pytest.raises(QuoteError) as err:
        verify_quote(akp, quote.attest, quote.signature, qualifying_data=NONCE, pcrs=after)
    assert err.value.code == "pcr-digest-mismatch"
    assert (
        verify_quote(akp, requote.attest, requote.signature, qualifying_data=NONCE, pcrs=after).pcrs
        is not None
    )
    with pytest.raises(QuoteError) as err:
        verify_quote(akp, requote.attest, requote.signature, qualifying_data=b"other nonce", pcrs=after)
    assert err.value.code == "quote-nonce-mismatch"


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
def test_certify(swtpm: RunningSwtpm, kind: str) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        ak = tpm.create_ak(kind)
        key = tpm.create_key("rsa", unique=b"binding")
        certified = tpm.certify(key, ak, b"certify nonce")
        tpm.flush(key)
        other = tpm.create_key("rsa", unique=b"another")
        tpm.flush(other)
        tpm.flush(ak)
    akp = load_ak_public(ak.public)
    result = verify_certify(
        akp, certified.attest, certified.signature, key.public, qualifying_data=b"certify nonce"
    )
    assert result.certified_name == key.name and result.qualified_signer
    assert other.public != key.public
    with pytest.raises(CertifyError) as err:
        verify_certify(akp, certified.attest, certified.signature, other.public)
    assert err.value.code == "certify-name-mismatch"
    with pytest.raises(CertifyError) as err:
        verify_certify(akp, certified.attest, certified.signature, key.public, qualifying_data=b"x")
    assert err.value.code == "certify-nonce-mismatch"


def test_ek_certificate_comes_from_the_local_ca(swtpm: RunningSwtpm) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        ek = tpm.read_ek("rsa")
    assert ek.certificate is not None
    cert = x509.load_der_x509_certificate(ek.certificate)
    issuer = x509.load_pem_x509_certificate((swtpm.ca_dir / "issuercert.pem").read_bytes())
    cert.verify_directly_issued_by(issuer)


def test_adapter_flushes_leftovers_and_maps_errors(swtpm: RunningSwtpm) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        for i in range(3):
            tpm.create_key("ecc", unique=bytes([i]))
        with pytest.raises(TPMError) as err:
            tpm.create_key("ecc", unique=b"\x09")
        assert err.value.code == "tpm-out-of-object-slots"
    with TPMAdapter(swtpm.tcti) as tpm:  # the leftovers of the "crashed" client above
        assert tpm.flush_transient() == 0
        tpm.flush(tpm.create_ak("ecc"))


def test_unreachable_tpm_is_a_clear_error() -> None:
    with pytest.raises(TPMError) as err:
        TPMAdapter("swtpm:host=127.0.0.1,port=1")
    assert err.value.code == "tpm-unreachable"
