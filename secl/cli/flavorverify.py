"""``secl flavors verify``: the trust report of a SecL host manifest against signed flavors, offline.

It judges through the same core the central's verifier uses (:func:`secl.core.trustreport.build_trust_report`
with the central's default match policy), so the rules, their order, the fault names and the verdicts are
the central's; nothing here talks to a central, and nothing imports it.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import click
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from secl.cli.output import InputError, InvalidEvidence, print_json, print_table, read_input
from secl.core.flavor import parse_signed_flavors
from secl.core.hostmanifest import parse_host_manifest
from secl.core.rules import RuleResult
from secl.core.trustreport import TrustAnchors, TrustPolicyError, TrustReport, build_trust_report

_HELP = """Judge a SecL host manifest against signed flavors, offline: the central's trust report.

\b
--manifest is SecL's host manifest JSON (host_info, pcr_manifest with its
event logs, aik_certificate, asset_tag_digest, measurement_xmls), as the
central stores it or SecL's HVS exports it. --flavors is a JSON array of
signed flavors ({"flavor", "signature"}) or {"signed_flavors": [...]}, as
`secl flavors export` and SecL print them.

\b
Every flavor gets the rules the central would give it (SecL's rule factory:
the flavor's vendor, or the host's when the flavor says UNKNOWN; a host whose
OS names no vendor is refused). Flavors are combined per part with the
central's default policy: ANY_OF for PLATFORM, OS, HOST_UNIQUE and ASSET_TAG,
ALL_OF for SOFTWARE.

\b
Trust anchors: without --privacy-ca no AIK certificate is trusted
(AikCertificateNotTrusted); without --flavor-signer no flavor signature is
(FlavorSignatureVerificationFailed); without --tag-ca no tag certificate is.
Certificates are checked at --at (default: now).

\b
Exit status: 0 trusted; 1 untrusted, or the host cannot be judged (the
reason is named); 2 bad command line; 3 an input cannot be read or parsed.
"""


def _certificates(path: str | None, what: str) -> tuple[x509.Certificate, ...]:
    if path is None:
        return ()
    data = read_input(path, what)
    try:
        with warnings.catch_warnings():
            # SecL's CMS root has a non-positive serial number, which pyca still loads but deprecates;
            # a warning on stderr would break the one-line error contract for nothing.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            found = tuple(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise InputError(f"{what} {path}: not PEM certificates: {exc}") from None
    return found


def _instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--at") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def trust_anchors(
    *,
    at: datetime,
    privacy_ca: str | None,
    flavor_signer: str | None,
    flavor_ca: str | None,
    tag_ca: str | None,
) -> TrustAnchors:
    """The anchors the options name; the signer file's own chain is trusted as the central trusts its own."""
    signer_chain = _certificates(flavor_signer, "flavor signer")
    if flavor_signer is not None and not signer_chain:
        raise InputError(f"flavor signer {flavor_signer}: no certificate in the file")
    signer, *chain = signer_chain or (None,)
    flavor_cas = (*chain, *_certificates(flavor_ca, "flavor CA"))
    if signer is not None and not flavor_cas:
        raise click.UsageError(
            "--flavor-signer holds only the signing certificate: append its CA chain to the file, or name "
            "the CA with --flavor-ca"
        )
    return TrustAnchors(
        at=at,
        privacy_cas=_certificates(privacy_ca, "Privacy CA"),
        flavor_signing_cert=signer,
        flavor_cas=flavor_cas,
        flavor_intermediates=tuple(chain),
        tag_cas=_certificates(tag_ca, "Tag CA"),
    )


@click.command("verify", help=_HELP)
@click.option(
    "--manifest", "manifest_path", required=True, metavar="FILE", help="The host manifest (SecL JSON)."
)
@click.option(
    "--flavors", "flavors_path", required=True, metavar="FILE", help="The signed flavors (SecL JSON)."
)
@click.option("--privacy-ca", "privacy_ca", default=None, metavar="PEM",
              help="PEM: the Privacy CA(s) that certify AIKs (SecL's PrivacyCA.pem).")  # fmt: skip
@click.option("--flavor-signer", "flavor_signer", default=None, metavar="PEM",
              help="PEM: the flavor-signing certificate, then its CA chain (SecL's flavor-signer.crt.pem).")  # fmt: skip
@click.option("--flavor-ca", "flavor_ca", default=None, metavar="PEM",
              help="PEM: more CAs the flavor-signing certificate may chain to (SecL's cms-ca-cert.pem).")  # fmt: skip
@click.option(
    "--tag-ca", "tag_ca", default=None, metavar="PEM", help="PEM: the Tag CA(s) of ASSET_TAG flavors."
)
@click.option("--at", "at_text", default=None, metavar="TIME",
              help="Check certificates at this ISO 8601 time (default: now), e.g. to re-judge old evidence.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help='Print {"trusted", "trust_report", "flavors_trust"}, the central\'s report shapes.')  # fmt: skip
def flavors_verify(  # noqa: PLR0917 (click passes every option by name)
    manifest_path: str,
    flavors_path: str,
    privacy_ca: str | None,
    flavor_signer: str | None,
    flavor_ca: str | None,
    tag_ca: str | None,
    at_text: str | None,
    as_json: bool,
) -> None:
    at = _instant(at_text)
    anchors = trust_anchors(
        at=at, privacy_ca=privacy_ca, flavor_signer=flavor_signer, flavor_ca=flavor_ca, tag_ca=tag_ca
    )
    manifest = parse_host_manifest(read_input(manifest_path, "host manifest"))
    flavors = parse_signed_flavors(read_input(flavors_path, "flavors"))
    if not flavors:
        raise InputError(f"flavors {flavors_path}: no signed flavor in the file")
    try:
        report = build_trust_report(flavors, manifest, anchors)
    except TrustPolicyError as exc:
        if as_json:
            print_json({"trusted": False, "error": exc.code, "message": exc.message})
        raise InvalidEvidence(f"the host cannot be judged: {exc.message} [{exc.code}]") from None
    if as_json:
        print_json(
            {
                "trusted": report.trusted,
                "trust_report": report.to_json(),
                "flavors_trust": report.flavors_trust_json(),
            }
        )
    else:
        _print_report(report, len(flavors))
    if not report.trusted:
        faults = sorted({f.name for r in report.results for f in r.faults})
        raise InvalidEvidence(f"the host is not trusted: {', '.join(faults) or 'no flavor applies'}")


def _print_report(report: TrustReport, flavor_count: int) -> None:
    click.echo(f"policy: {report.policy_name}; flavors: {flavor_count}")
    for part, verdict in report.parts.items():
        click.echo(f"{part}: {'trusted' if verdict.trusted else 'UNTRUSTED'} ({verdict.match_policy})")
        print_table(["", "RULE", "FLAVOR", "DETAIL"], [_row(r) for r in verdict.results])
        for result in verdict.results:
            for fault in result.faults:
                click.echo("  " + fault.explain().replace("\n", "\n  "))
    click.echo(f"host: {'TRUSTED' if report.trusted else 'UNTRUSTED'}")


def _row(result: RuleResult) -> list[Any]:
    expected = result.expected
    pcr = expected.get("pcr") if isinstance(expected.get("pcr"), dict) else None
    detail = f"pcr {pcr.get('index')} {pcr.get('bank')}" if pcr else ""
    return ["  ok" if result.trusted else "  FAIL", result.rule_name, result.flavor_id or "-", detail]
