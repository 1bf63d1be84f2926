"""The ``secl`` commands that talk to the central: ``login``, ``logout``, ``users`` and ``roles``.

Passwords are never accepted as option values (they would end up in shell history and in ``ps``): they are
read from a file (``--password-file``, ``-`` for stdin) or prompted for without echo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from secl.centralclient import (
    CentralClient,
    CentralError,
    Session,
    fetch_ca_certificates,
    load_session,
    normalize_url,
    pinned_root_ca,
    remove_session,
    save_session,
    segment,
)
from secl.cli.output import InputError, print_json, print_table

OUTPUT_FORMATS = click.Choice(["table", "json"])


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--output",
        "-o",
        "output",
        type=OUTPUT_FORMATS,
        default="table",
        show_default=True,
        help="Print a table for people or JSON for scripts.",
    )(fn)


def read_password(path: str | None, prompt: str, *, confirm: bool = False) -> str:
    """The first line of a file (``-``: stdin), or a hidden prompt."""
    if path is None:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if path == "-":
        text = click.get_text_stream("stdin").readline()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.readline()
        except OSError as exc:
            raise InputError(f"password file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"password file {path}: not UTF-8 text") from None
    password = text.rstrip("\r\n")
    if not password:
        raise InputError(f"password file {path}: the first line is empty")
    return password


# --- login / logout --------------------------------------------------------------------------------------


@click.command("login")
@click.option("--url", required=True, help="The central, e.g. https://central:8443.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Verify the central's TLS certificate against this CA bundle (the central's root-ca.pem).",
)
@click.option(
    "--ca-fingerprint",
    metavar="SHA384",
    help="Fetch the central's root CA and trust it if its SHA-384 fingerprint is this one "
    "(as `secl-central setup` printed it).",
)
@click.option("--username", "-u", prompt=True, help="Prompted for if not given.")
@click.option(
    "--password-file", metavar="FILE", help="Read the password from the first line of FILE (- for stdin)."
)
def login_command(
    url: str, ca_file: str | None, ca_fingerprint: str | None, username: str, password_file: str | None
) -> None:
    """Log in to the central and keep the token for the other commands.

    The session (URL, CA, token, expiry; never the password) is saved in
    $XDG_CONFIG_HOME/secl/session.json (default ~/.config/secl), readable only by you.
    """
    if ca_file and ca_fingerprint:
        raise click.UsageError("give --ca-file or --ca-fingerprint, not both")
    url = normalize_url(url)
    ca_pem = pinned_root_ca(fetch_ca_certificates(url), ca_fingerprint) if ca_fingerprint else None
    ca_path = str(Path(ca_file).resolve()) if ca_file else None
    password = read_password(password_file, "Password")
    with CentralClient(url, ca_file=ca_path, ca_pem=ca_pem) as central:
        answer = central.post("/aas/v1/token", {"username": username, "password": password})
    if not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
        raise CentralError(f"{url}/aas/v1/token did not answer with a token")
    session = Session(
        url=url,
        token=answer["token"],
        expires_at=str(answer.get("expires_at", "")),
        username=username,
        ca_file=ca_path,
        ca_pem=ca_pem,
    )
    path = save_session(session)
    click.echo(f"logged in to {url} as {username} until {session.expires_at} (session: {path})")


@click.command("logout")
def logout_command() -> None:
    """Forget the saved session (the token stays valid at the central until it expires)."""
    click.echo("logged out" if remove_session() else "not logged in")


# --- users -------------------------------------------------------------------------------------------------


def _client() -> CentralClient:
    return CentralClient.from_session(load_session())


def _resolve(central: CentralClient, collection: str, key: str, ident: str) -> dict[str, Any]:
    """The object with this id, or else the one with this name (users and roles are addressed by either)."""
    try:
        return central.get(f"/aas/v1/{collection}/{segment(ident)}")
    except CentralError as exc:
        if "[not-found]" not in str(exc):
            raise
        found = central.get(f"/aas/v1/{collection}", name=ident)
        matches = [item for item in found if item.get(key) == ident]
        if len(matches) != 1:
            raise
        return matches[0]


def _user_rows(users: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [u["id"], u["username"], ",".join(u["roles"]) or "-", u["created_at"], u.get("locked_until") or "-"]
        for u in users
    ]


def _print_users(users: Sequence[dict[str, Any]], output: str) -> None:
    if output == "json":
        print_json(list(users))
    else:
        print_table(["ID", "USERNAME", "ROLES", "CREATED", "LOCKED UNTIL"], _user_rows(users))


def _print_one(obj: dict[str, Any], output: str) -> None:
    if output == "json":
        print_json(obj)
        return
    rows = []
    for key, value in obj.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        rows.append([f"{key}:", "-" if shown is None or shown == "" else shown])
    print_table(["FIELD", "VALUE"], rows)


@click.group("users")
def users_group() -> None:
    """Users of the central (needs `secl login` as a user allowed to manage them)."""


@users_group.command("list")
@click.option("--name", help="Only the user with this name.")
@output_option
def users_list(name: str | None, output: str) -> None:
    """List users."""
    with _client() as central:
        _print_users(central.get("/aas/v1/users", name=name), output)


@users_group.command("show")
@click.argument("user")
@output_option
def users_show(user: str, output: str) -> None:
    """Show a user, by id or name."""
    with _client() as central:
        _print_one(_resolve(central, "users", "username", user), output)


@users_group.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="A role to give the user (repeatable).")
@click.option(
    "--password-file", metavar="FILE", help="Read the password from the first line of FILE (- for stdin)."
)
@output_option
def users_create(username: str, roles: tuple[str, ...], password_file: str | None, output: str) -> None:
    """Create a user (the password is prompted for unless --password-file is given)."""
    password = read_password(password_file, f"Password for {username}", confirm=True)
    with _client() as central:
        user = central.post(
            "/aas/v1/users", {"username": username, "password": password, "roles": list(roles)}
        )
    _print_one(user, output)


@users_group.command("delete")
@click.argument("user")
def users_delete(user: str) -> None:
    """Delete a user, by id or name."""
    with _client() as central:
        found = _resolve(central, "users", "username", user)
        central.delete(f"/aas/v1/users/{segment(found['id'])}")
    click.echo(f"deleted user {found['username']} ({found['id']})")


@users_group.command("set-roles")
@click.argument("user")
@click.argument("roles", nargs=-1, required=True)
@output_option
def users_set_roles(user: str, roles: tuple[str, ...], output: str) -> None:
    """Replace the roles of a user (by id or name)."""
    with _client() as central:
        found = _resolve(central, "users", "username", user)
        updated = central.put(f"/aas/v1/users/{segment(found['id'])}/roles", {"roles": list(roles)})
    _print_one(updated, output)


@users_group.command("passwd")
@click.argument("user", required=False)
@click.option("--old-password-file", metavar="FILE", help="Your current password, from a file (- for stdin).")
@click.option("--new-password-file", metavar="FILE", help="The new password, from a file (- for stdin).")
def users_passwd(user: str | None, old_password_file: str | None, new_password_file: str | None) -> None:
    """Change your own password, or with USER (id or name) set another user's password (administrators)."""
    with _client() as central:
        if user is None:
            old = read_password(old_password_file, "Current password")
            new = read_password(new_password_file, "New password", confirm=True)
            central.post("/aas/v1/password", {"old_password": old, "new_password": new})
            click.echo("password changed")
            return
        found = _resolve(central, "users", "username", user)
        new = read_password(new_password_file, f"New password for {found['username']}", confirm=True)
        central.put(f"/aas/v1/users/{segment(found['id'])}/password", {"new_password": new})
        click.echo(f"password of {found['username']} set")


# --- roles -------------------------------------------------------------------------------------------------


def _print_roles(roles: Sequence[dict[str, Any]], output: str) -> None:
    if output == "json":
        print_json(list(roles))
        return
    rows = [[r["id"], r["name"], ",".join(r["permissions"]), r.get("description") or "-"] for r in roles]
    print_table(["ID", "NAME", "PERMISSIONS", "DESCRIPTION"], rows)


@click.group("roles")
def roles_group() -> None:
    """Roles: named sets of service:resource:action permissions."""


@roles_group.command("list")
@click.option("--name", help="Only the role with this name.")
@output_option
def roles_list(name: str | None, output: str) -> None:
    """List roles."""
    with _client() as central:
        _print_roles(central.get("/aas/v1/roles", name=name), output)


@roles_group.command("show")
@click.argument("role")
@output_option
def roles_show(role: str, output: str) -> None:
    """Show a role, by id or name."""
    with _client() as central:
        _print_one(_resolve(central, "roles", "name", role), output)


@roles_group.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "-p",
    "permissions",
    multiple=True,
    required=True,
    metavar="SERVICE:RESOURCE:ACTION",
    help="A permission (repeatable); * is a wildcard per part, e.g. HVS:hosts:*.",
)
@click.option("--description", default="", help="What the role is for.")
@output_option
def roles_create(name: str, permissions: tuple[str, ...], description: str, output: str) -> None:
    """Create a role."""
    with _client() as central:
        role = central.post(
            "/aas/v1/roles", {"name": name, "description": description, "permissions": list(permissions)}
        )
    _print_one(role, output)


@roles_group.command("delete")
@click.argument("role")
def roles_delete(role: str) -> None:
    """Delete a role, by id or name."""
    with _client() as central:
        found = _resolve(central, "roles", "name", role)
        central.delete(f"/aas/v1/roles/{segment(found['id'])}")
    click.echo(f"deleted role {found['name']} ({found['id']})")


COMMANDS = [login_command, logout_command, users_group, roles_group]
