"""``secl-central``: set up, migrate and run the central server.

Every command reads the same configuration as the service (``--config``, default /etc/secl/central.toml,
plus SECL_CENTRAL_* variables), so what an operator runs by hand acts on what systemd runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import click

from secl.central.config import CentralConfig, ConfigError, load_config


def _config(ctx: click.Context) -> CentralConfig:
    return ctx.obj["config"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file (default: /etc/secl/central.toml, or $SECL_CENTRAL_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Operate the secl central server: setup, database migrations, and a development server.

    In production systemd runs the central under gunicorn (secl-central.service); these commands prepare
    its state and help diagnose it.
    """
    try:
        ctx.obj = {"config": load_config(config_path)}
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--owner", default=None, help="Make the state directory and key files owned by this user.")
@click.pass_context
def setup(ctx: click.Context, owner: str | None) -> None:
    """Create the CA, TLS certificate, signing keys, database and first administrator (idempotent)."""
    from secl.central.setup import run_setup

    config = _config(ctx)
    try:
        result = run_setup(config, owner=owner)
    except (OSError, ValueError, LookupError) as exc:
        raise click.ClickException(f"setup failed: {exc}") from None
    for path in result.created:
        click.echo(f"created {path}")
    click.echo(f"state directory: {config.state_dir}")
    click.echo(f"root CA SHA-384 fingerprint: {result.root_ca_fingerprint_sha384}")
    click.echo("  (give it to hosts joining this central: secl-trustagent setup --ca-fingerprint ...)")
    if result.admin_credential is not None:
        click.echo(f"first administrator credential (user:password): {result.admin_credential}")
    else:
        click.echo("the administrator already exists; nothing changed for it")


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (safe to run on a current database)."""
    from secl.central.store.db import Database
    from secl.central.store.migrate import current_revision, upgrade

    database = Database(_config(ctx).sqlalchemy_url)
    try:
        before = current_revision(database.engine)
        upgrade(database.engine)
        after = current_revision(database.engine)
    except Exception as exc:  # connection and SQL errors of every driver
        raise click.ClickException(f"database upgrade failed: {exc}") from None
    finally:
        database.dispose()
    click.echo(
        f"database schema: {before or 'empty'} -> {after}"
        if before != after
        else f"database schema is current ({after})"
    )


@cli.command("create-admin")
@click.argument("username")
@click.option(
    "--password-file",
    type=click.File("r"),
    default=None,
    help="Read the password from this file (- for stdin) instead of prompting.",
)
@click.pass_context
def create_admin(ctx: click.Context, username: str, password_file: TextIO | None) -> None:
    """Create an administrator (all permissions), for example to recover a lost one."""
    from secl.central.aas import service
    from secl.central.store.db import Database

    password = (
        password_file.read().strip()
        if password_file
        else click.prompt("password", hide_input=True, confirmation_prompt=True)
    )
    if len(password) < 12:
        raise click.ClickException("the password must have at least 12 characters")
    database = Database(_config(ctx).sqlalchemy_url)
    try:
        with database.sessions() as session:
            _, created = service.ensure_admin(session, username, password)
    finally:
        database.dispose()
    click.echo(
        f"administrator {username} created" if created else f"user {username} already exists; unchanged"
    )


@cli.command("create-enrollment-token")
@click.option(
    "--host", required=True, help="The host name (or IP address) the token may get certificates for."
)
@click.option(
    "--ttl",
    default="1h",
    show_default=True,
    help="How long the token is valid: 3600, 45s, 30m, 1h or 2d (at most 30 days).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["tls", "tls-server", "tls-client", "aik"]),
    help="What the token allows (repeatable): a certificate kind, or aik (enroll the host's AIK "
    "with the Privacy CA). Default: tls and aik, what a joining host needs.",
)
@click.option(
    "--uses",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many certificates the token may obtain.",
)
@click.pass_context
def create_enrollment_token(
    ctx: click.Context, host: str, ttl: str, kinds: tuple[str, ...], uses: int
) -> None:
    """Mint an enrollment token for one host and print it, and only it, on stdout (notes go to stderr).

    The token is shown this once: the central stores only its SHA-256. The host presents it to
    POST /cms/v1/certificates to get certificates for its own name.
    """
    from secl.central.cms import enrollment
    from secl.central.store.db import Database
    from secl.central.store.migrate import current_revision, head_revision

    try:
        ttl_seconds = enrollment.parse_ttl(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    try:
        host = enrollment.normalize_host(host)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    database = Database(_config(ctx).sqlalchemy_url)
    try:
        if current_revision(database.engine) != head_revision():
            raise click.ClickException("the database schema is not current: run `secl-central db upgrade`")
        with database.sessions() as session:
            minted = enrollment.mint(
                session,
                host=host,
                kinds=list(kinds or enrollment.DEFAULT_KINDS),
                ttl_seconds=ttl_seconds,
                max_uses=uses,
                created_by="secl-central",
            )
    except click.ClickException:
        raise
    except Exception as exc:  # connection and SQL errors of every driver
        raise click.ClickException(f"cannot store the enrollment token: {exc}") from None
    finally:
        database.dispose()
    row = minted.row
    click.echo(
        f"enrollment token {row.id} for {row.host}: kinds {', '.join(row.kinds)}, {row.max_uses} use(s), "
        f"expires {row.expires_at.isoformat()}; it is shown only once",
        err=True,
    )
    click.echo(minted.value)


@cli.command("rotate-kek")
@click.option(
    "--settle-seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Wait this long after the new KEK becomes current before removing unused KEKs (keys a running "
    "central is creating under the old KEK commit meanwhile and keep it).",
)
@click.pass_context
def rotate_kek(ctx: click.Context, settle_seconds: float) -> None:
    """Re-seal every key of the sealed key store under a new key-encryption key and remove the old one.

    Crash-safe: the new KEK file is written first, every key is re-sealed in one transaction, then the new
    KEK becomes current and the KEK files no key uses are removed; run it again after an interruption.
    A running central picks up the new KEK by itself.
    """
    from secl.central.kbs.kekrotation import rotate_kek as rotate
    from secl.central.kbs.keystore import KeyStoreError
    from secl.central.store.db import Database

    config = _config(ctx)
    database = Database(config.sqlalchemy_url)
    try:
        with database.sessions() as session:
            rotation = rotate(session, config.keys_dir / "kek", settle_seconds=settle_seconds)
    except KeyStoreError as exc:
        raise click.ClickException(f"cannot rotate the KEK: {exc.message} ({exc.code})") from None
    finally:
        database.dispose()
    click.echo(
        f"KEK {rotation.old} -> {rotation.new}: {rotation.resealed} key(s) re-sealed; "
        f"removed {', '.join(rotation.removed) or 'no KEK file'}"
    )


@cli.command()
@click.option("--debug", is_flag=True, help="Flask debug mode (never in production).")
@click.pass_context
def run(ctx: click.Context, debug: bool) -> None:
    """Run the development server over TLS on the configured address (production: gunicorn)."""
    from secl.central import NotSetUp, create_app
    from secl.central.keyfiles import KeyFiles

    config = _config(ctx)
    try:
        app = create_app(config)
    except NotSetUp as exc:
        raise click.ClickException(str(exc)) from None
    host, _, port = config.listen.rpartition(":")
    files = KeyFiles(config.keys_dir)
    app.run(
        host=host or "0.0.0.0",
        port=int(port),
        debug=debug,
        ssl_context=(str(files.tls_cert), str(files.tls_key)),
    )


@cli.command()
@click.option("--once", is_flag=True, help="Run one iteration (refresh pass, one batch) and exit.")
@click.option(
    "--batch-size",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Jobs claimed at a time; their reports are judged and stored together, in one "
    "transaction (larger batches: fewer commits, better CPU cache use).",
)
@click.option(
    "--poll-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds to wait when the queue is empty.",
)
@click.option(
    "--refresh-margin",
    default=3600,
    show_default=True,
    type=click.IntRange(0, 30 * 86400),
    help="Queue hosts whose newest report expires within this many seconds.",
)
@click.option("--no-refresh", is_flag=True, help="Only process the queue; do not queue expiring reports.")
@click.option("--name", default=None, help="This worker's name in the job rows (default host:pid:random).")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Agents of a batch asked at once (each answer mostly waits on its host's TPM).",
)
@click.pass_context
def worker(  # noqa: PLR0917  (one parameter per click option)
    ctx: click.Context,
    once: bool,
    batch_size: int,
    poll_interval: float,
    refresh_margin: int,
    no_refresh: bool,
    name: str | None,
    concurrency: int,
) -> None:
    """Attest hosts from the report job queue and refresh reports before they expire.

    Any number of workers may run against one PostgreSQL database (jobs are claimed with SELECT ... FOR
    UPDATE SKIP LOCKED). SIGTERM or SIGINT: the jobs whose agents have answered are judged and stored, the
    rest of the batch goes back to the queue, then the worker exits 0.
    """
    import logging
    import signal
    from datetime import timedelta

    from secl.central.context import NotSetUp, open_services
    from secl.central.reports.worker import Worker

    config = _config(ctx)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("secl").setLevel(config.log_level.upper())
    try:
        services = open_services(config)  # the worker serves no HTTP: the services without Flask
    except NotSetUp as exc:
        raise click.ClickException(str(exc)) from None
    services.database.start_checkpointer()  # SQLite: commits do not wait on checkpoints
    runner = Worker(
        services,
        name=name,
        batch_size=batch_size,
        poll_interval=poll_interval,
        refresh=not no_refresh,
        refresh_margin=timedelta(seconds=refresh_margin),
        concurrency=concurrency,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    try:
        if once:
            outcomes = runner.run_once()
            click.echo(
                f"processed {len(outcomes)} job(s): "
                + (", ".join(f"{o.job_id} {o.status}" for o in outcomes) or "none")
            )
        else:
            runner.run()
    finally:
        services.database.dispose()


def main() -> None:
    cli(prog_name="secl-central")


if __name__ == "__main__":
    main()
