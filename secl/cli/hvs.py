"""The ``secl`` commands for attestation: ``hosts``, ``flavors``, ``flavorgroups`` and ``report``.

They talk to the central's ``/hvs/v2`` API with the session ``secl login`` saved, except ``flavors verify``
(:mod:`secl.cli.flavorverify`), which judges files offline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from secl.centralclient import CentralClient, CentralError, load_session, segment
from secl.cli.admin import _print_one, output_option
from secl.cli.flavorverify import flavors_verify
from secl.cli.output import InputError, InvalidEvidence, print_json, print_table, read_input


def _client() -> CentralClient:
    return CentralClient.from_session(load_session())


def _find_host(central: CentralClient, ident: str) -> dict[str, Any]:
    """A host by id, else by exact name."""
    try:
        return central.get(f"/hvs/v2/hosts/{segment(ident)}")
    except CentralError as exc:
        if not any(code in str(exc) for code in ("not-found]", "[validation-failed]")):
            raise
    hosts = central.get("/hvs/v2/hosts", nameEqualTo=ident)["hosts"]
    if len(hosts) != 1:
        raise CentralError(f"no host with the id or name {ident!r} [not-found]")
    return hosts[0]


# --- hosts -------------------------------------------------------------------------------------------------


@click.group("hosts")
def hosts_group() -> None:
    """Hosts the central attests (each runs secl-trustagent)."""


@hosts_group.command("add")
@click.argument("name")
@click.option("--connection", "connection_string", required=True,
              help="How the central reaches the host's trust agent: intel:https://HOST:1443")  # fmt: skip
@click.option("--description", default="", help="Free text for operators.")
@click.option("--group", "groups", multiple=True, help="Flavor group (repeatable; default: automatic).")
@output_option
def hosts_add(
    name: str, connection_string: str, description: str, groups: tuple[str, ...], output: str
) -> None:
    """Register a host."""
    body: dict[str, Any] = {
        "host_name": name,
        "connection_string": connection_string,
        "description": description,
    }
    if groups:
        body["flavorgroup_names"] = list(groups)
    with _client() as central:
        _print_one(central.post("/hvs/v2/hosts", body), output)


@hosts_group.command("list")
@click.option("--name", help="Only hosts whose name contains this.")
@click.option("--tag", "tags", multiple=True, metavar="NAME=VALUE",
              help="Only hosts whose newest unexpired report verified this asset tag (repeatable).")  # fmt: skip
@click.option("--trusted/--untrusted", default=None,
              help="Only hosts whose newest unexpired report is trusted (or: all others).")  # fmt: skip
@output_option
def hosts_list(name: str | None, tags: tuple[str, ...], trusted: bool | None, output: str) -> None:
    """List hosts with their status, trust and asset tags."""
    params: dict[str, Any] = {"nameContains": name, "tag": list(tags) or None}
    if trusted is not None:
        params["trusted"] = "true" if trusted else "false"
    with _client() as central:
        hosts = central.get("/hvs/v2/hosts", **params)["hosts"]
    if output == "json":
        print_json(hosts)
        return
    rows = [
        [h["id"], h["host_name"], h["status"], _trust_text(h.get("trusted")), h.get("hardware_uuid") or "-",
         ", ".join(f"{k}={v}" for k, v in (h.get("tags") or {}).items()) or "-", h["connection_string"]]
        for h in hosts
    ]  # fmt: skip
    print_table(["ID", "NAME", "STATUS", "TRUST", "HARDWARE UUID", "TAGS", "CONNECTION"], rows)


def _trust_text(trusted: bool | None) -> str:
    return "-" if trusted is None else ("trusted" if trusted else "UNTRUSTED")


@hosts_group.command("show")
@click.argument("host")
@output_option
def hosts_show(host: str, output: str) -> None:
    """Show a host, by id or name."""
    with _client() as central:
        _print_one(_find_host(central, host), output)


@hosts_group.command("delete")
@click.argument("host")
def hosts_delete(host: str) -> None:
    """Delete a host, by id or name."""
    with _client() as central:
        found = _find_host(central, host)
        central.delete(f"/hvs/v2/hosts/{segment(found['id'])}")
    click.echo(f"host {found['host_name']} deleted")


# --- flavors -----------------------------------------------------------------------------------------------


@click.group("flavors")
def flavors_group() -> None:
    """Flavors: the signed boot measurements a host must match.

    `verify` works offline on files; the other commands talk to the central.
    """


flavors_group.add_command(flavors_verify)


def _flavor_rows(signed: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for item in signed:
        meta = item["flavor"].get("meta", {})
        description = meta.get("description", {})
        rows.append([meta.get("id", "-"), description.get("flavor_part", "-"), description.get("label", "-")])
    return rows


@flavors_group.command("list")
@click.option("--part", "flavor_part", help="Only this flavor part (PLATFORM, OS, HOST_UNIQUE, ...).")
@output_option
def flavors_list(flavor_part: str | None, output: str) -> None:
    """List flavors (every signature is verified by the central before it answers)."""
    with _client() as central:
        signed = central.get("/hvs/v2/flavors", flavorPart=flavor_part)["signed_flavors"]
    if output == "json":
        print_json(signed)
    else:
        print_table(["ID", "PART", "LABEL"], _flavor_rows(signed))


@flavors_group.command("show")
@click.argument("flavor_id")
def flavors_show(flavor_id: str) -> None:
    """Print one signed flavor as JSON."""
    with _client() as central:
        print_json(central.get(f"/hvs/v2/flavors/{segment(flavor_id)}"))


@flavors_group.command("export")
@click.option("--part", "flavor_part", help="Only this flavor part.")
def flavors_export(flavor_part: str | None) -> None:
    """Print the signed flavors as SecL's {"signed_flavors": [...]} for import into another central."""
    with _client() as central:
        print_json(central.get("/hvs/v2/flavors", flavorPart=flavor_part))


@flavors_group.command("upload")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--group", "groups", multiple=True, help="Flavor group (repeatable; default: automatic).")
def flavors_upload(file: str, groups: tuple[str, ...]) -> None:
    """Store flavors from FILE: SecL's signed flavors ({"signed_flavors": [...]} or a bare array) or a
    {"flavor_collection": {...}}. The central signs each one; a SecL signature is kept alongside."""
    try:
        document = json.loads(read_input(file, "flavor file"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"flavor file {file}: not JSON: {exc}") from None
    if isinstance(document, list):  # SecL's export of signed flavors is a bare array
        document = {"signed_flavors": document}
    if not isinstance(document, dict) or not ({"signed_flavors", "flavor_collection"} & set(document)):
        raise InputError(f"flavor file {file}: expected signed_flavors or flavor_collection")
    body = {k: v for k, v in document.items() if k in ("signed_flavors", "flavor_collection")}
    if groups:
        body["flavorgroup_names"] = list(groups)
    with _client() as central:
        stored = central.post("/hvs/v2/flavors", body)
    print_json(stored)


@flavors_group.command("delete")
@click.argument("flavor_id")
def flavors_delete(flavor_id: str) -> None:
    """Delete a flavor."""
    with _client() as central:
        central.delete(f"/hvs/v2/flavors/{segment(flavor_id)}")
    click.echo(f"flavor {flavor_id} deleted")


# --- flavor groups -----------------------------------------------------------------------------------------


@click.group("flavorgroups")
def flavorgroups_group() -> None:
    """Flavor groups: which flavors a host is checked against, and how (ANY_OF, ALL_OF, LATEST)."""


@flavorgroups_group.command("list")
@output_option
def flavorgroups_list(output: str) -> None:
    """List flavor groups."""
    with _client() as central:
        groups = central.get("/hvs/v2/flavorgroups")["flavorgroups"]
    if output == "json":
        print_json(groups)
        return
    rows = []
    for group in groups:
        policies = group["flavor_match_policy_collection"]["flavor_match_policies"]
        shown = ", ".join(
            f"{p['flavor_part']}:{p['match_policy']['match_type']}/{p['match_policy']['required']}"
            for p in policies
        )
        rows.append([group["id"], group["name"], "yes" if group["is_default"] else "no", shown or "-"])
    print_table(["ID", "NAME", "DEFAULT", "MATCH POLICIES"], rows)


@flavorgroups_group.command("create")
@click.argument("name")
@click.option("--policy", "policies", multiple=True, required=True, metavar="PART:MATCH:REQUIRED",
              help="A match policy, e.g. PLATFORM:ANY_OF:REQUIRED or HOST_UNIQUE:LATEST:REQUIRED_IF_DEFINED "
                   "(repeatable, one per flavor part).")  # fmt: skip
@output_option
def flavorgroups_create(name: str, policies: tuple[str, ...], output: str) -> None:
    """Create a flavor group with its match policies."""
    parsed = []
    for policy in policies:
        parts = policy.split(":")
        if len(parts) != 3:
            raise InputError(
                f"--policy {policy!r}: expected PART:MATCH:REQUIRED, e.g. PLATFORM:ANY_OF:REQUIRED"
            )
        part, match, required = (p.strip().upper() for p in parts)
        parsed.append({"flavor_part": part, "match_policy": {"match_type": match, "required": required}})
    with _client() as central:
        _print_one(
            central.post("/hvs/v2/flavorgroups", {"name": name, "flavor_match_policies": parsed}), output
        )


@flavorgroups_group.command("show")
@click.argument("group")
def flavorgroups_show(group: str) -> None:
    """Show a flavor group, by id or name, as JSON."""
    with _client() as central:
        groups = central.get("/hvs/v2/flavorgroups")["flavorgroups"]
    found = [g for g in groups if group in (g["id"], g["name"])]
    if not found:
        raise CentralError(f"no flavor group with the id or name {group!r} [not-found]")
    print_json(found[0])


@flavorgroups_group.command("delete")
@click.argument("group_id")
def flavorgroups_delete(group_id: str) -> None:
    """Delete a flavor group (default groups cannot be deleted)."""
    with _client() as central:
        central.delete(f"/hvs/v2/flavorgroups/{segment(group_id)}")
    click.echo(f"flavor group {group_id} deleted")


# --- report ------------------------------------------------------------------------------------------------


@click.command("report")
@click.argument("host")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole report (trust report and JWT) as JSON."
)
def report_command(host: str, as_json: bool) -> None:
    """Attest HOST now and print its trust report: per flavor part trusted or not, then each fault.

    Exits 0 when the host is trusted and 1 when it is not.
    """
    with _client() as central:
        found = _find_host(central, host)
        report = central.post("/hvs/v2/reports", {"host_id": found["id"]})
    if as_json:
        print_json(report)
    else:
        print_report(found["host_name"], report)
    if not report.get("trusted"):
        raise InvalidEvidence(f"host {found['host_name']} is not trusted")


def print_report(host_name: str, report: dict[str, Any]) -> None:
    """A readable trust report: one line per flavor part, then each fault under it."""
    verdict = "TRUSTED" if report.get("trusted") else "UNTRUSTED"
    click.echo(f"host {host_name}: {verdict}  (report {report.get('id', '-')}, {report.get('created', '-')})")
    tags = report.get("tags") or {}
    if tags:
        click.echo("  tags: " + ", ".join(f"{name}={value}" for name, value in tags.items()))
    for part, outcome in (report.get("flavors_trust") or {}).items():
        click.echo(f"  {part:<12} {'trusted' if outcome.get('trust') else 'UNTRUSTED'}")
        for rule in outcome.get("rules", []):
            rule_name = rule.get("rule", {}).get("rule_name", "?").rsplit(".", 1)[-1]
            for fault in rule.get("faults") or []:
                click.echo(f"      - {rule_name}: {_describe_fault(fault)}")


def _describe_fault(fault: dict[str, Any]) -> str:
    name = fault.get("fault_name", "?").rsplit(".", 1)[-1]
    where = (
        f" (PCR {fault['pcr_index']} {fault.get('pcr_bank', '')})".rstrip() if "pcr_index" in fault else ""
    )
    text = f"{name}{where}: {fault.get('description', '')}"
    for key, label in (("missing_entries", "missing"), ("unexpected_entries", "unexpected")):
        for entry in fault.get(key) or []:
            tags = ", ".join(entry.get("tags") or [])
            text += f"\n          {label}: {entry.get('type_name', '?')} {tags}".rstrip()
    return text


# --- flavor import and endorsement CAs ---------------------------------------------------------------------


@flavors_group.command("import")
@click.argument("host")
@click.option("--part", "parts", multiple=True, type=click.Choice(["PLATFORM", "OS", "HOST_UNIQUE"]),
              help="Flavor part to create (repeatable; default: PLATFORM, OS and HOST_UNIQUE).")  # fmt: skip
@click.option("--group", "groups", multiple=True, help="Flavor group (repeatable; default: automatic).")
@output_option
def flavors_import(host: str, parts: tuple[str, ...], groups: tuple[str, ...], output: str) -> None:
    """Create flavors from a golden HOST (registered, by id or name): its verified evidence through the
    active flavor templates; each flavor is signed and stored."""
    with _client() as central:
        found = _find_host(central, host)
        body: dict[str, Any] = {"host_id": found["id"]}
        if parts:
            body["partial_flavor_types"] = list(parts)
        if groups:
            body["flavorgroup_names"] = list(groups)
        stored = central.post("/hvs/v2/flavors/from-host", body)
    signed = stored.get("signed_flavors", [])
    if output == "json":
        print_json(signed)
    else:
        print_table(["ID", "PART", "LABEL"], _flavor_rows(signed))


@click.group("endorsement-cas")
def endorsement_cas_group() -> None:
    """TPM vendor CAs the Privacy CA trusts for EK certificates."""


@endorsement_cas_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def endorsement_cas_add(files: tuple[str, ...]) -> None:
    """Trust the CA certificate(s) in FILES (PEM) for EK certificates."""
    with _client() as central:
        for file in files:
            pem = read_input(file, "CA certificate").decode("ascii", errors="replace")
            added = central.post("/hvs/v2/endorsement-cas", {"certificate": pem})
            click.echo(f"trusted {added.get('subject', file)}")


@endorsement_cas_group.command("list")
@output_option
def endorsement_cas_list(output: str) -> None:
    """List the trusted endorsement CAs."""
    with _client() as central:
        cas = central.get("/hvs/v2/endorsement-cas")
    if output == "json":
        print_json(cas)
    else:
        print_table(
            ["SOURCE", "SUBJECT", "NOT AFTER"], [[c["source"], c["subject"], c["not_after"]] for c in cas]
        )
