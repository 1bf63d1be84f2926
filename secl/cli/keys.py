"""The key broker in the admin CLI: ``secl keys``, ``secl key-policies`` and ``secl key-broker``.

They talk to the central's ``/kbs/v1`` API with the session ``secl login`` saved. Key material goes to the
broker only from a file (``keys register --key-file``), never from the command line, and no command ever
prints it: the broker answers key metadata, never the key.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secl.centralclient import CentralClient, load_session, segment
from secl.cli.admin import _print_one, output_option
from secl.cli.output import InputError, print_json, print_table, read_input

KEYS = "/kbs/v1/keys"
POLICIES = "/kbs/v1/key-transfer-policies"
ALGORITHMS = ("AES", "RSA", "EC")
FLAVOR_PARTS = ("PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE", "ASSET_TAG")
#: A key file is at most a PEM private key of a large RSA key; anything bigger is a wrong path.
_KEY_FILE_LIMIT = 16 * 1024


def _client() -> CentralClient:
    return CentralClient.from_session(load_session())


def _key_row(key: dict[str, Any]) -> list[Any]:
    info = key["key_information"]
    size = info.get("key_length") or info.get("curve_type") or "-"
    return [info["id"], info["algorithm"], size, key["transfer_policy_id"], key.get("label") or "-",
            key.get("usage") or "-"]  # fmt: skip


def _key_flat(key: dict[str, Any]) -> dict[str, Any]:
    """A key answer as one level of fields, for the FIELD/VALUE table."""
    info = key["key_information"]
    flat = {k: v for k, v in info.items() if v is not None}
    flat.update({k: v for k, v in key.items() if k != "key_information"})
    return flat


# --- keys --------------------------------------------------------------------------------------------------


@click.group("keys")
def keys_group() -> None:
    """Keys in the key broker, released only to attested hosts (and to their owner, wrapped)."""


def _key_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option(
                "--policy",
                "policy_id",
                metavar="ID",
                help="The key-transfer policy's id [default: the broker's default policy].",
            ),
            click.option("--label", default="", help="A label to find the key by."),
            click.option("--usage", default="", help="Free text, as SecL's `usage` field."),
        )
    ):
        fn = option(fn)
    return fn


def _send_key(
    information: dict[str, Any], policy_id: str | None, label: str, usage: str, output: str
) -> None:
    body: dict[str, Any] = {"key_information": information, "label": label, "usage": usage}
    if policy_id is not None:
        body["transfer_policy_id"] = policy_id
    with _client() as central:
        created = central.post(KEYS, body)
    if output == "json":
        print_json(created)
    else:
        info = created["key_information"]
        click.echo(f"key {info['id']} ({info['algorithm']}) created; transfer URL {created['transfer_link']}")


@keys_group.command("create")
@click.option("--algorithm", type=click.Choice(ALGORITHMS, case_sensitive=False), default="AES",
              show_default=True, help="The key's algorithm.")  # fmt: skip
@click.option(
    "--length", "key_length", type=int, help="Key length in bits (AES: 128, 192, 256; RSA: 2048...)."
)
@click.option("--curve", "curve_type", help="EC curve (e.g. prime256v1, secp384r1).")
@_key_options
@output_option
def keys_create(  # noqa: PLR0917 (click passes every option by name)
    algorithm: str,
    key_length: int | None,
    curve_type: str | None,
    policy_id: str | None,
    label: str,
    usage: str,
    output: str,
) -> None:
    """Create a key in the broker's key store; the material never leaves the broker unwrapped."""
    information: dict[str, Any] = {"algorithm": algorithm.upper()}
    if key_length is None and algorithm.upper() == "AES":
        key_length = 256  # what images and SecL's WPM use; the broker wants the length spelled out
    if key_length is not None:
        information["key_length"] = key_length
    if curve_type is not None:
        information["curve_type"] = curve_type
    _send_key(information, policy_id, label, usage, output)


def read_key_string(path: str, algorithm: str) -> str:
    """A key file as SecL's ``key_string``: AES as base64 of the raw key (the file holds the raw bytes or
    their base64), RSA and EC as the PEM private key itself."""
    data = read_input(path, "key file", limit=_KEY_FILE_LIMIT)
    if algorithm != "AES":
        if b"-----BEGIN" not in data:
            raise InputError(f"key file {path}: an {algorithm} key must be a PEM private key")
        return data.decode("ascii", "replace")
    if len(data) in (16, 24, 32):
        return base64.b64encode(data).decode()
    try:
        raw = binascii.a2b_base64(data.strip(), strict_mode=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) not in (16, 24, 32):
        raise InputError(f"key file {path}: not an AES key (16, 24 or 32 raw bytes, or their base64)")
    return base64.b64encode(raw).decode()


def _key_size(key_string: str, algorithm: str, path: str) -> dict[str, Any]:
    """The size or curve the broker checks the material against, read from the material itself, so the
    user does not have to repeat it."""
    if algorithm == "AES":
        return {"key_length": len(base64.b64decode(key_string)) * 8}
    try:
        key = serialization.load_pem_private_key(key_string.encode(), password=None)
    except (ValueError, TypeError):
        raise InputError(f"key file {path}: not an unencrypted PEM private key") from None
    if algorithm == "RSA" and isinstance(key, rsa.RSAPrivateKey):
        return {"key_length": key.key_size}
    if algorithm == "EC" and isinstance(key, ec.EllipticCurvePrivateKey):
        return {"curve_type": key.curve.name}
    raise InputError(f"key file {path}: not an {algorithm} private key")


@keys_group.command("register")
@click.option("--algorithm", type=click.Choice(ALGORITHMS, case_sensitive=False), required=True,
              help="The key's algorithm.")  # fmt: skip
@click.option("--key-file", required=True, metavar="FILE",
              help="The key: AES raw or base64, RSA/EC a PEM private key ('-' for stdin).")  # fmt: skip
@_key_options
@output_option
def keys_register(  # noqa: PLR0917 (click passes every option by name)
    algorithm: str, key_file: str, policy_id: str | None, label: str, usage: str, output: str
) -> None:
    """Register an existing key (read from a file, never from the command line)."""
    algorithm = algorithm.upper()
    information: dict[str, Any] = {"algorithm": algorithm, "key_string": read_key_string(key_file, algorithm)}
    information.update(_key_size(information["key_string"], algorithm, key_file))
    _send_key(information, policy_id, label, usage, output)


@keys_group.command("list")
@click.option("--label", help="Only keys with this label.")
@click.option(
    "--algorithm", type=click.Choice(ALGORITHMS, case_sensitive=False), help="Only keys of this algorithm."
)
@output_option
def keys_list(label: str | None, algorithm: str | None, output: str) -> None:
    """List keys (never their material)."""
    with _client() as central:
        found = central.get(KEYS, label=label, algorithm=algorithm.upper() if algorithm else None)
    if output == "json":
        print_json(found)
        return
    print_table(["ID", "ALGORITHM", "SIZE", "POLICY", "LABEL", "USAGE"], [_key_row(k) for k in found])


@keys_group.command("show")
@click.argument("key_id")
@output_option
def keys_show(key_id: str, output: str) -> None:
    """Show one key's metadata and transfer URL."""
    with _client() as central:
        found = central.get(f"{KEYS}/{segment(key_id)}")
    _print_one(found if output == "json" else _key_flat(found), output)


@keys_group.command("delete")
@click.argument("key_id")
def keys_delete(key_id: str) -> None:
    """Delete a key and destroy its material in the key store."""
    with _client() as central:
        central.delete(f"{KEYS}/{segment(key_id)}")
    click.echo(f"key {key_id} deleted")


# --- key-transfer policies ---------------------------------------------------------------------------------


def parse_tag(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise InputError(f"--tag {text!r}: expected name=value, e.g. country=DE")
    return name, value


def _policy_row(policy: dict[str, Any]) -> list[Any]:
    if policy["require_trusted"]:
        trust = "trusted"
    else:
        trust = "parts: " + (", ".join(policy["required_flavor_parts"]) or "none")
    age = policy["max_report_age_seconds"]
    hosts = policy["hardware_uuids"]
    return [policy["id"], policy["name"], trust, policy["usage"] or "-", f"{age}s" if age else "-",
            "any" if hosts is None else len(hosts)]  # fmt: skip


@click.group("key-policies")
def key_policies_group() -> None:
    """Key-transfer policies: which attested hosts a key may be released to."""


@key_policies_group.command("create")
@click.argument("name")
@click.option("--untrusted-parts-ok", is_flag=True,
              help="Do not require the host trusted overall; only the --require-part flavor parts.")  # fmt: skip
@click.option("--require-part", "parts", multiple=True, type=click.Choice(FLAVOR_PARTS),
              help="A flavor part that must be trusted (repeatable; with --untrusted-parts-ok).")  # fmt: skip
@click.option("--tag", "tags", multiple=True, metavar="NAME=VALUE",
              help="An asset tag the host must have (repeatable; several values of one name: any of them).")  # fmt: skip
@click.option(
    "--usage", default="", metavar="NAME:VALUE,...", help="Tags in SecL's form: 'country:US,state:CA'."
)
@click.option("--max-age", type=click.IntRange(1, 30 * 86400), metavar="SECONDS",
              help="The newest report's maximum age [default: the broker's, 300].")  # fmt: skip
@click.option("--no-max-age", is_flag=True, help="Accept a report of any age while its JWT is valid.")
@click.option("--host", "hosts", multiple=True, metavar="UUID", help="Only this hardware UUID (repeatable).")
@output_option
def key_policies_create(  # noqa: PLR0917 (click passes every option by name)
    name: str,
    untrusted_parts_ok: bool,
    parts: tuple[str, ...],
    tags: tuple[str, ...],
    usage: str,
    max_age: int | None,
    no_max_age: bool,
    hosts: tuple[str, ...],
    output: str,
) -> None:
    """Create a key-transfer policy NAME."""
    if parts and not untrusted_parts_ok:
        raise click.UsageError(
            "--require-part only narrows --untrusted-parts-ok (a trusted host has all parts)"
        )
    if max_age is not None and no_max_age:
        raise click.UsageError("give at most one of --max-age and --no-max-age")
    required: dict[str, list[str]] = {}
    for text in tags:
        tag_name, value = parse_tag(text)
        required.setdefault(tag_name, []).append(value)
    body: dict[str, Any] = {
        "name": name,
        "require_trusted": not untrusted_parts_ok,
        "required_flavor_parts": list(parts),
        "required_tags": required,
        "usage": usage,
    }
    if max_age is not None or no_max_age:
        body["max_report_age_seconds"] = max_age
    if hosts:
        body["hardware_uuids"] = list(hosts)
    with _client() as central:
        created = central.post(POLICIES, body)
    if output == "json":
        print_json(created)
    else:
        click.echo(f"key-transfer policy {created['id']} ({created['name']}) created")


@key_policies_group.command("list")
@click.option("--name", help="Only the policy with this name.")
@output_option
def key_policies_list(name: str | None, output: str) -> None:
    """List key-transfer policies."""
    with _client() as central:
        found = central.get(POLICIES, name=name)
    if output == "json":
        print_json(found)
        return
    print_table(["ID", "NAME", "REQUIRES", "TAGS", "MAX AGE", "HOSTS"], [_policy_row(p) for p in found])


@key_policies_group.command("show")
@click.argument("policy_id")
@output_option
def key_policies_show(policy_id: str, output: str) -> None:
    """Show one key-transfer policy."""
    with _client() as central:
        found = central.get(f"{POLICIES}/{segment(policy_id)}")
    if output != "json":
        found = dict(found)
        found["required_tags"] = ", ".join(f"{k}={'|'.join(v)}" for k, v in found["required_tags"].items())
        if found["hardware_uuids"] is None:
            found["hardware_uuids"] = "any"
    _print_one(found, output)


@key_policies_group.command("delete")
@click.argument("policy_id")
def key_policies_delete(policy_id: str) -> None:
    """Delete a key-transfer policy that no key uses."""
    with _client() as central:
        central.delete(f"{POLICIES}/{segment(policy_id)}")
    click.echo(f"key-transfer policy {policy_id} deleted")


# --- trust stores ------------------------------------------------------------------------------------------

_STORES = {
    "trust-report-signer": ("/kbs/v1/saml-certificates", "report signer"),
    "trust-privacy-ca": ("/kbs/v1/tpm-identity-certificates", "Privacy CA"),
}


@click.group("key-broker")
def key_broker_group() -> None:
    """The key broker's trust stores: other centrals' report signers and Privacy CAs (a central trusts
    its own by default)."""


def _trust_command(name: str, path: str, what: str) -> None:
    @key_broker_group.command(
        name, help=f"Trust another central's {what} certificate (PEM file, '-' for stdin)."
    )
    @click.argument("pem_file", metavar="PEM")
    @output_option
    def add(pem_file: str, output: str) -> None:
        data = read_input(pem_file, f"{what} certificate", limit=64 * 1024)
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise InputError(f"{pem_file}: not a PEM certificate")
        with _client() as central:
            added = central.post(path, {"certificate": data.decode("ascii", "replace")})
        if output == "json":
            print_json(added)
        else:
            click.echo(f"{what} {added['subject']} trusted (id {added['id']}, sha256 {added['sha256']})")


def _list_command(name: str, path: str, what: str) -> None:
    @key_broker_group.command(name, help=f"List the {what} certificates trusted besides this central's own.")
    @output_option
    def listing(output: str) -> None:
        with _client() as central:
            found = central.get(path)
        if output == "json":
            print_json(found)
            return
        rows = [[c["id"], c["subject"], c["not_after"], c["sha256"]] for c in found]
        print_table(["ID", "SUBJECT", "NOT AFTER", "SHA256"], rows)


def _remove_command(name: str, path: str, what: str) -> None:
    @key_broker_group.command(name, help=f"Stop trusting a {what} certificate (by the id `list` shows).")
    @click.argument("certificate_id")
    def remove(certificate_id: str) -> None:
        with _client() as central:
            central.delete(f"{path}/{segment(certificate_id)}")
        click.echo(f"{what} {certificate_id} no longer trusted")


for _command, (_path, _what) in _STORES.items():
    _trust_command(_command, _path, _what)
    _suffix = _command.removeprefix("trust-")
    _list_command(f"list-{_suffix}s", _path, _what)
    _remove_command(f"remove-{_suffix}", _path, _what)

COMMANDS = (keys_group, key_policies_group, key_broker_group)
