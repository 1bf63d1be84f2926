"""`secl tpm-endorsements`: EK certificates registered one TPM at a time for the Privacy CA."""

from __future__ import annotations

import base64
from typing import Any

import click

from secl.centralclient import CentralClient, load_session, segment
from secl.cli.admin import output_option
from secl.cli.output import print_json, print_table, read_input

_PATH = "/hvs/v2/tpm-endorsements"


def _client() -> CentralClient:
    return CentralClient.from_session(load_session())


def _rows(found: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            e["id"],
            e.get("hardware_uuid") or "-",
            "revoked" if e["revoked"] else "active",
            e["issuer"],
            e["comment"],
        ]
        for e in found
    ]


@click.group("tpm-endorsements")
def endorsements_group() -> None:
    """EK certificates registered one TPM at a time: the Privacy CA accepts a registered EK without a
    vendor CA chain, and with the central's require_ek_registration only registered EKs."""


@endorsements_group.command("add")
@click.argument("certificate", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--hardware-uuid", help="The host's hardware UUID (SMBIOS), for reference and search.")
@click.option("--comment", default="", help="Free text kept with the registration (asset number, rack).")
@output_option
def endorsements_add(certificate: str, hardware_uuid: str | None, comment: str, output: str) -> None:
    """Register the EK certificate in CERTIFICATE (PEM, or DER as read from the TPM's NV; - for stdin)."""
    data = read_input(certificate, "EK certificate")
    text = (
        data.decode("ascii", errors="replace") if b"-----BEGIN" in data else base64.b64encode(data).decode()
    )
    body: dict[str, Any] = {"certificate": text, "comment": comment}
    if hardware_uuid:
        body["hardware_uuid"] = hardware_uuid
    with _client() as central:
        added = central.post(_PATH, body)
    if output == "json":
        print_json(added)
    else:
        click.echo(f"registered {added['subject'] or added['certificate_sha256']} (id {added['id']})")


@endorsements_group.command("list")
@click.option("--hardware-uuid", help="Only this host's.")
@click.option("--revoked/--active", default=None, help="Only revoked, or only active, registrations.")
@output_option
def endorsements_list(hardware_uuid: str | None, revoked: bool | None, output: str) -> None:
    """List registered EK certificates."""
    params: dict[str, Any] = {}
    if hardware_uuid:
        params["hardwareUuidEqualTo"] = hardware_uuid
    if revoked is not None:
        params["revokedEqualTo"] = str(revoked).lower()
    with _client() as central:
        found = central.get(_PATH, **params)["tpm_endorsements"]
    if output == "json":
        print_json(found)
    else:
        print_table(["ID", "HARDWARE UUID", "STATE", "ISSUER", "COMMENT"], _rows(found))


def _set_revoked(endorsement_id: str, revoked: bool, output: str) -> None:
    with _client() as central:
        changed = central.put(f"{_PATH}/{segment(endorsement_id)}", {"revoked": revoked})
    if output == "json":
        print_json(changed)
    else:
        click.echo(f"{'revoked' if revoked else 'restored'} {changed['id']}")


@endorsements_group.command("revoke")
@click.argument("endorsement_id")
@output_option
def endorsements_revoke(endorsement_id: str, output: str) -> None:
    """Refuse this EK from now on, even if its certificate chains to a trusted vendor CA."""
    _set_revoked(endorsement_id, True, output)


@endorsements_group.command("restore")
@click.argument("endorsement_id")
@output_option
def endorsements_restore(endorsement_id: str, output: str) -> None:
    """Undo a revocation."""
    _set_revoked(endorsement_id, False, output)


@endorsements_group.command("delete")
@click.argument("endorsement_id")
def endorsements_delete(endorsement_id: str) -> None:
    """Forget a registration (the EK is then judged by its chain alone)."""
    with _client() as central:
        central.delete(f"{_PATH}/{segment(endorsement_id)}")
    click.echo(f"deleted {endorsement_id}")
