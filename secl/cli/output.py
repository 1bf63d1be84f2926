"""Small output helpers for the CLI: JSON printing, aligned tables, and the two user-facing error kinds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


class InputError(Exception):
    """An input file could not be read or is not in any format we accept."""


class InvalidEvidence(Exception):
    """The input was read but does not verify (exit status 1)."""


def read_input(path: str, what: str, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read a whole input file (``-`` for stdin), refusing absurdly large ones rather than exhausting memory."""
    if path == "-":
        data = click.get_binary_stream("stdin").read(limit + 1)
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{what} {path}: no such file")
        if p.stat().st_size > limit:
            raise InputError(f"{what} {path}: larger than {limit} bytes")
        data = p.read_bytes()
    if len(data) > limit:
        raise InputError(f"{what}: larger than {limit} bytes")
    return data


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows under headers with columns padded to their widest cell; the last column is not padded."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())
