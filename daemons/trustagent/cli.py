"""``secl-trustagent``: set up the trust agent, run its HTTPS API, print host info.

``run`` is the composition root: configuration -> TPM -> WSGI app -> mTLS server (what systemd starts).
``setup`` pins the central's CA by its SHA-384 fingerprint and obtains the agent's TLS certificate with an
enrollment token (:mod:`secl.host.enrollment`), reads the EK, creates the AIK and hands them to
:mod:`secl.host.provisioning`, and reports each step.
Every command reads the same configuration as the service (``--config`` plus SECL_TRUSTAGENT_*).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import click
import requests

from secl.host.enrollment import EnrollmentError, obtain_tls_certificate, pin_central_ca, pin_central_client
from secl.host.statefiles import StateFiles, write_state_file
from secl.host.tpm import TPMAdapter, TPMError
from secl.trustagent.config import AIK_HIERARCHY, AIK_KIND, ConfigError, TrustAgentConfig, load_config

EXIT_INCOMPLETE = 3  # setup did what it could; AIK enrollment is still missing


def _config(ctx: click.Context) -> TrustAgentConfig:
    return ctx.obj["config"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Configuration file (default: /etc/secl/trustagent.toml, or $SECL_TRUSTAGENT_CONFIG).")  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """The secl trust agent: proves this host's boot state to the central with TPM quotes."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config": config}


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Serve the trust-agent API over HTTPS with client certificates (what secl-trustagent.service runs)."""
    from secl.trustagent.agenttpm import AgentTPM
    from secl.trustagent.api import create_app
    from secl.trustagent.server import MTLSServer, mtls_context, serve

    config = _config(ctx)
    state = config.state
    missing = [
        p for p in (state.central_ca, state.central_client, state.tls_cert, state.tls_key) if not p.is_file()
    ]
    if missing:
        raise click.ClickException(f"not set up ({missing[0]} is missing): run `secl-trustagent setup` first")
    try:
        context = mtls_context(config)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot load the TLS files in {config.state_dir}: {exc}") from None
    tpm = AgentTPM.from_config(config)
    try:
        tpm.start()
    except TPMError as exc:
        raise click.ClickException(
            f"cannot use the TPM through {config.tcti!r} [{exc.code}]: {exc}"
        ) from None
    try:
        app = create_app(config, tpm)
        host, port = config.listen_address()
        allowed = frozenset(state.central_client.read_text().split())
        serve(MTLSServer(host, port, app, context, allowed))
    finally:
        tpm.close()


@cli.command()
@click.pass_context
def info(ctx: click.Context) -> None:
    """Print this host's info (OS, BIOS, hardware UUID, TPM, UEFI, TXT) as JSON."""
    from secl.trustagent import hostinfo

    config = _config(ctx)
    facts, problem = None, None
    try:
        with TPMAdapter(config.tcti) as tpm:
            facts = hostinfo.tpm_facts(tpm)
    except TPMError as exc:
        problem = f"[{exc.code}] {exc}"
        click.echo(f"warning: TPM unavailable through {config.tcti!r}: {problem}", err=True)
    click.echo(
        json.dumps(hostinfo.collect(hostinfo.HostSources.from_config(config), facts, problem), indent=2)
    )


# --- setup ---------------------------------------------------------------------------------------------


def _enroll_tls(
    *, central_url: str, fingerprint: str, token: str | None, host: str, state: StateFiles, force: bool
) -> None:
    """Pin the central's CA and TLS key, get this host's TLS certificate; each step reported as it is done."""
    pinned = pin_central_ca(central_url, fingerprint, state, force)
    if pinned.already:
        click.echo(f"central CA already pinned: {state.central_ca}")
    else:
        click.echo(f"pinned the central CA: {state.central_ca}")
    pin_central_client(central_url, state, pinned.certificate)
    click.echo(f"pinned the central's TLS key as the only client: {state.central_client}")
    issued = obtain_tls_certificate(
        central_url=central_url, token=token, host=host, state=state, ca=pinned.certificate, force=force
    )
    if issued is None:
        click.echo(f"TLS certificate for {host} already present: {state.tls_cert}")
    else:
        click.echo(f"TLS certificate for {host} issued: {state.tls_cert} (serial {issued.serial_number:x})")


def _aik(config: TrustAgentConfig, central_url: str, host: str, token: str | None, force: bool) -> bool:
    """Read the EK, create the AIK and enroll it; False (reported on stderr) if enrollment failed."""
    from secl.host.provisioning import AIKProvisioningError, provision_aik

    state = config.state
    try:
        with TPMAdapter(config.tcti) as tpm:
            ek = tpm.read_ek("rsa")
            aik = tpm.create_ak(AIK_KIND, AIK_HIERARCHY)
            click.echo(
                f"EK read ({'with' if ek.certificate else 'WITHOUT'} an NV certificate); AIK name {aik.name.hex()}"
            )
            if state.aik_cert.is_file() and not force:
                click.echo(f"AIK certificate already present: {state.aik_cert}")
                return True
            try:
                path = provision_aik(
                    central_url=central_url, state=state, tpm=tpm, ek=ek, aik=aik, host_name=host, token=token
                )
            except AIKProvisioningError as exc:
                click.echo(f"setup incomplete [{exc.code}]: {exc}", err=True)
                return False
            finally:
                tpm.flush(aik)
    except TPMError as exc:
        raise click.ClickException(f"TPM through {config.tcti!r} [{exc.code}]: {exc}") from None
    click.echo(f"AIK certificate stored: {path}")
    return True


def _asset_tag_index(config: TrustAgentConfig) -> None:
    """Define the asset-tag NV index (owner authorization, 48 bytes of zeros: no tag yet); idempotent.

    Asset tags are optional: a TPM that refuses (an owner password is set) is reported, and the rest of
    setup goes on; deploying a tag to this host then fails with the same TPM error.
    """
    from secl.trustagent.assettag import ASSET_TAG_NV_INDEX, define_index

    try:
        with TPMAdapter(config.tcti) as tpm:
            outcome = define_index(tpm)
    except TPMError as exc:
        click.echo(
            f"warning: asset-tag NV index 0x{ASSET_TAG_NV_INDEX:08x} not defined [{exc.code}]: {exc}; "
            "asset tags cannot be deployed to this host",
            err=True,
        )
        return
    click.echo(f"asset-tag NV index 0x{ASSET_TAG_NV_INDEX:08x}: {outcome}")


def _default_manifests(config: TrustAgentConfig) -> None:
    """Install the default manifests (the secl agents' own files), measured by the initrd every boot."""
    from secl.trustagent.appintegrity import install_default_manifests

    try:
        outcomes = install_default_manifests(config.manifest_path)
    except OSError as exc:
        raise click.ClickException(
            f"cannot install the default manifests in {config.manifest_path}: {exc}"
        ) from None
    for path, outcome in outcomes:
        click.echo(f"default manifest {path}: {outcome}")


def _register(config: TrustAgentConfig, central_url: str, host: str, token: str | None, force: bool) -> bool:
    """Register this host at the central under its own name; False (reported on stderr) if refused."""
    from secl.host.provisioning import AIKProvisioningError, register_host

    _, port = config.listen_address()
    record = {"central": central_url, "host_name": host, "connection_string": f"intel:https://{host}:{port}"}
    state = config.state
    if not force and state.registration.is_file() and json.loads(state.registration.read_text()) == record:
        click.echo(f"host {host} already registered at {central_url}")
        return True
    try:
        outcome = register_host(
            central_url=central_url, state=config.state, host_name=host, port=port, token=token
        )
    except AIKProvisioningError as exc:
        click.echo(f"setup incomplete [{exc.code}]: {exc}", err=True)
        return False
    state.registration.write_text(json.dumps(record))
    click.echo(f"host {host} {outcome} at {central_url} (intel:https://{host}:{port})")
    return True


@cli.command()
@click.option("--central", "central_url", default=None, help="The central's URL, e.g. https://central:8443 (default: central_url from the configuration).")  # fmt: skip
@click.option("--ca-fingerprint", required=True, help="SHA-384 fingerprint of the central's root CA (hex, as `secl-central setup` prints it).")  # fmt: skip
@click.option("--token", envvar="SECL_ENROLLMENT_TOKEN", default=None, help="Enrollment token for this host (or $SECL_ENROLLMENT_TOKEN, which keeps it out of the process list); needed when a TLS certificate or the AIK certificate must be issued.")  # fmt: skip
@click.option("--host", default=None, help="This host's name for its TLS certificate (default: host_name from the configuration, else the system host name).")  # fmt: skip
@click.option("--force", is_flag=True, help="Re-pin the CA and re-issue the certificates even if present.")
@click.pass_context
def setup(
    ctx: click.Context,
    *,
    central_url: str | None,
    ca_fingerprint: str,
    token: str | None,
    host: str | None,
    force: bool,
) -> None:
    """Join a central: pin its CA, get a TLS certificate, define the asset-tag NV index, install the default
    application manifests, create and enroll the AIK, register the host (idempotent).

    Exits 0 when everything is in place, 1 on an error, 3 when AIK enrollment failed (the reason is on stderr).
    """
    config = _config(ctx)
    central_url = (central_url or config.central_url).rstrip("/")
    if not central_url.startswith("https://"):
        raise click.BadParameter("the central's https:// URL is required", param_hint="--central")
    fingerprint = ca_fingerprint.lower().replace(":", "").strip()
    if len(fingerprint) != 96 or any(c not in "0123456789abcdef" for c in fingerprint):
        raise click.BadParameter(
            "must be a SHA-384 fingerprint: 96 hex digits", param_hint="--ca-fingerprint"
        )
    host = (host or config.host_name or socket.gethostname()).lower()
    state = config.state
    state.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        _enroll_tls(
            central_url=central_url, fingerprint=fingerprint, token=token, host=host, state=state, force=force
        )
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the central at {central_url}: {exc}") from None
    except EnrollmentError as exc:
        raise click.ClickException(str(exc)) from None
    write_state_file(
        state.central, json.dumps({"url": central_url, "ca_fingerprint_sha384": fingerprint}).encode()
    )
    _asset_tag_index(config)
    _default_manifests(config)
    if not _aik(config, central_url, host, token, force):
        ctx.exit(EXIT_INCOMPLETE)
    if not _register(config, central_url, host, token, force):
        ctx.exit(EXIT_INCOMPLETE)
    click.echo("setup complete")


def main() -> None:
    cli(prog_name="secl-trustagent")


if __name__ == "__main__":
    main()
