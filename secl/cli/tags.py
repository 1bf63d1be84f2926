"""``secl tags``: asset tags for hosts (``/hvs/v2/tag-certificates`` and ``/hvs/v2/rpc/deploy-tag-certificate``).

``create`` issues a tag certificate for a host (by ``--host`` name or id, or ``--hardware-uuid``) from
``--tag name=value`` pairs; ``deploy`` writes it into the host's TPM, creates its ASSET_TAG flavor and
attests the host; ``list``, ``show``, ``revoke`` and ``delete`` manage the certificates.
"""

from __future__ import annotations

from typing import Any

import click

from secl.centralclient import CentralClient, CentralError, load_session, segment
from secl.cli.admin import _print_one, output_option
from secl.cli.hvs import _find_host
from secl.cli.output import InputError, print_json, print_table


def _client() -> CentralClient:
    return CentralClient.from_session(load_session())


def parse_tag(text: str) -> dict[str, str]:
    """``name=value`` (names never contain "="; values may) -> SecL's ``{"name", "value"}``."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise InputError(f"--tag {text!r}: expected name=value, e.g. country=DE")
    return {"name": name, "value": value}


def _hardware_uuid(central: CentralClient, host: str | None, hardware_uuid: str | None) -> str:
    if (host is None) == (hardware_uuid is None):
        raise click.UsageError("give --host or --hardware-uuid (exactly one)")
    if hardware_uuid is not None:
        return hardware_uuid
    found = _find_host(central, host or "")
    if not found.get("hardware_uuid"):
        raise CentralError(
            f"host {found['host_name']} has no known hardware UUID yet: attest it once (secl report "
            f"{found['host_name']}) or give --hardware-uuid [hardware-uuid-unknown]"
        )
    return str(found["hardware_uuid"])


def _tags_text(selection: list[dict[str, str]] | dict[str, str]) -> str:
    pairs = selection.items() if isinstance(selection, dict) else ((t["name"], t["value"]) for t in selection)
    return ", ".join(f"{name}={value}" for name, value in pairs) or "-"


@click.group("tags")
def tags_group() -> None:
    """Asset tags (country=DE, rack=R12): tag certificates bound to a host's TPM."""


@tags_group.command("create")
@click.option("--host", help="The host (name or id) whose hardware UUID the certificate names.")
@click.option("--hardware-uuid", help="The hardware UUID to name instead (the host need not be registered).")
@click.option("--tag", "tags", multiple=True, required=True, metavar="NAME=VALUE",
              help="A tag (repeatable, one per name).")  # fmt: skip
@click.option(
    "--days", type=click.IntRange(1, 3650), default=365, show_default=True, help="Validity in days."
)
@output_option
def tags_create(
    host: str | None, hardware_uuid: str | None, tags: tuple[str, ...], days: int, output: str
) -> None:
    """Issue a tag certificate (signed by the central's Tag CA)."""
    selection = [parse_tag(t) for t in tags]
    with _client() as central:
        body = {
            "hardware_uuid": _hardware_uuid(central, host, hardware_uuid),
            "selection_content": selection,
            "validity_days": days,
        }
        created = central.post("/hvs/v2/tag-certificates", body)
    if output == "json":
        print_json(created)
    else:
        click.echo(
            f"tag certificate {created['id']} for {created['hardware_uuid']}: "
            f"{_tags_text(created['selection_content'])} (valid until {created['not_after']})"
        )


@tags_group.command("deploy")
@click.argument("certificate_id")
@click.option("--host", help="The host (name or id) to deploy to (default: the one with the certificate's hardware UUID).")  # fmt: skip
@output_option
def tags_deploy(certificate_id: str, host: str | None, output: str) -> None:
    """Write a tag certificate's SHA-384 into its host's TPM, create the host's ASSET_TAG flavor and
    attest the host."""
    with _client() as central:
        body: dict[str, Any] = {"certificate_id": certificate_id}
        if host is not None:
            body["host_id"] = _find_host(central, host)["id"]
        deployed = central.post("/hvs/v2/rpc/deploy-tag-certificate", body)
    if output == "json":
        print_json(deployed)
        return
    click.echo(f"tag certificate {certificate_id} deployed to host {deployed['host_name']} "
               f"(ASSET_TAG flavor {deployed['flavor_id']})")  # fmt: skip
    error = deployed.get("attestation_error")
    if error:
        click.echo(f"warning: the host could not be attested: {error['message']} [{error['code']}]", err=True)
    else:
        verdict = "TRUSTED" if deployed["trusted"] else "UNTRUSTED"
        click.echo(f"report {deployed['report_id']}: {verdict}; tags: {_tags_text(deployed['tags'])}")


@tags_group.command("clear")
@click.argument("host")
@output_option
def tags_clear(host: str, output: str) -> None:
    """Remove HOST's asset tag (name or id): its TPM's tag NV index is zeroed, its ASSET_TAG flavors are
    deleted, and it is attested (an untagged host needs no ASSET_TAG flavor)."""
    with _client() as central:
        cleared = central.post("/hvs/v2/rpc/clear-tag", {"host_id": _find_host(central, host)["id"]})
    if output == "json":
        print_json(cleared)
        return
    removed = ", ".join(cleared["removed_flavor_ids"]) or "none"
    click.echo(f"asset tag of host {cleared['host_name']} cleared (ASSET_TAG flavors removed: {removed})")
    error = cleared.get("attestation_error")
    if error:
        click.echo(f"warning: the host could not be attested: {error['message']} [{error['code']}]", err=True)
    else:
        click.echo(f"report {cleared['report_id']}: {'TRUSTED' if cleared['trusted'] else 'UNTRUSTED'}")


@tags_group.command("list")
@click.option("--host", help="Only certificates for this host (name or id).")
@click.option("--hardware-uuid", help="Only certificates for this hardware UUID.")
@click.option("--revoked/--not-revoked", default=None, help="Only revoked (or only unrevoked) certificates.")
@output_option
def tags_list(host: str | None, hardware_uuid: str | None, revoked: bool | None, output: str) -> None:
    """List tag certificates, newest first."""
    with _client() as central:
        if host is not None:
            hardware_uuid = _hardware_uuid(central, host, None)
        params: dict[str, Any] = {"hardwareUuid": hardware_uuid}
        if revoked is not None:
            params["revoked"] = "true" if revoked else "false"
        found = central.get("/hvs/v2/tag-certificates", **params)["tag_certificates"]
    if output == "json":
        print_json(found)
        return
    rows = [
        [c["id"], c["hardware_uuid"], "revoked" if c["revoked"] else "-", c["not_after"],
         _tags_text(c["selection_content"])]
        for c in found
    ]  # fmt: skip
    print_table(["ID", "HARDWARE UUID", "REVOKED", "NOT AFTER", "TAGS"], rows)


@tags_group.command("show")
@click.argument("certificate_id")
@output_option
def tags_show(certificate_id: str, output: str) -> None:
    """Show one tag certificate (the certificate itself is base64 DER in JSON output)."""
    with _client() as central:
        found = central.get(f"/hvs/v2/tag-certificates/{segment(certificate_id)}")
    if output != "json":
        found = {k: v for k, v in found.items() if k != "certificate"}
        found["selection_content"] = _tags_text(found["selection_content"])
    _print_one(found, output)


@tags_group.command("revoke")
@click.argument("certificate_id")
def tags_revoke(certificate_id: str) -> None:
    """Revoke a tag certificate: its host's next report says TagCertificateRevoked."""
    with _client() as central:
        revoked = central.post(f"/hvs/v2/tag-certificates/{segment(certificate_id)}/revoke", {})
    click.echo(f"tag certificate {certificate_id} revoked at {revoked['revoked_at']}")


@tags_group.command("delete")
@click.argument("certificate_id")
def tags_delete(certificate_id: str) -> None:
    """Delete a tag certificate and the ASSET_TAG flavors holding it."""
    with _client() as central:
        central.delete(f"/hvs/v2/tag-certificates/{segment(certificate_id)}")
    click.echo(f"tag certificate {certificate_id} deleted")
