"""Offline evidence commands: ``secl eventlog``, ``secl ima``, ``secl quote``, ``secl ekcert``."""

from __future__ import annotations

from pathlib import Path

import click

from secl.cli.output import InputError, InvalidEvidence, print_json, print_table, read_input
from secl.core.ekcert import EKTrustStore, load_certificates, load_ek_certificate, verify_ek_certificate
from secl.core.errors import EKCertificateError, QuoteError
from secl.core.eventdecode import describe_event
from secl.core.eventlog import Event, EventLog, parse_event_log, pcr_banks_to_json
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem
from secl.core.ima import IMALog, parse_ima_log
from secl.core.pcrfile import load_pcr_values
from secl.core.quote import unverified_quote_selection, verify_quote
from secl.core.tpm import load_ak_public

# --------------------------------------------------------------------------------------------- eventlog


@click.group("eventlog")
def eventlog_group() -> None:
    """Read TCG firmware event logs (/sys/kernel/security/tpm0/binary_bios_measurements).

    Both encodings are accepted: the TCG 1.2 SHA-1 format and the crypto-agile format.
    """


@eventlog_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the decoded events as JSON.")
def eventlog_show(file: str, as_json: bool) -> None:
    """Print the decoded events of FILE, with any digest that does not match its data.

    The log is what the host claims; only a replay against quoted PCRs makes it evidence.
    """
    log = parse_event_log(read_input(file, "event log"))
    mismatches = log.digest_mismatches()
    quirks = log.digest_quirks()
    if as_json:
        print_json(
            {
                "format": log.format,
                "banks": [b.bank_name for b in log.banks],
                "spec_id": _spec_id_json(log),
                "events": [_event_json(e) for e in log.events],
                "padding_bytes": log.padding_bytes,
                "digest_mismatches": [
                    {
                        "event": m.event_number,
                        "pcr": m.pcr,
                        "type": m.type_name,
                        "bank": m.bank.bank_name,
                        "logged": m.logged.hex(),
                        "computed": m.computed.hex(),
                    }
                    for m in mismatches
                ],
                "quirks": [{"event": q.event_number, "quirk": q.quirk} for q in quirks],
            }
        )
        return
    click.echo(
        f"format: {log.format}; banks: {', '.join(b.bank_name for b in log.banks)}; events: {len(log.events)}"
    )
    bank = log.banks[-1]
    rows = []
    for event in log.events:
        digest = event.digests.get(bank)
        rows.append(
            [
                event.number,
                _pcr_label(event.pcr),
                event.type_name,
                digest.hex()[:16] if digest else "-",
                describe_event(event).summary,
            ]
        )
    print_table(["#", "PCR", "TYPE", f"{bank.bank_name.upper()}[:8]", "DESCRIPTION"], rows)
    for m in mismatches:
        click.echo(f"MISMATCH: {m.describe()}")
    for q in quirks:
        click.echo(f"quirk: {q.describe()}")
    if log.padding_bytes:
        click.echo(f"({log.padding_bytes} bytes of padding after the last event)")


@eventlog_group.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help='Print {"sha256": {"0": "<hex>", ...}, ...}.')
def eventlog_replay(file: str, as_json: bool) -> None:
    """Replay every bank of FILE and print the PCR values the log claims.

    Compare them with the PCRs of a verified quote before trusting any event in the log.
    """
    log = parse_event_log(read_input(file, "event log"))
    replayed = log.replay()
    if as_json:
        print_json(pcr_banks_to_json(replayed))
        return
    rows = [
        [bank.bank_name, pcr, value.hex()]
        for bank, values in replayed.items()
        for pcr, value in values.items()
    ]
    print_table(["BANK", "PCR", "VALUE"], rows)


def _pcr_label(pcr: int) -> str:
    return "-" if pcr == 0xFFFFFFFF else str(pcr)


def _spec_id_json(log: EventLog) -> dict | None:
    if log.spec_id is None:
        return None
    spec = log.spec_id
    return {
        "platform_class": spec.platform_class,
        "spec_version": ".".join(str(v) for v in spec.spec_version),
        "uintn_size": spec.uintn_size,
        "algorithms": [{"id": f"0x{alg:04x}", "digest_size": size} for alg, size in spec.algorithms],
        "vendor_info": spec.vendor_info.hex(),
    }


def _event_json(event: Event) -> dict:
    description = describe_event(event)
    return {
        "number": event.number,
        "pcr": event.pcr,
        "type": event.type,
        "type_name": event.type_name,
        "digests": {bank.bank_name: digest.hex() for bank, digest in event.digests.items()},
        "data": event.data.hex(),
        "description": description.summary,
        "details": description.details,
    }


# --------------------------------------------------------------------------------------------- ima


@click.group("ima")
def ima_group() -> None:
    """Read Linux IMA runtime measurement logs (ASCII or binary; ima, ima-ng, ima-sig, ima-buf)."""


@ima_group.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--bank",
    default=None,
    help="PCR bank to replay (sha1, sha256, ...). Default: the algorithm of the log's template hashes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries, their checks and PCR 10 as JSON.")
def ima_replay(file: str, bank: str | None, as_json: bool) -> None:
    """Check every template hash in FILE and replay PCR 10.

    Violation entries (an all-zero template hash) extend ff…ff, as the kernel does. Exits with status 1
    if any template hash does not match its entry.
    """
    log = parse_ima_log(read_input(file, "IMA log"))
    alg = HashAlg.from_name(bank) if bank else None
    pcr10 = log.replay(alg)
    mismatches = log.template_hash_mismatches()
    violations = sum(1 for e in log.entries if e.is_violation)
    if as_json:
        print_json(
            {
                "pcr": 10,
                "bank": (alg or _native_bank(log)).bank_name,
                "value": pcr10.hex(),
                "entries": len(log.entries),
                "violations": violations,
                "boot_aggregate": log.boot_aggregate.hex() if log.boot_aggregate else None,
                "template_hash_mismatches": [m.describe() for m in mismatches],
                "log": log.to_dict(),
            }
        )
    else:
        click.echo(
            f"entries: {len(log.entries)}; violations: {violations}; template-hash mismatches: {len(mismatches)}"
        )
        click.echo(f"PCR 10 ({(alg or _native_bank(log)).bank_name}): {pcr10.hex()}")
        for m in mismatches:
            click.echo(f"MISMATCH: {m.describe()}")
    if mismatches:
        raise InvalidEvidence(f"{len(mismatches)} IMA entries do not match their template hash")


def _native_bank(log: IMALog) -> HashAlg:
    return log.entries[0].template_hash_alg if log.entries else HashAlg.SHA1


# --------------------------------------------------------------------------------------------- quote


@click.group("quote")
def quote_group() -> None:
    """Verify TPM 2.0 quotes (the same inputs as tpm2_checkquote)."""


@quote_group.command("verify")
@click.option(
    "--ak",
    "ak_path",
    required=True,
    help="The attestation key's public part: a TPM2B_PUBLIC (tpm2_createak -u) or TPMT_PUBLIC, a PEM or "
    "DER public key (SubjectPublicKeyInfo), or an X.509 certificate of the AK (PEM or DER, e.g. the AIK "
    "certificate a Privacy CA issued). Only a TPM public area also fixes the signing scheme and must be "
    "a restricted signing key.",
)
@click.option(
    "--message", "-m", "message_path", required=True, help="The quoted TPMS_ATTEST (tpm2_quote -m)."
)
@click.option(
    "--signature", "-s", "signature_path", required=True, help="The TPMT_SIGNATURE (tpm2_quote -s)."
)
@click.option("--nonce", "-q", "nonce_hex", required=True, help="The expected qualifying data, in hex.")
@click.option(
    "--pcrs",
    "-f",
    "pcrs_path",
    default=None,
    help="PCR values to check against the quote's digest: tpm2_quote -o output, or JSON "
    '{"sha256": {"0": "<hex>"}} as `secl eventlog replay --json` prints. Every quoted PCR must be given, '
    "and a PCR the quote does not cover is rejected.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the verdict, selection, digest and counters as JSON."
)
def quote_verify(  # noqa: PLR0917 (click passes every option positionally by name)
    ak_path: str, message_path: str, signature_path: str, nonce_hex: str, pcrs_path: str | None, as_json: bool
) -> None:
    """Verify a quote: structure, signature, qualifying data and (with --pcrs) the PCR digest.

    \b
    The AK (--ak) may be given as:
      - a TPM2B_PUBLIC (tpm2_createak -u) or a bare TPMT_PUBLIC,
      - a PEM or DER public key (SubjectPublicKeyInfo, tpm2_createak -f pem),
      - an X.509 certificate of the AK, PEM or DER (a Privacy CA's AIK certificate).

    Exits 0 only when the quote is valid; 1 when it does not verify; 3 when an input cannot be read.
    """
    try:
        nonce = bytes.fromhex(nonce_hex.removeprefix("0x"))
    except ValueError:
        raise InputError(f"--nonce {nonce_hex!r} {hex_problem(nonce_hex.removeprefix('0x'))}") from None
    ak = load_ak_public(read_input(ak_path, "AK"))
    attest = read_input(message_path, "attest message")
    signature = read_input(signature_path, "signature")
    pcrs = None
    if pcrs_path is not None:
        hint = unverified_quote_selection(attest)
        pcrs = load_pcr_values(read_input(pcrs_path, "PCR file"), hint)
    try:
        verified = verify_quote(ak, attest, signature, qualifying_data=nonce, pcrs=pcrs)
    except QuoteError as exc:
        if as_json:
            print_json({"valid": False, "error": exc.code, "message": exc.message})
        raise InvalidEvidence(f"quote does not verify: {exc.message} [{exc.code}]") from None
    if as_json:
        print_json({"valid": True, **verified.to_dict()})
        return
    selection = "+".join(f"{b.bank_name}:{','.join(map(str, idx))}" for b, idx in verified.selection.items())
    click.echo(f"quote valid: signature {verified.signature_scheme}/{verified.signature_hash.bank_name}")
    click.echo(f"PCR selection: {selection}")
    click.echo(f"PCR digest: {verified.pcr_digest.hex()}" + (" (matches the PCR values)" if pcrs else ""))
    click.echo(
        f"clock: {verified.clock}; resets: {verified.reset_count}; restarts: {verified.restart_count}; "
        f"safe: {verified.safe}"
    )


# --------------------------------------------------------------------------------------------- ekcert


@click.group("ekcert")
def ekcert_group() -> None:
    """Validate TPM endorsement-key certificates against TPM vendor CAs."""


@ekcert_group.command("verify")
@click.argument("cert", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--ca-bundle",
    "ca_bundle",
    required=True,
    type=click.Path(exists=True),
    help="Trusted TPM vendor CA certificates: a PEM bundle, or a directory of .pem/.crt/.cer/.der files. "
    "Every certificate in it is trusted (vendor bundles mix roots and intermediates).",
)
@click.option(
    "--intermediates",
    "intermediates_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Untrusted intermediate CA certificates (PEM bundle) that may complete the chain.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and the chain as JSON.")
def ekcert_verify(cert: str, ca_bundle: str, intermediates_path: str | None, as_json: bool) -> None:
    """Build a chain from the EK certificate CERT (PEM or DER, NV header tolerated) to a trusted CA.

    Tolerates the non-DER encodings real TPMs ship and says which fix-up each certificate needed.
    Exits 0 when the chain validates, 1 when it does not, 3 when an input cannot be read.
    """
    leaf = load_ek_certificate(read_input(cert, "certificate"))
    store = EKTrustStore.from_bundles(*_read_bundles(ca_bundle))
    intermediates = (
        load_certificates(read_input(intermediates_path, "intermediates")) if intermediates_path else ()
    )
    try:
        chain = verify_ek_certificate(leaf, store, intermediates=intermediates)
    except EKCertificateError as exc:
        if as_json:
            print_json(
                {"verified": False, "error": exc.code, "message": exc.message, "certificate": leaf.to_dict()}
            )
        raise InvalidEvidence(f"EK certificate not trusted: {exc.message} [{exc.code}]") from None
    if as_json:
        print_json(chain.to_dict())
        return
    click.echo("EK certificate valid")
    for depth, link in enumerate(chain.chain):
        fixups = f"  (fix-ups: {', '.join(link.fixups)})" if link.fixups else ""
        click.echo(f"  {depth}: {link.subject}{fixups}")


_BUNDLE_SUFFIXES = (".pem", ".crt", ".cer", ".der")


def _read_bundles(path: str) -> list[bytes]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in _BUNDLE_SUFFIXES and f.is_file())
        if not files:
            raise InputError(f"--ca-bundle {path}: no .pem/.crt/.cer/.der files in the directory")
        return [read_input(str(f), "CA certificate") for f in files]
    return [read_input(path, "CA bundle")]
