"""``secl-wpm``: the image owner's command line (SecL's workload policy manager, for VM images).

Exit status: 0 done; 1 the image could not be encrypted or decrypted (a wrong key, an unsupported image,
a missing tool — one line on stderr, nothing left at the output path); 2 the command line is wrong;
130 interrupted (nothing left at the output path either).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click

from secl import __version__
from secl.wpm.broker import BrokerKey, delete_created_key
from secl.wpm.errors import ImageError
from secl.wpm.image_flavor import check_key_url, image_flavor
from secl.wpm.keysource import KeySource, acquire
from secl.wpm.luksheader import DEFAULT_ITER_TIME_MS
from secl.wpm.luksimage import DEFAULT_JOBS, EncryptedFormat, PlainFormat, decrypt_image, encrypt_image
from secl.wpm.outputfile import output_file
from secl.wpm.progress import terminal_progress

_FORMAT_NAMES = {EncryptedFormat.LUKS: "LUKS1 volume", EncryptedFormat.QCOW2: "qcow2 with LUKS encryption"}


class _OneLineErrors(click.Group):
    """An :class:`ImageError` or Ctrl-C ends the command with one stderr line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImageError as exc:
            click.echo(f"secl-wpm: error: {exc.message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("secl-wpm: interrupted; nothing was written", err=True)
            sys.exit(130)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="secl-wpm")
@click.option("-v", "--verbose", is_flag=True, help="Log each step and the tool commands run (never a key).")
def cli(verbose: bool) -> None:
    """secl-wpm: encrypt VM images so that only attested hosts can start them.

    An image is encrypted with an AES-256 key that the key broker holds and releases only to a host whose
    TPM has proven it trusted. QEMU on that host opens the encrypted image itself: nothing is decrypted
    onto the host's disk.

    The LUKS passphrase is the base64 of the 32-byte key (44 ASCII characters, no newline), so
    `cryptsetup open --test-passphrase --key-file F` accepts a file holding exactly that.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="secl-wpm: %(message)s", stream=sys.stderr
    )


def key_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--key-file / --key-fd: where the image key comes from (keysource.acquire_key decides)."""
    command = click.option(
        "--key-fd",
        type=click.IntRange(min=0),
        metavar="N",
        help="Read the key from inherited file descriptor N (e.g. `--key-fd 3 3<key`, or a pipe).",
    )(command)
    return click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Read the key from PATH: 32 raw bytes, or their base64.",
    )(command)


def broker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--central and its CA, --key-id: the key comes from a central's key broker, with the `secl login`
    session's token (log in there first)."""
    for option in (
        click.option("--key-id", metavar="ID", help="With --central: the broker's key to use."),
        click.option(
            "--ca-fingerprint",
            metavar="SHA384",
            help="With --central: pin the central's root CA by its SHA-384 [default: the session's CA].",
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False, exists=True),
            metavar="PEM",
            help="With --central: the central's CA certificates [default: the session's CA].",
        ),
        click.option(
            "--central",
            metavar="URL",
            help="Take the key from this central's key broker (https://central:8443; `secl login` first).",
        ),
    ):
        command = option(command)
    return command


def _broker(  # noqa: PLR0917 (the options of one command, passed through)
    central: str | None,
    ca_file: str | None,
    ca_fingerprint: str | None,
    key_id: str | None,
    policy_id: str | None = None,
    label: str = "",
) -> BrokerKey | None:
    if central is None:
        if any(v is not None for v in (ca_file, ca_fingerprint, key_id, policy_id)):
            raise click.UsageError("--ca-file, --ca-fingerprint, --key-id and --policy need --central")
        return None
    if ca_file is not None and ca_fingerprint is not None:
        raise click.UsageError("give at most one of --ca-file and --ca-fingerprint")
    if key_id is not None and policy_id is not None:
        raise click.UsageError("--policy is for a key this run creates; --key-id reuses one with its own")
    return BrokerKey(
        central=central,
        key_id=key_id,
        policy_id=policy_id,
        label=label,
        ca_file=Path(ca_file) if ca_file is not None else None,
        ca_fingerprint=ca_fingerprint,
    )


def _jobs_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"qemu-img processes writing {what} at once, each its own part of the disk (qemu-img "
        "runs its cipher on one thread). Default: the CPUs this process may use, at most 4.",
    )


def _key_source(key_file: Path | None, key_fd: int | None, broker: BrokerKey | None = None) -> KeySource:
    if sum(x is not None for x in (key_file, key_fd, broker)) != 1:
        raise click.UsageError("give the image key with exactly one of --key-file, --key-fd and --central")
    return KeySource(key_file=key_file, key_fd=key_fd, broker=broker)


@cli.command("encrypt-image")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@key_options
@broker_options
@click.option(
    "--policy",
    "policy_id",
    metavar="ID",
    help="With --central: the key-transfer policy of the key created [default: the broker's default].",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice([f.value for f in EncryptedFormat]),
    default=EncryptedFormat.LUKS.value,
    show_default=True,
    help="luks: a LUKS1 volume (QEMU's luks driver, cryptsetup and dm-crypt open it; as large as the "
    "disk). qcow2: a qcow2 with LUKS encryption (QEMU only; stays sparse).",
)
@click.option(
    "--in-format",
    type=click.Choice([f.value for f in PlainFormat]),
    help="The input's format, instead of probing it (say raw for a raw disk that might look like another format).",
)
@click.option(
    "--iter-time",
    type=click.IntRange(min=1),
    default=DEFAULT_ITER_TIME_MS,
    show_default=True,
    metavar="MS",
    help="PBKDF2 time of the key slot in milliseconds. The passphrase is a random 256-bit key, so a "
    "longer time adds no security; each VM start pays about twice this.",
)
@_jobs_option("a LUKS1 volume")
@click.option("--key-url", metavar="URL", help="The key's transfer URL in the key broker, for the flavor.")
@click.option("--label", help="The flavor's label [default: the output's file name].")
@click.option(
    "--flavor-out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the image flavor (SecL's JSON, unsigned) to FILE; '-' for stdout. Needs --key-url.",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT (and the flavor file) if they exist.")
def encrypt_image_command(  # noqa: PLR0917 (click passes every option by name)
    image: Path,
    output: Path,
    key_file: Path | None,
    key_fd: int | None,
    central: str | None,
    ca_file: str | None,
    ca_fingerprint: str | None,
    key_id: str | None,
    policy_id: str | None,
    out_format: str,
    in_format: str | None,
    iter_time: int,
    jobs: int,
    key_url: str | None,
    label: str | None,
    flavor_out: Path | None,
    force: bool,
) -> None:
    """Encrypt the VM image IMAGE (raw or qcow2) into OUTPUT.

    The image is read and written in one streaming pass by qemu-img (constant memory); OUTPUT appears
    only when complete, with mode 0600. The key reaches qemu-img and cryptsetup through an in-memory file
    descriptor, never a command line, the environment or a file. Prints the SHA-256 of OUTPUT (base64,
    as the image flavor carries it).

    With --central the key comes from that central's key broker: a new AES-256 key (under --policy), or
    --key-id's. It arrives wrapped to an RSA key made in memory for this run and is unwrapped in memory
    only. The image flavor, whose key_url is the key's transfer URL, goes to --flavor-out (default:
    OUTPUT.flavor.json).
    """
    broker = _broker(central, ca_file, ca_fingerprint, key_id, policy_id, label or output.name)
    if broker is not None:
        if key_url is not None:
            raise click.UsageError("with --central the key's URL is the broker's: drop --key-url")
        if flavor_out is None:
            flavor_out = output.with_name(output.name + ".flavor.json")
    elif flavor_out is not None and key_url is None:
        raise click.UsageError("an image flavor names the key's URL: add --key-url")
    if broker is None and flavor_out is None and key_url is not None:
        raise click.UsageError("--key-url only goes into the image flavor: add --flavor-out")
    if key_url is not None:
        check_key_url(key_url)
    if flavor_out is not None and flavor_out != Path("-") and flavor_out.exists() and not force:
        # Found out now rather than after the image is encrypted.
        raise ImageError("output-exists", f"{flavor_out}: already exists (use --force to replace it)")
    acquired = acquire(_key_source(key_file, key_fd, broker))
    key_url = acquired.key_url or key_url
    fmt = EncryptedFormat(out_format)
    try:
        result = encrypt_image(
            image,
            output,
            acquired.key,
            format=fmt,
            source_format=PlainFormat(in_format) if in_format else None,
            iter_time_ms=iter_time,
            jobs=jobs,
            overwrite=force,
            progress=terminal_progress(sys.stderr),
        )
    except BaseException:
        if broker is not None and acquired.created and acquired.key_id is not None:
            delete_created_key(broker, acquired.key_id)  # no image uses it: it would only be clutter
        raise
    if acquired.key_id is not None:
        how = "created" if acquired.created else "reused"
        click.echo(f"key {acquired.key_id} in the key broker ({how}); transfer URL {key_url}", err=True)
    if flavor_out is not None and key_url is not None:
        flavor = image_flavor(label=label or output.name, key_url=key_url, digest=result.digest)
        _write_flavor(flavor, flavor_out, overwrite=force)
    summary = f"{output}: {_FORMAT_NAMES[fmt]}, {result.virtual_size} bytes of disk, sha256 {result.digest}"
    click.echo(summary, err=flavor_out == Path("-"))


@cli.command("decrypt-image")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@key_options
@broker_options
@click.option(
    "--format",
    "out_format",
    type=click.Choice([f.value for f in PlainFormat]),
    help="The plain output's format [default: raw for a LUKS1 volume, qcow2 for an encrypted qcow2].",
)
@_jobs_option("a raw output")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def decrypt_image_command(  # noqa: PLR0917 (click passes every option by name)
    image: Path,
    output: Path,
    key_file: Path | None,
    key_fd: int | None,
    central: str | None,
    ca_file: str | None,
    ca_fingerprint: str | None,
    key_id: str | None,
    out_format: str | None,
    jobs: int,
    force: bool,
) -> None:
    """Decrypt IMAGE (a LUKS1 volume or a LUKS-encrypted qcow2) into a plain image OUTPUT, for its owner.

    OUTPUT is plaintext: it is created with mode 0600 and appears only when complete. A wrong key fails
    before anything is written. With --central and --key-id the key comes from the key broker (the
    owner's envelope transfer, unwrapped in memory).
    """
    broker = _broker(central, ca_file, ca_fingerprint, key_id)
    if broker is not None and key_id is None:
        raise click.UsageError("decrypting with --central needs the image's --key-id")
    key = acquire(_key_source(key_file, key_fd, broker)).key
    result = decrypt_image(
        image,
        output,
        key,
        format=PlainFormat(out_format) if out_format else None,
        jobs=jobs,
        overwrite=force,
        progress=terminal_progress(sys.stderr),
    )
    click.echo(f"{output}: {result.format.value}, {result.virtual_size} bytes of disk")


def _write_flavor(flavor: dict[str, Any], path: Path, *, overwrite: bool) -> None:
    text = json.dumps(flavor, indent=2) + "\n"
    if path == Path("-"):
        click.echo(text, nl=False)
        return
    with output_file(path, overwrite=overwrite) as partial:
        partial.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    # SIGTERM (kill, a stopping service manager) takes Ctrl-C's path: qemu-img is stopped and the partial
    # output removed, instead of Python dying on the spot and leaving both behind.
    signal.signal(signal.SIGTERM, _interrupt)
    cli.main(args=list(argv) if argv is not None else None, prog_name="secl-wpm")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
