"""`secl software`: application integrity — what a manifest measures, SOFTWARE flavors, manifests on hosts.

- ``measure``: measure a SecL Manifest XML here, under a root directory, and print the Measurement XML (no
  TPM, nothing extended): what a host's initrd would measure, to check a manifest before using it.
- ``flavor``: the central asks a registered host's trust agent to measure the manifest now and keeps the
  result as a signed SOFTWARE flavor (``POST /hvs/v2/flavor-from-app-manifest``).
- ``deploy``: the central stores a SOFTWARE flavor's manifest on a host, measured from its next boot on
  (``POST /hvs/v2/rpc/deploy-software-manifest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from secl.centralclient import CentralClient, load_session
from secl.cli.admin import output_option
from secl.cli.output import InputError, print_json, read_input
from secl.core.appmanifest import MAX_MANIFEST_BYTES, ManifestError, parse_manifest


def _manifest_text(path: str) -> str:
    data = read_input(path, "manifest", limit=MAX_MANIFEST_BYTES)
    try:
        parse_manifest(data)  # refuse here what the central would refuse, with the same words
        return data.decode("utf-8")
    except ManifestError as exc:
        raise InputError(f"manifest {path}: [{exc.code}] {exc.message}") from None
    except UnicodeDecodeError:
        raise InputError(f"manifest {path}: not UTF-8") from None


@click.group("software")
def software_group() -> None:
    """Application integrity: files measured at boot into PCR 15, checked against SOFTWARE flavors."""


@software_group.command("measure")
@click.argument("manifest", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("/"),
              show_default=True, help="The file system the manifest's paths are resolved in.")  # fmt: skip
@click.option(
    "--skip-missing", is_flag=True, help="Leave out missing literal paths (as at boot) instead of failing."
)
def software_measure(manifest: str, root: Path, skip_missing: bool) -> None:
    """Print the Measurement XML of MANIFEST (a SecL Manifest XML, - for stdin) measured under --root.

    Nothing is extended or logged; secl-measure does that at boot.
    """
    from secl.core.measurementlog import MeasurementLogError, render_measurement_xml
    from secl.host.measure import MeasureError, measure

    parsed = parse_manifest(_manifest_text(manifest).encode())
    try:
        result = measure(parsed, root, skip_missing=skip_missing)
        xml = render_measurement_xml(result.log)
    except (MeasureError, MeasurementLogError) as exc:
        raise InputError(f"[{exc.code}] {exc}") from None
    for path in result.skipped:
        click.echo(f"secl: warning: {path} does not exist; left out", err=True)
    click.echo(xml)


@software_group.command("flavor")
@click.argument("manifest", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--host-id", help="The registered host whose trust agent measures the manifest.")
@click.option("--connection-string", help="Or the host's connection string (intel:https://host:1443).")
@click.option("--group", "groups", multiple=True, help="Flavor group (repeatable; default: automatic).")
@output_option
def software_flavor(
    manifest: str, host_id: str | None, connection_string: str | None, groups: tuple[str, ...], output: str
) -> None:
    """Make a SOFTWARE flavor from MANIFEST, measured now on a registered host by its trust agent."""
    if (host_id is None) == (connection_string is None):
        raise click.UsageError("give --host-id or --connection-string (exactly one)")
    body: dict[str, Any] = {"manifest": _manifest_text(manifest)}
    body |= {"host_id": host_id} if host_id else {"connection_string": connection_string}
    if groups:
        body["flavorgroup_names"] = list(groups)
    with CentralClient.from_session(load_session()) as central:
        made = central.post("/hvs/v2/flavor-from-app-manifest", body)
    if output == "json":
        print_json(made)
        return
    flavor = made["flavor"]
    measurements = (flavor.get("software") or {}).get("measurements") or {}
    click.echo(
        f"SOFTWARE flavor {flavor['meta']['id']} ({flavor['meta']['description']['label']}): "
        f"{len(measurements)} measurements, cumulative {flavor['software']['cumulative_hash'][:16]}…"
    )


@software_group.command("deploy")
@click.argument("flavor_id")
@click.option("--host-id", required=True, help="The registered host to measure the flavor's files at boot.")
@output_option
def software_deploy(flavor_id: str, host_id: str, output: str) -> None:
    """Store the manifest of SOFTWARE flavor FLAVOR_ID on a host; its initrd measures it from the next boot."""
    with CentralClient.from_session(load_session()) as central:
        deployed = central.post(
            "/hvs/v2/rpc/deploy-software-manifest", {"flavor_id": flavor_id, "host_id": host_id}
        )
    if output == "json":
        print_json(deployed)
    else:
        click.echo(
            f"manifest of {deployed['label']} ({flavor_id}) deployed to host {host_id}; measured from its next boot"
        )
