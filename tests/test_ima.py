"""IMA runtime measurement logs: every IMA log of the corpus (see corpus/INDEX.md, "IMA logs").

Expected values come from outside the parser wherever possible: PCR 10 is replayed by a small loop over
the log's text, template hashes are recomputed here from the kernel's field layout, and boot_aggregate is
checked against PCRs replayed from the matching firmware event log.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secl.core.errors import EvidenceError, IMALogError
from secl.core.hashalg import HashAlg
from secl.core.ima import (
    IMAEntry,
    IMALog,
    compute_boot_aggregate,
    parse_ascii_ima_log,
    parse_binary_ima_log,
    parse_ima_log,
)
from tests.corpus import corpus_bytes, expected

RUST_KEYLIME_ASCII = "rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements"
RUST_KEYLIME_SINGLE = "rust-keylime/keylime/test-data/ima_log.txt"
ISECL_ASCII = "intel-secl/pkg/tagent/test/mockImaDir/ascii_runtime_measurements"
EVM_UTILS_ASCII = "ima-evm-utils/tests/test_ascii_runtime_measurements"
EVM_UTILS_SAMPLE = "ima-evm-utils/tests/sample-ascii_runtime_measurements-pcrs-8-9"
KEYLIME = "keylime/extracted_from_tests/test_ima_verification.{}.ascii_runtime_measurements"
TSS = "tpm2-tss/test/data/fapi/eventlog/sml-ima-{}.b64"
ASCII_LOGS = [
    RUST_KEYLIME_ASCII,
    RUST_KEYLIME_SINGLE,
    ISECL_ASCII,
    EVM_UTILS_ASCII,
    EVM_UTILS_SAMPLE,
    KEYLIME.format("MEASUREMENTS"),
    KEYLIME.format("SIGNATURES"),
    KEYLIME.format("KEYRINGS"),
]
TSS_VALID = ["sha1", "ng-sha1", "sig-sha256"]
ZERO20 = bytes(20)


# --- independent helpers: no code from secl.core.ima -----------------------------------------------------


def replay_from_text(text: str, hash_name: str = "sha1") -> bytes:
    """Extend every line's second column into a PCR, all-zero hashes as ff...ff (the kernel's rule)."""
    size = hashlib.new(hash_name).digest_size
    pcr = bytes(size)
    for line in text.splitlines():
        if not line.strip():
            continue
        logged = bytes.fromhex(line.split(" ")[1])
        pcr = hashlib.new(hash_name, pcr + (b"\xff" * size if not any(logged) else logged)).digest()
    return pcr


def ima_ng_template_data(digest_field: str, path: str) -> bytes:
    """Rebuild ima-ng template data from 'alg:hex' and a path: each field u32-length-prefixed."""
    alg, _, hex_digest = digest_field.partition(":")
    d_ng = alg.encode() + b":\0" + bytes.fromhex(hex_digest)
    n_ng = path.encode() + b"\0"
    return b"".join(struct.pack("<I", len(f)) + f for f in (d_ng, n_ng))


def tcg_replay(log: bytes, alg_id: int, hash_name: str) -> dict[int, bytes]:
    """Replay one bank of a crypto-agile TCG event log (enough for the ima-evm-utils logs)."""
    _pcr, _type, _sha1, size = struct.unpack_from("<II20sI", log, 0)
    spec = log[32 : 32 + size]
    (count,) = struct.unpack_from("<I", spec, 24)
    sizes = dict(struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(count))
    pcrs = {i: bytes(sizes[alg_id]) for i in range(24)}
    offset = 32 + size
    while offset < len(log):
        pcr, event_type, digests = struct.unpack_from("<III", log, offset)
        offset += 12
        wanted = b""
        for _ in range(digests):
            (alg,) = struct.unpack_from("<H", log, offset)
            if alg == alg_id:
                wanted = log[offset + 2 : offset + 2 + sizes[alg]]
            offset += 2 + sizes[alg]
        (event_size,) = struct.unpack_from("<I", log, offset)
        data = log[offset + 4 : offset + 4 + event_size]
        offset += 4 + event_size
        if event_type == 3:  # EV_NO_ACTION: never extended; StartupLocality sets PCR0's start value
            if data.startswith(b"StartupLocality\0"):
                pcrs[0] = bytes(sizes[alg_id] - 1) + data[16:17]
            continue
        pcrs[pcr] = hashlib.new(hash_name, pcrs[pcr] + wanted).digest()
    return pcrs


def render_ascii_line(entry: IMAEntry) -> str:
    """Write an entry the way the kernel's ascii_runtime_measurements does (one space before each field)."""
    if entry.template_name == "ima":
        fields = [entry.digest.hex(), entry.path]
    else:
        fields = [f"{entry.digest_alg}:{entry.digest.hex()}", entry.path]
        if entry.signature is not None:
            fields.append(entry.signature.hex())
    return f"{entry.pcr} {entry.template_hash.hex()} {entry.template_name} " + " ".join(fields)


def encode_binary(log: IMALog, hash_name: str) -> bytes:
    """Write a length-prefixed-template log with template hashes of another size (the _sha256 file)."""
    out = b""
    for entry in log.entries:
        assert entry.template_data is not None
        thash = bytes(hashlib.new(hash_name).digest_size) if entry.is_violation else b""
        thash = thash or hashlib.new(hash_name, entry.template_data).digest()
        name = entry.template_name.encode()
        out += struct.pack("<I", entry.pcr) + thash + struct.pack("<I", len(name)) + name
        out += struct.pack("<I", len(entry.template_data)) + entry.template_data
    return out


def tss_log(name: str) -> IMALog:
    return parse_ima_log(corpus_bytes(TSS.format(name)), tolerate_partial_tail=True)


# --- every ASCII log of the corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("relpath", ASCII_LOGS)
def test_ascii_log_template_hashes_and_replay(relpath: str) -> None:
    data = corpus_bytes(relpath)
    log = parse_ima_log(data)
    lines = [line for line in data.decode().splitlines() if line.strip()]
    assert log.format == "ascii"
    assert len(log.entries) == len(lines)
    assert [e.index for e in log.entries] == list(range(len(lines)))
    log.verify_template_hashes()
    assert log.template_hash_mismatches() == ()
    assert log.replay() == replay_from_text(data.decode())
    assert log.replay(HashAlg.SHA1) == log.replay()
    assert log == parse_ascii_ima_log(data.decode())


def test_rust_keylime_ascii_log() -> None:
    data = corpus_bytes(RUST_KEYLIME_ASCII)
    log = parse_ima_log(data)
    assert len(log.entries) == 826
    assert {e.template_name for e in log.entries} == {"ima-ng"}
    assert {e.digest_alg for e in log.entries} == {"sha1"}
    assert not any(e.is_violation for e in log.entries)
    pcr10 = log.replay()
    assert pcr10.hex().startswith("82231c67")
    assert pcr10 == replay_from_text(data.decode())
    # The template hashes recomputed here from the kernel's ima-ng layout, without the parser.
    for line in data.decode().splitlines():
        _pcr, logged, _name, digest_field, path = line.split(" ", 4)
        assert hashlib.sha1(ima_ng_template_data(digest_field, path)).hexdigest() == logged
    assert log.boot_aggregate == ZERO20  # "no TPM": the kernel logs zeros
    assert log.entries[1].path == "/init" and log.entries[1].line == 2


def test_rust_keylime_log_replays_into_sha256_bank_from_template_data() -> None:
    text = corpus_bytes(RUST_KEYLIME_ASCII).decode()
    pcr = bytes(32)
    for line in text.splitlines():
        _pcr, _logged, _name, digest_field, path = line.split(" ", 4)
        pcr = hashlib.sha256(pcr + hashlib.sha256(ima_ng_template_data(digest_field, path)).digest()).digest()
    assert parse_ima_log(text.encode()).replay(HashAlg.SHA256) == pcr


def test_intel_secl_ima_sig_log_with_two_violations() -> None:
    data = corpus_bytes(ISECL_ASCII)
    log = parse_ima_log(data)
    assert len(log.entries) == 101
    assert {e.template_name for e in log.entries} == {"ima-sig"}
    violations = [e for e in log.entries if e.is_violation]
    assert [(e.index, e.line, e.path) for e in violations] == [
        (71, 72, "/tmp/sh-thd.UuOjlg"),
        (72, 73, "/tmp/sh-thd.UuOjlg"),
    ]
    # Surprise in this log: a violation claims "sha512" with a 20-byte all-zero digest.
    assert [(e.digest_alg, e.digest) for e in violations] == [("sha1", ZERO20), ("sha512", ZERO20)]
    assert {e.digest_alg for e in log.entries if not e.is_violation} == {"sha256"}
    assert len(log.entries) - len(violations) - len(log.template_hash_mismatches()) == 99
    assert log.replay() == replay_from_text(data.decode())
    sha256_pcr = bytes(32)
    for entry in log.entries:
        assert entry.template_data is not None
        extend = b"\xff" * 32 if entry.is_violation else hashlib.sha256(entry.template_data).digest()
        sha256_pcr = hashlib.sha256(sha256_pcr + extend).digest()
    assert log.replay(HashAlg.SHA256) == sha256_pcr
    assert log.boot_aggregate == bytes.fromhex(
        "3ed4fbd4bfb720b9069892edfa0cfc4700c1d9d265f971948973600a9276ee94"
    )


def test_keylime_measurements_have_empty_signatures_and_trailing_spaces() -> None:
    log = parse_ima_log(corpus_bytes(KEYLIME.format("MEASUREMENTS")))
    assert len(log.entries) == 3
    assert [e.signature for e in log.entries] == [b"", b"", b""]
    assert log.entries[0].path == "boot_aggregate"
    assert log.entries[1].path.endswith("/drivers/usb/common/usb-common.ko")


def test_keylime_signatures_carry_ima_v2_signature_headers() -> None:
    log = parse_ima_log(corpus_bytes(KEYLIME.format("SIGNATURES")))
    assert [e.path for e in log.entries] == ["/usr/bin/dd", "/usr/bin/zmore"]
    for entry in log.entries:
        assert entry.signature is not None
        assert entry.signature[:2] == b"\x03\x02"  # EVM_IMA_XATTR_DIGSIG, signature format v2
        (sig_size,) = struct.unpack(">H", entry.signature[7:9])
        assert sig_size == len(entry.signature) - 9


def test_keylime_keyring_entry_is_an_ima_buf_with_a_certificate() -> None:
    (entry,) = parse_ima_log(corpus_bytes(KEYLIME.format("KEYRINGS"))).entries
    assert entry.template_name == "ima-buf"
    assert entry.path == ".ima"
    assert entry.buffer is not None and entry.signature is None
    assert entry.buffer[:2] == b"\x30\x82"  # a DER SEQUENCE: the key's X.509 certificate
    assert struct.unpack(">H", entry.buffer[2:4])[0] + 4 == len(entry.buffer)
    assert entry.digest_alg == "sha256"
    assert entry.digest == hashlib.sha256(entry.buffer).digest()  # ima-buf measures the buffer itself


def test_keylime_bad_signature_is_exactly_one_named_mismatch() -> None:
    bad = parse_ima_log(corpus_bytes(KEYLIME.format("BAD_SIGNATURES")))
    good = parse_ima_log(corpus_bytes(KEYLIME.format("SIGNATURES"))).entries[1]
    (mismatch,) = bad.template_hash_mismatches()
    assert mismatch.entry.index == 0 and mismatch.entry.line == 1
    assert mismatch.entry.path == "/usr/bin/zmore"
    assert mismatch.computed != mismatch.entry.template_hash
    # What was altered: two bytes of the signature header (its size field), not the logged hash.
    assert mismatch.entry.template_hash == good.template_hash
    assert mismatch.entry.digest == good.digest
    assert mismatch.entry.signature is not None and good.signature is not None
    assert [
        i for i, (a, b) in enumerate(zip(mismatch.entry.signature, good.signature, strict=True)) if a != b
    ] == [7, 8]
    with pytest.raises(IMALogError) as caught:
        bad.verify_template_hashes()
    assert caught.value.code == "ima-template-hash-mismatch"
    assert isinstance(caught.value, EvidenceError)
    assert "entry 0 (line 1)" in caught.value.message
    assert "/usr/bin/zmore" in caught.value.message


def test_rust_keylime_single_boot_aggregate_line() -> None:
    log = parse_ima_log(corpus_bytes(RUST_KEYLIME_SINGLE))
    (entry,) = log.entries
    assert (entry.template_name, entry.path, entry.digest_alg) == ("ima-ng", "boot_aggregate", "sha256")
    assert log.boot_aggregate_entry == entry
    assert log.boot_aggregate == bytes.fromhex(
        "fec395eacfbd4d9bfd3ddce68ccf0792159494ff7aae89c556f7f2796046f871"
    )


# --- boot_aggregate against the firmware logs ----------------------------------------------------------


def test_tcg_replay_helper_reaches_the_machines_sha1_pcrs() -> None:
    name = "ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9"
    want = expected("misc_eventlog_expectations.json")[name]["expected_pcrs"]["sha1"]
    got = tcg_replay(corpus_bytes(name), 0x0004, "sha1")
    assert {i: got[i].hex() for i in range(10)} == {int(k): v for k, v in want.items() if int(k) < 10}


@pytest.mark.parametrize(
    ("bios_log", "key", "indices"),
    [
        ("ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9", "sha256_pcr0_9", range(10)),
        ("ima-evm-utils/tests/test_binary_bios_measurements", "sha256_pcr0_7", range(8)),
    ],
)
def test_boot_aggregate_matches_the_firmware_log(bios_log: str, key: str, indices: range) -> None:
    want = expected("misc_eventlog_expectations.json")[bios_log]["expected_boot_aggregate"]
    ima_log = parse_ima_log(corpus_bytes("ima-evm-utils/" + want["from"].split(" ")[0]))
    pcrs = tcg_replay(corpus_bytes(bios_log), 0x000B, "sha256")
    aggregate = compute_boot_aggregate(pcrs, HashAlg.SHA256, indices)
    assert aggregate.hex() == want[key]
    assert ima_log.boot_aggregate == aggregate
    assert ima_log.boot_aggregate_entry is not None
    assert ima_log.boot_aggregate_entry.digest_alg == "sha256"


def test_boot_aggregate_needs_every_pcr_at_the_right_size() -> None:
    pcrs = {i: bytes(32) for i in range(10)}
    assert compute_boot_aggregate(pcrs, HashAlg.SHA256) == hashlib.sha256(bytes(320)).digest()
    assert compute_boot_aggregate(pcrs, HashAlg.SHA256, range(8)) == hashlib.sha256(bytes(256)).digest()
    with pytest.raises(IMALogError, match="PCR 9"):
        compute_boot_aggregate({i: bytes(32) for i in range(9)}, HashAlg.SHA256)
    with pytest.raises(IMALogError, match="PCR 0"):
        compute_boot_aggregate(pcrs, HashAlg.SHA1)


# --- tpm2-tss binary logs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "template", "tail"),
    [
        ("sha1", 12, "ima", b"\n"),
        ("ng-sha1", 6, "ima-ng", b"\n"),
        ("sig-sha256", 9, "ima-sig", b"\n\0\0\0\xe3\x9d"),
    ],
)
def test_tss_binary_logs(name: str, count: int, template: str, tail: bytes) -> None:
    data = corpus_bytes(TSS.format(name))
    # These copies end in a stray fragment shorter than a record header: strict parsing names it...
    with pytest.raises(IMALogError, match=f"entry {count} at offset {len(data) - len(tail)}"):
        parse_ima_log(data)
    # ...and the tolerant mode keeps it, to be reported.
    log = parse_ima_log(data, tolerate_partial_tail=True)
    assert log.format == "binary"
    assert log.ignored_tail == tail
    assert log.to_dict()["ignored_tail_bytes"] == len(tail)
    assert len(log.entries) == count
    assert {e.template_name for e in log.entries} == {template}
    assert not any(e.is_violation for e in log.entries)
    log.verify_template_hashes()
    assert log == parse_binary_ima_log(data, template_hash_size=20, tolerate_partial_tail=True)
    pcr = ZERO20
    for entry in log.entries:
        pcr = hashlib.sha1(pcr + entry.template_hash).digest()
    assert log.replay() == pcr


def test_tss_legacy_ima_template_hash_covers_the_padded_name() -> None:
    entry = tss_log("sha1").entries[1]
    assert entry.path == "/init"
    assert entry.template_hash == hashlib.sha1(entry.digest + b"/init".ljust(256, b"\0")).digest()


def test_tss_binary_logs_agree_with_each_other() -> None:
    # The three logs measured the same boot: the same files with the same sha1 digests (ima, ima-ng).
    legacy, ng, sig = tss_log("sha1"), tss_log("ng-sha1"), tss_log("sig-sha256")
    assert [(e.path, e.digest) for e in ng.entries] == [(e.path, e.digest) for e in legacy.entries[:6]]
    assert [e.path for e in sig.entries] == [e.path for e in legacy.entries[:9]]
    # Surprise: the ima-sig log's boot_aggregate is sha1 (zeros, no TPM) while every file is sha256.
    assert [e.digest_alg for e in sig.entries] == ["sha1"] + ["sha256"] * 8


@pytest.mark.parametrize("name", TSS_VALID)
def test_tss_binary_logs_agree_with_their_ascii_rendering(name: str) -> None:
    binary = tss_log(name)
    text = "\n".join(render_ascii_line(e) for e in binary.entries) + "\n"
    ascii_log = parse_ima_log(text.encode())
    ascii_log.verify_template_hashes()
    assert ascii_log.format == "ascii"
    assert [e.template_data for e in ascii_log.entries] == [e.template_data for e in binary.entries]
    assert [e.to_dict() for e in ascii_log.entries] == [e.to_dict() for e in binary.entries]
    assert ascii_log.replay() == binary.replay() == replay_from_text(text)
    assert ascii_log.replay(HashAlg.SHA256) == binary.replay(HashAlg.SHA256)


def test_tss_sha1_invalidated_is_a_lone_boot_aggregate_violation() -> None:
    data = corpus_bytes(TSS.format("sha1-invalidated"))
    log = parse_ima_log(data)  # a complete record: no tolerance needed
    (entry,) = log.entries
    assert (entry.template_name, entry.path) == ("ima", "boot_aggregate")
    assert entry.is_violation and entry.template_hash == ZERO20 and entry.digest == ZERO20
    # The violation is reported, never counted as a mismatch, and replayed as ff...ff.
    assert log.template_hash_mismatches() == ()
    assert entry.to_dict()["violation"] is True
    assert log.replay() == hashlib.sha1(ZERO20 + b"\xff" * 20).digest()
    assert log.replay(HashAlg.SHA256) == hashlib.sha256(bytes(32) + b"\xff" * 32).digest()
    assert log.replay() != tss_log("sha1").entries[0].template_hash


def test_tss_sig_sha256_invalidated_turns_init_into_a_violation() -> None:
    log = parse_ima_log(corpus_bytes(TSS.format("sig-sha256-invalidated")))
    valid = tss_log("sig-sha256")
    assert len(log.entries) == 2
    assert log.entries[0] == valid.entries[0]
    init = log.entries[1]
    assert (init.path, init.digest_alg) == ("/init", "sha256")
    assert init.is_violation and init.digest == bytes(32)
    assert not valid.entries[1].is_violation
    assert log.template_hash_mismatches() == ()
    want = hashlib.sha1(hashlib.sha1(ZERO20 + log.entries[0].template_hash).digest() + b"\xff" * 20)
    assert log.replay() == want.digest()


def test_tss_ng_sha1_invalidated_is_truncated_and_rejected() -> None:
    data = corpus_bytes(TSS.format("ng-sha1-invalidated"))
    for tolerant in (False, True):
        with pytest.raises(IMALogError) as caught:
            parse_ima_log(data, tolerate_partial_tail=tolerant)
        assert caught.value.code == "ima-log-malformed"
        assert caught.value.message == (
            "binary IMA log entry 0 at offset 0: template data needs 49 bytes but only 48 are left "
            "(truncated log?)"
        )
    # With the missing NUL of "boot_aggregate" put back it is a violation record on PCR 13, not 10.
    (entry,) = parse_ima_log(data + b"\0").entries
    assert (entry.pcr, entry.path, entry.is_violation) == (13, "boot_aggregate", True)
    assert parse_ima_log(data + b"\0").replay() == bytes(20)  # nothing on PCR 10


# --- formats, detection and errors -------------------------------------------------------------------


def test_sha256_sized_template_hashes_are_detected_in_binary_logs() -> None:
    sha1_log = parse_ima_log(corpus_bytes(ISECL_ASCII))
    data = encode_binary(sha1_log, "sha256")
    log = parse_ima_log(data)
    assert len(log.entries) == 101 and {len(e.template_hash) for e in log.entries} == {32}
    log.verify_template_hashes()
    assert log.replay() == log.replay(HashAlg.SHA256) == sha1_log.replay(HashAlg.SHA256)
    assert log.replay(HashAlg.SHA1) == sha1_log.replay()
    with pytest.raises(IMALogError):
        parse_binary_ima_log(data, template_hash_size=20)


def test_sha256_template_hashes_in_ascii() -> None:
    sha1_log = parse_ima_log(corpus_bytes(EVM_UTILS_ASCII))
    text = "".join(
        f"10 {hashlib.sha256(e.template_data or b'').hexdigest()} ima-ng {e.digest_alg}:{e.digest.hex()} "
        f"{e.path}\n"
        for e in sha1_log.entries
    )
    log = parse_ascii_ima_log(text)
    log.verify_template_hashes()
    assert log.replay() == replay_from_text(text, "sha256") == sha1_log.replay(HashAlg.SHA256)


def test_unknown_templates_are_kept_but_not_trusted() -> None:
    text = "10 " + "ab" * 20 + " my-tmpl sha256:00 /etc/x extra\n"
    log = parse_ascii_ima_log(text)
    (entry,) = log.entries
    assert entry.fields == (b"sha256:00", b"/etc/x", b"extra")
    assert not entry.is_verifiable and log.unverifiable_entries() == (entry,)
    assert log.template_hash_mismatches() == ()
    with pytest.raises(IMALogError) as caught:
        log.verify_template_hashes()
    assert caught.value.code == "ima-template-unverifiable"
    log.verify_template_hashes(allow_unverifiable=True)
    assert log.replay() == hashlib.sha1(ZERO20 + bytes.fromhex("ab" * 20)).digest()
    with pytest.raises(IMALogError) as replay_error:
        log.replay(HashAlg.SHA256)
    assert replay_error.value.code == "ima-replay-impossible"


def test_unknown_binary_template_is_still_verifiable() -> None:
    fields = [b"sha256:\0" + bytes(32), b"/bin/x\0", b"", b""]
    data = b"".join(struct.pack("<I", len(f)) + f for f in fields)
    name = b"ima-modsig"
    record = struct.pack("<I", 10) + hashlib.sha1(data).digest() + struct.pack("<I", len(name)) + name
    log = parse_ima_log(record + struct.pack("<I", len(data)) + data)
    (entry,) = log.entries
    assert (entry.template_name, entry.path, entry.digest_alg) == ("ima-modsig", "/bin/x", "sha256")
    assert entry.template_data == data and len(entry.fields) == 4
    log.verify_template_hashes()


def test_ima_sig_path_with_spaces_is_resolved_by_the_template_hash() -> None:
    # "2024" is valid hex: only the template hash says it is part of the name, not a signature.
    data = ima_ng_template_data("sha256:" + "11" * 32, "/tmp/a b 2024") + struct.pack("<I", 0)
    line = f"10 {hashlib.sha1(data).hexdigest()} ima-sig sha256:{'11' * 32} /tmp/a b 2024\n"
    (entry,) = parse_ascii_ima_log(line).entries
    assert (entry.path, entry.signature) == ("/tmp/a b 2024", b"")


def test_to_dict_export() -> None:
    log = parse_ima_log(corpus_bytes(ISECL_ASCII))
    exported = log.to_dict()
    assert exported["format"] == "ascii"
    entries = exported["entries"]
    assert isinstance(entries, list) and len(entries) == 101
    assert entries[71] == {
        "index": 71,
        "pcr": 10,
        "template": "ima-sig",
        "template_hash": "00" * 20,
        "path": "/tmp/sh-thd.UuOjlg",
        "digest": "sha1:" + "00" * 20,
        "violation": True,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty IMA log"),
        (b"\n\n", "empty IMA log"),
        (
            b"10 abc ima-ng sha1:00 /x\n",
            "line 1 (entry 0): template hash has an odd number of hex digits (3)",
        ),
        (b"10 " + b"00" * 20 + b" ima-ng\n", "line 1 (entry 0): expected"),
        (
            b"10 " + b"ab" * 20 + b" ima-ng sha1:0g /x\n",
            "line 1 (entry 0): file digest has 'g' at position 1, which is not a hex digit",
        ),
        (b"10 " + b"ab" * 20 + b" ima-ng sha1:00/x\n", "line 1 (entry 0): ima-ng entry needs"),
        (b"10 " + b"ab" * 19 + b" ima-ng sha1:00 /x\n", "matches no hash algorithm"),
        (b"10 " + b"ab" * 20 + b" ima-sig sha1:00 /x\n\n1x a b c", "line 3 (entry 1): bad PCR index"),
        (b"10 " + b"ab" * 20 + b" ima-ng sha1:00 /\xff\n", "line 1: not UTF-8"),
        (b"\x0a\0\0\0" + b"\0" * 20 + b"\xff\xff\xff\xff", "entry 0 at offset 0: template name length"),
        (b"\x0a\0\0\0" + b"\0" * 20 + b"\3\0\0\0ima" + b"\0" * 20 + b"\0\1\0\0", "file name length 256"),
        (b"\x0a\0\0\0" + b"\0" * 20 + b"\6\0\0\0ima-ng\5\0\0\0\1\0\0\0x", "needs 2 fields, got 1"),
        (b"\x0a\0\0\0" + b"\0" * 20 + b"\6\0\0\0ima-ng\5\0\0\0\5\0\0\0x", "field 0 needs 5 bytes"),
        (b"\xff\0\0\0" + b"\0" * 20, "PCR index 255 is out of range"),
        (b"99 " + b"ab" * 20 + b" ima-ng sha1:00 /x\n", "line 1 (entry 0): PCR index 99 is out of range"),
        (b"\x0a\0\0\0" + b"\0" * 20 + b"\3\0\0\0i\nx", "not printable ASCII"),
    ],
)
def test_malformed_logs_name_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(IMALogError) as caught:
        parse_ima_log(data)
    assert message in caught.value.message


def test_ascii_text_with_lone_surrogates_is_rejected() -> None:
    with pytest.raises(IMALogError, match="line 1: not UTF-8"):
        parse_ascii_ima_log("10 " + "ab" * 20 + " ima-ng sha1:00 /\udcff\n")


# --- hypothesis: any input gives an IMALog or an IMALogError, nothing else --------------------------------


def exercise(data: bytes) -> IMALog | None:
    """Parse and use ``data``; return the log, or None when IMALogError refused it (nothing else may escape)."""
    try:
        log = parse_ima_log(data, tolerate_partial_tail=len(data) % 2 == 0)
    except IMALogError:
        return None
    log.template_hash_mismatches()
    log.to_dict()
    for call in (log.verify_template_hashes, log.replay, lambda: log.replay(HashAlg.SHA256)):
        with contextlib.suppress(IMALogError):
            call()
    return log


def answered(outcome: IMALog | None) -> bool:
    return outcome is None or isinstance(outcome.entries, tuple)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [
    corpus_bytes(KEYLIME.format("SIGNATURES")),
    corpus_bytes(KEYLIME.format("KEYRINGS")),
    corpus_bytes(EVM_UTILS_ASCII),
    corpus_bytes(TSS.format("sha1"))[:400],
    corpus_bytes(TSS.format("ng-sha1")),
    corpus_bytes(TSS.format("sig-sha256")),
]


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_imalogerror(data: bytes) -> None:
    assert answered(exercise(data))


@FUZZ
@given(st.text(alphabet="0123456789abcdef :-_/.imngsh\n\r\x00\udcff", max_size=300))
def test_ascii_like_text_parses_or_raises_imalogerror(text: str) -> None:
    assert answered(exercise(text.encode("utf-8", "surrogatepass")))
    with contextlib.suppress(IMALogError):
        parse_ascii_ima_log(text)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_corpus_logs_parse_or_raise_imalogerror(seed: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(seed) - 1))
    value = data.draw(st.integers(0, 255))
    assert answered(exercise(seed[:position] + bytes([value]) + seed[position + 1 :]))
    assert answered(exercise(seed[: data.draw(st.integers(0, len(seed)))]))
    assert answered(exercise(seed[:position] + seed[position + 1 :]))
