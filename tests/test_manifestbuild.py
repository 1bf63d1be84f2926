"""Host manifests built from a live quote (swtpm) over a real firmware log, and SecL's event tags.

The OVMF log of the corpus is extended into a fresh swtpm, an AK quotes PCRs 0-7 in SHA-1 and SHA-256,
and the manifest built from that quote and the log must replay, PCR by PCR and in SecL's own replay
convention, to the quoted values. Tags are checked against what SecL's trust agent writes for the same
event types (variable names, action strings, the StartupLocality marker).
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from secl.core.eventlog import parse_event_log
from secl.core.hashalg import HashAlg
from secl.core.hostmanifest import parse_host_manifest, replay_manifest_event_logs
from secl.core.manifestbuild import (
    ManifestBuildError,
    ManifestMemo,
    assemble_host_manifest,
    build_host_manifest,
    host_manifest_to_json,
    manifest_inputs_key,
)
from secl.core.pcrevents import PcrRef
from secl.core.quote import secl_qualifying_data, verify_quote
from secl.core.secltags import secl_event_tags, secl_type_id, secl_type_name
from secl.core.tpm import load_ak_public
from secl.host.tpm import TPMAdapter
from tests.corpus import corpus_bytes
from tests.swtpm import RunningSwtpm

OVMF_LOG = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"
NONCE = b"relying party nonce 0001"
SELECTION = {HashAlg.SHA1: list(range(8)), HashAlg.SHA256: list(range(8))}
HOST_INFO = {
    "os_name": "RedHatEnterprise",
    "host_name": "ovmf-guest",
    "hardware_uuid": "00000000-0000-0000-0000-000000000001",
    "hardware_features": {"TPM": {"enabled": "true", "meta": {"tpm_version": "2.0"}}},
}


def _aik_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aik")])
    import datetime as dt

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


def _quote_on_swtpm(tcti: str, log_bytes: bytes, *, tamper_pcr7: bool = False):
    """Boot the swtpm with the log's digests, quote, and verify the quote with the core."""
    log = parse_event_log(log_bytes)
    with TPMAdapter(tcti) as tpm:
        for event in log.iter_extended():
            tpm.extend_pcr(event.pcr, dict(event.digests))
        if tamper_pcr7:
            tpm.extend_pcr(7, {HashAlg.SHA1: b"\x07" * 20, HashAlg.SHA256: b"\x07" * 32})
        ak = tpm.create_ak("rsa")
        quote = tpm.quote(ak, SELECTION, secl_qualifying_data(NONCE))
        pcrs = tpm.read_pcrs(SELECTION)
        tpm.flush(ak)
    verified = verify_quote(
        load_ak_public(ak.public),
        quote.attest,
        quote.signature,
        qualifying_data=secl_qualifying_data(NONCE),
        pcrs=pcrs,
    )
    return log, verified


@pytest.mark.swtpm
def test_manifest_from_live_quote_replays_every_pcr(swtpm: RunningSwtpm) -> None:
    log, quote = _quote_on_swtpm(swtpm.tcti, corpus_bytes(OVMF_LOG))
    aik = _aik_pem()
    built = assemble_host_manifest(
        host_info=HOST_INFO, verified_quote=quote, event_log=log, aik_certificate_pem=aik
    )
    manifest = built.manifest
    assert built.log_verified and not built.replay_mismatches and built.workarounds == ()
    # Exactly the quoted PCRs, with the quoted values: nothing else.
    quoted = {PcrRef(i, b.name): v.hex() for b, pcrs in quote.pcrs.values.items() for i, v in pcrs.items()}
    assert dict(manifest.pcr_values) == quoted and len(quoted) == 16
    # Every PCR 0-7 of both banks has events (OVMF measures into each), and SecL's replay of our
    # tpm_events gives the quoted value for each of them.
    assert set(manifest.event_logs) == set(quoted)
    replays = replay_manifest_event_logs(manifest)
    assert len(replays) == 16 and all(r.matches for r in replays), [r for r in replays if not r.matches]
    assert manifest.aik_certificate == x509.load_pem_x509_certificate(aik.encode()).public_bytes(Encoding.DER)

    # Tags as SecL's agent writes them for these event types.
    def tags(bank: str, pcr: int) -> list[tuple[str, tuple[str, ...]]]:
        return [(e.type_name, e.tags) for e in manifest.event_log(bank, pcr)]

    assert tags("SHA256", 7) == [
        ("EV_EFI_VARIABLE_DRIVER_CONFIG", ("SecureBoot",)),
        ("EV_EFI_VARIABLE_DRIVER_CONFIG", ("PK",)),
        ("EV_EFI_VARIABLE_DRIVER_CONFIG", ("KEK",)),
        ("EV_EFI_VARIABLE_DRIVER_CONFIG", ("db",)),
        ("EV_EFI_VARIABLE_DRIVER_CONFIG", ("dbx",)),
        ("EV_SEPARATOR", ()),
    ]
    assert tags("SHA1", 1) == [
        ("EV_EFI_VARIABLE_BOOT", ("BootOrder",)),
        ("EV_EFI_VARIABLE_BOOT", ("Boot0000",)),
        ("EV_SEPARATOR", ()),
    ]
    assert tags("SHA256", 0) == [
        ("EV_S_CRTM_VERSION", ()),  # SecL tags no S_CRTM_VERSION
        ("EV_EFI_PLATFORM_FIRMWARE_BLOB", ()),  # nor plain firmware blobs
        ("EV_EFI_PLATFORM_FIRMWARE_BLOB", ()),
        ("EV_SEPARATOR", ()),
    ]
    assert tags("SHA256", 4) == [
        ("EV_EFI_BOOT_SERVICES_APPLICATION", ()),  # nor images (SecL has no image-path tag)
        ("EV_EFI_ACTION", ("Calling EFI Application from Boot Option",)),
        ("EV_SEPARATOR", ()),
    ]
    assert tags("SHA256", 5)[1:] == [
        ("EV_EFI_ACTION", ("Exit Boot Services Invocation",)),
        ("EV_EFI_ACTION", ("Exit Boot Services Returned with Success",)),
    ]
    event = manifest.event_log("SHA256", 7)[0]
    assert event.type_id == "0x80000001" and len(event.measurement) == 64
    # The JSON is SecL's shape and parses back to the same manifest.
    doc = host_manifest_to_json(manifest)
    assert doc["pcr_manifest"]["sha2pcrs"][0] == {
        "index": "pcr_0",
        "value": manifest.pcr_value("SHA256", 0),
        "pcr_bank": "SHA256",
    }
    assert "tags" not in doc["pcr_manifest"]["pcr_event_log_map"]["SHA256"][0]["tpm_events"][0]
    assert parse_host_manifest(doc) == manifest


@pytest.mark.swtpm
def test_log_that_does_not_replay_still_makes_a_manifest(swtpm: RunningSwtpm) -> None:
    # Something extended PCR 7 that the log does not show: the manifest keeps the quoted value and the
    # logged events, and says which PCR failed; the PcrEventLogIntegrity rule will fault it.
    log, quote = _quote_on_swtpm(swtpm.tcti, corpus_bytes(OVMF_LOG), tamper_pcr7=True)
    built = assemble_host_manifest(
        host_info=HOST_INFO, verified_quote=quote, event_log=log, aik_certificate_pem=None
    )
    assert not built.log_verified
    assert set(built.replay_mismatches) == {PcrRef(7, "SHA1"), PcrRef(7, "SHA256")}
    quoted, replayed = built.replay_mismatches[PcrRef(7, "SHA256")]
    assert quoted == built.manifest.pcr_value("SHA256", 7) != replayed
    bad = [r.pcr for r in replay_manifest_event_logs(built.manifest) if not r.matches]
    assert bad == [PcrRef(7, "SHA1"), PcrRef(7, "SHA256")]


@pytest.mark.swtpm
def test_bad_inputs_are_named(swtpm: RunningSwtpm) -> None:
    log, quote = _quote_on_swtpm(swtpm.tcti, corpus_bytes(OVMF_LOG))
    cases = [
        ({"aik_certificate_pem": "not a certificate"}, "manifest-aik-certificate-invalid"),
        ({"asset_tag_digest": b"\x01" * 32}, "manifest-asset-tag-digest-invalid"),
        ({"host_info": ["not", "an", "object"]}, "manifest-host-info-invalid"),
    ]
    for change, code in cases:
        args = {
            "host_info": HOST_INFO,
            "verified_quote": quote,
            "event_log": log,
            "aik_certificate_pem": None,
        }
        with pytest.raises(ManifestBuildError) as err:
            build_host_manifest(**{**args, **change})
        assert err.value.code == code
    from dataclasses import replace

    with pytest.raises(ManifestBuildError) as err:
        build_host_manifest(
            host_info=HOST_INFO,
            verified_quote=replace(quote, pcrs=None),
            event_log=log,
            aik_certificate_pem=None,
        )
    assert err.value.code == "manifest-no-quoted-pcrs"
    digest = hashlib.sha384(b"tag certificate").digest()
    manifest = build_host_manifest(
        host_info=HOST_INFO,
        verified_quote=quote,
        event_log=log,
        aik_certificate_pem=None,
        asset_tag_digest=digest,
    )
    assert manifest.asset_tag_digest == digest


def _variable(name: str, value: bytes = b"", units: int | None = None) -> bytes:
    encoded = name.encode("utf-16-le")
    count = len(name) if units is None else units
    return b"\x61" * 16 + struct.pack("<QQ", count, len(value)) + encoded + value


@pytest.mark.parametrize(
    ("event_type", "data", "pcr", "expected"),
    [
        (0x3, b"StartupLocality\x00\x03", 0, ("StartupLocality3",)),
        (0x3, b"StartupLocality\x00\x00", 0, ("StartupLocality0",)),
        (0x3, b"\x00Spec", 0, ()),
        (0x7, b"Boot Guard Measured S-CRTM\x00\x01\x02", 0, ("Boot Guard Measured S-CRTM",)),
        (0x1, b"ACM Version 1.2", 0, ("ACM Version 1.2",)),
        (0x1, b"\x00\x00\x82\x00", 0, ()),  # binary POST code data starting with NUL: no tag
        (0xD, b"grub_cmd: linux /vmlinuz\x00", 8, ("grub_cmd: linux /vmlinuz",)),
        (0xC, b"compact", 6, ("compact",)),
        (0xC, b"compact", 5, ()),  # EV_COMPACT_HASH is a string only on PCR 6
        (0x8000000A, b"\x0dFirmware Hash\xff\xff", 0, ("Firmware Hash",)),
        (0x80000001, _variable("db"), 7, ("db",)),
        (0x800000E0, _variable("Shim", b"\x00" * 4), 7, ("Shim",)),
        (0x80000002, _variable("Boot0001", units=999), 1, ()),  # lengths beyond the data: no tag
        (0x80000001, _variable("d\u0101b"), 7, ("db",)),  # low bytes of UTF-16: \x01 is dropped
        (0x4, b"\x00\x00\x00\x00", 7, ()),
        (0x80000003, b"\x00" * 40, 4, ()),
        (0x80000007, b"Exit Boot\tServices", 5, ("Exit BootServices",)),  # non-printables dropped
    ],
)
def test_secl_event_tags(event_type: int, data: bytes, pcr: int, expected: tuple[str, ...]) -> None:
    assert secl_event_tags(event_type, data, pcr) == expected


def test_secl_type_names_and_ids() -> None:
    assert secl_type_id(0x3) == "0x3" and secl_type_id(0x800000E0) == "0x800000e0"
    assert secl_type_name(0x80000008) == "EV_EFI_PLATFORM_FIRMWARE_BLOB"
    assert secl_type_name(0x401) == "PCR_MAPPING" and secl_type_name(0x416) == "EVTYPE_KM_HASH"
    assert secl_type_name(0x13) == ""  # EV_POST_CODE2 is not in SecL's table
    assert [secl_type_name(0x501, n) for n in range(6)] == [
        "tb_policy", "tb_policy", "vmlinuz", "initrd", "asset-tag", ""
    ]  # fmt: skip


@pytest.mark.swtpm
def test_manifest_memo_hits_only_on_the_same_inputs_and_log(swtpm: RunningSwtpm) -> None:
    # The verifier memoizes manifests: a key that missed a change would hand out a stale manifest, so
    # every input must move the key, and the event log (compared, not keyed) must match byte for byte.
    from dataclasses import replace

    log_bytes = corpus_bytes(OVMF_LOG)
    log, quote = _quote_on_swtpm(swtpm.tcti, log_bytes)
    base = {"host_info": HOST_INFO, "verified_quote": quote, "aik_certificate_pem": None}
    key = manifest_inputs_key(**base)
    assert key == manifest_inputs_key(**dict(base))
    _, tampered = _quote_on_swtpm(swtpm.tcti, log_bytes, tamper_pcr7=True)  # PCR 7 differs
    changes = [
        {"verified_quote": tampered},
        {"verified_quote": replace(quote, pcrs=None)},
        {"host_info": {**HOST_INFO, "host_name": "other"}},
        {"aik_certificate_pem": _aik_pem()},
        {"asset_tag_digest": b"\x01" * 48},
        {"measurement_xmls": ("<Measurement/>",)},
    ]
    keys = {manifest_inputs_key(**(base | change)) for change in changes}
    assert len(keys) == len(changes) and key not in keys

    memo = ManifestMemo(size=4)
    built = assemble_host_manifest(**base, event_log=log)
    remembered = memo.remember(key, log_bytes, built)
    assert remembered.event_log_sha256 == hashlib.sha256(log_bytes).digest()
    assert memo.lookup(key, bytes(bytearray(log_bytes))) is remembered  # equal bytes, another object
    assert memo.lookup(key, log_bytes[:-1] + bytes([log_bytes[-1] ^ 1])) is None  # one bit differs
    assert memo.lookup(key, log_bytes[:-1]) is None
    assert memo.lookup(next(iter(keys)), log_bytes) is None
