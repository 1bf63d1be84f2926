"""The service context: everything the central's services share, built once per process, typed.

:func:`open_services` builds a :class:`CentralServices` from the configuration: the database, the key
files and the keys read from them (:class:`~secl.central.keys.KeyMaterial`, each on first use), the token
service and the memos. ``create_app`` builds one and hands it to the application; ``secl-central worker``,
the CLI and the benchmarks build the same without Flask. Services receive it (or the part they need) as an
argument; views reach it through :func:`secl.central.endpoints.services`, which reads it from the
application with :func:`services_of`, the one place that knows where the application keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from secl.central.aas.tokens import TokenService
from secl.central.config import CentralConfig
from secl.central.kbs.keystores import KeyStores
from secl.central.keyfiles import KeyFiles
from secl.central.keys import KeyMaterial
from secl.central.memos import Memos
from secl.central.store.db import Database
from secl.central.store.migrate import current_revision, head_revision

if TYPE_CHECKING:
    from flask import Flask

_EXTENSION = "secl.services"


class NotSetUp(Exception):
    """The central cannot start: its database or keys are missing; the message says which command fixes it."""


@dataclass(frozen=True)
class CentralServices:
    """What the services share: ``keys`` reads each CA and signer on first use, ``memos`` are the
    process's memos (see :mod:`secl.central.memos`); the rest is ready when built."""

    config: CentralConfig
    files: KeyFiles
    keys: KeyMaterial
    database: Database
    tokens: TokenService
    memos: Memos
    key_stores: KeyStores


def open_services(config: CentralConfig, *, check_schema: bool = True) -> CentralServices:
    """The service context for ``config``; :class:`NotSetUp` when setup has not run (or the schema is old).

    The caller owns the database's connections: ``services.database.dispose()`` when done.
    """
    if not config.database_url and not (config.state_dir / "central.db").exists():
        # Opening it would create an empty file and hide the real problem behind a schema error.
        raise NotSetUp(f"{config.state_dir / 'central.db'} does not exist: run `secl-central setup`")
    files = KeyFiles(config.keys_dir)
    database = Database(config.sqlalchemy_url)
    try:
        if check_schema:
            _require_current_schema(database)
        tokens = _token_service(config, files)
    except BaseException:
        database.dispose()
        raise
    return CentralServices(
        config=config,
        files=files,
        keys=KeyMaterial(files),
        database=database,
        tokens=tokens,
        memos=Memos(config.verifier_memo_hosts),
        key_stores=KeyStores(config, files.keys_dir),
    )


def _require_current_schema(database: Database) -> None:
    current, head = current_revision(database.engine), head_revision()
    if current != head:
        raise NotSetUp(
            f"the database at {database.engine.url.render_as_string(hide_password=True)} is at schema "
            f"revision {current or 'none'}, this release needs {head}: run `secl-central db upgrade`"
        )


def _token_service(config: CentralConfig, files: KeyFiles) -> TokenService:
    path = files.token_signing_key
    if not path.exists():
        raise NotSetUp(f"{path} does not exist: run `secl-central setup`")
    return TokenService.from_file(path, config.token_ttl_seconds)


def install(app: Flask, services: CentralServices) -> None:
    """Hand ``services`` to ``app``. ``app.extensions["secl.db"]`` names the database too, as Flask
    extensions do, for code that holds only the application (tests, tools)."""
    app.extensions[_EXTENSION] = services
    app.extensions["secl.db"] = services.database


def services_of(app: Flask) -> CentralServices:
    """The service context ``create_app`` gave ``app``."""
    services: CentralServices = app.extensions[_EXTENSION]
    return services
