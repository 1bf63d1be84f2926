"""The ``secl`` admin command line: one click group per area, mirroring the central's API areas.

Errors in what the user gave us (a malformed log, a quote that does not verify, a missing file) end the
command with one line on stderr and a non-zero exit status, never a traceback:

* exit 1: the evidence was read but is invalid (a quote that does not verify, an untrusted certificate);
* exit 2: the command line was wrong (click's usage errors);
* exit 3: an input could not be read or parsed;
* exit 4: the central refused a request or could not be reached (login, users, roles).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from secl import __version__
from secl.centralclient import CentralError
from secl.cli.admin import COMMANDS as ADMIN_COMMANDS
from secl.cli.endorsements import endorsements_group
from secl.cli.evidence import ekcert_group, eventlog_group, ima_group, quote_group
from secl.cli.hvs import endorsement_cas_group, flavorgroups_group, flavors_group, hosts_group, report_command
from secl.cli.keys import COMMANDS as KEY_COMMANDS
from secl.cli.output import InputError, InvalidEvidence
from secl.cli.software import software_group
from secl.cli.tags import tags_group
from secl.core.errors import EvidenceError


class _FriendlyGroup(click.Group):
    """Turns the core's errors into one stderr line and an exit status, so no traceback reaches users."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidEvidence as exc:
            _fail(str(exc), 1)
        except (InputError, EvidenceError) as exc:
            _fail(str(exc), 3)
        except OSError as exc:
            _fail(f"{exc.filename or 'input'}: {exc.strerror or exc}", 3)
        except CentralError as exc:
            _fail(str(exc), 4)


def _fail(message: str, status: int) -> None:
    click.echo(f"secl: error: {message}", err=True)
    sys.exit(status)


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="secl")
def cli() -> None:
    """secl: TPM-rooted attestation for the datacenter.

    The evidence commands (eventlog, ima, quote, ekcert) work offline on files: they read what a TPM and
    its host produce and tell you what it says and whether it verifies.
    """


cli.add_command(eventlog_group)
cli.add_command(ima_group)
cli.add_command(quote_group)
cli.add_command(ekcert_group)
cli.add_command(endorsements_group)
for _hvs_command in (hosts_group, flavors_group, flavorgroups_group, endorsement_cas_group, report_command):
    cli.add_command(_hvs_command)
cli.add_command(tags_group)
cli.add_command(software_group)
for _key_command in KEY_COMMANDS:
    cli.add_command(_key_command)
for _command in ADMIN_COMMANDS:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="secl")


if __name__ == "__main__":
    main()
