"""``secl-trustagent``: set up the trust agent, run its HTTPS API, print host info.

``run`` is the composition root: configuration -> TPM -> WSGI app -> mTLS server (what systemd starts).
``setup`` pins the central's CA by its SHA-384 fingerprint, obtains the agent's TLS certificate with an
enrollment token, reads the EK, creates the AIK and hands them to :mod:`secl.trustagent.provisioning`.
Every command reads the same configuration as the service (``--config`` plus SECL_TRUSTAGENT_*).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import ssl
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from secl.trustagent.config import (
    AIK_HIERARCHY,
    AIK_KIND,
    ConfigError,
    StateFiles,
    TrustAgentConfig,
    load_config,
)
from secl.trustagent.tpm import TPMAdapter, TPMError

EXIT_INCOMPLETE = 3  # setup did what it could; AIK enrollment is still missing
_TIMEOUT = 30
_RENEW_BEFORE = timedelta(days=7)


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
    from secl.trustagent.server import AgentTPM, MTLSServer, create_app, mtls_context, serve

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


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA384()).hex()


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically, created with ``mode`` (never briefly readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _central_error(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} [{body.get('code')}]: {body.get('message')}"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


def pin_central_ca(central_url: str, fingerprint: str, state: StateFiles, force: bool) -> x509.Certificate:
    """The central's root CA, fetched without verification and accepted only with this SHA-384."""
    if state.central_ca.is_file() and not force:
        pinned = x509.load_pem_x509_certificate(state.central_ca.read_bytes())
        if not hmac.compare_digest(_fingerprint(pinned), fingerprint):
            raise click.ClickException(
                f"{state.central_ca} pins another CA (SHA-384 {_fingerprint(pinned)}); use --force to re-pin"
            )
        click.echo(f"central CA already pinned: {state.central_ca}")
        return pinned
    with warnings.catch_warnings():  # trust comes from the fingerprint, not from TLS, for this one call
        warnings.simplefilter("ignore")
        response = requests.get(
            f"{central_url}/cms/v1/ca-certificates", headers={"Accept": "application/json"},
            verify=False, timeout=_TIMEOUT,
        )  # fmt: skip
    if response.status_code != 200:
        raise click.ClickException(f"cannot fetch the central's CA: {_central_error(response)}")
    try:
        ca = x509.load_pem_x509_certificate(response.json()["pem"].encode())
    except (ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"the central's CA answer is not a PEM certificate: {exc}") from None
    if not hmac.compare_digest(_fingerprint(ca), fingerprint):
        raise click.ClickException(
            f"the central's CA has SHA-384 fingerprint {_fingerprint(ca)}, not {fingerprint}: not pinned"
        )
    _write(state.central_ca, ca.public_bytes(serialization.Encoding.PEM))
    click.echo(f"pinned the central CA: {state.central_ca}")
    return ca


def pin_central_client(central_url: str, state: StateFiles, ca: x509.Certificate) -> None:
    """Pin the central's TLS key: the agent answers that client only (its certificate, issued by the pinned
    CA, is what the central presents when it connects). Re-pinned on every setup."""
    from secl.trustagent.server import client_key_sha256

    url = urlsplit(central_url)
    try:
        pem = ssl.get_server_certificate((url.hostname or "", url.port or 443), timeout=_TIMEOUT)
        cert = x509.load_pem_x509_certificate(pem.encode())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature) as exc:
        raise click.ClickException(
            f"the central at {central_url} does not present a certificate from its pinned CA: {exc}"
        ) from None
    _write(
        state.central_client,
        (client_key_sha256(cert.public_bytes(serialization.Encoding.DER)) + "\n").encode(),
    )
    click.echo(f"pinned the central's TLS key as the only client: {state.central_client}")


def _tls_certificate_current(state: StateFiles, ca: x509.Certificate, host: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(state.tls_cert.read_bytes())
        key = serialization.load_pem_private_key(state.tls_key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return (
        names == [host]
        and cert.public_key() == key.public_key()
        and cert.not_valid_after_utc - _RENEW_BEFORE > datetime.now(UTC)
    )


def obtain_tls_certificate(
    *, central_url: str, token: str | None, host: str, state: StateFiles, ca: x509.Certificate, force: bool
) -> None:
    """A key pair and a certificate for ``host`` from the central's CMS (idempotent without ``force``)."""
    if not force and _tls_certificate_current(state, ca, host):
        click.echo(f"TLS certificate for {host} already present: {state.tls_cert}")
        return
    if not token:
        raise click.ClickException(
            "--token (an enrollment token for this host) is needed for the TLS certificate"
        )
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .sign(key, hashes.SHA384())
    )
    response = requests.post(
        f"{central_url}/cms/v1/certificates",
        json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "kind": "tls"},
        headers={"Authorization": f"Bearer {token}"}, verify=state.central_ca, timeout=_TIMEOUT,
    )  # fmt: skip
    if response.status_code != 201:
        raise click.ClickException(f"the central refused the TLS certificate: {_central_error(response)}")
    cert = x509.load_pem_x509_certificate(response.json()["certificate"].encode())
    cert.verify_directly_issued_by(ca)
    if cert.public_key() != key.public_key():
        raise click.ClickException("the central returned a certificate for another key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(state.tls_key, key_pem, 0o600)
    _write(state.tls_cert, cert.public_bytes(serialization.Encoding.PEM))
    click.echo(f"TLS certificate for {host} issued: {state.tls_cert} (serial {cert.serial_number:x})")


def _aik(config: TrustAgentConfig, central_url: str, host: str, token: str | None, force: bool) -> bool:
    """Read the EK, create the AIK and enroll it; False (reported on stderr) if enrollment failed."""
    from secl.trustagent.provisioning import AIKProvisioningError, provision_aik

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
    from secl.trustagent.provisioning import AIKProvisioningError, register_host

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
        ca = pin_central_ca(central_url, fingerprint, state, force)
        pin_central_client(central_url, state, ca)
        obtain_tls_certificate(
            central_url=central_url, token=token, host=host, state=state, ca=ca, force=force
        )
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the central at {central_url}: {exc}") from None
    _write(state.central, json.dumps({"url": central_url, "ca_fingerprint_sha384": fingerprint}).encode())
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
