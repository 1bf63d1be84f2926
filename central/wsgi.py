"""The WSGI entry point gunicorn runs: ``secl.central.wsgi:app`` (see secl-central.service).

The configuration comes from /etc/secl/central.toml (or $SECL_CENTRAL_CONFIG) and SECL_CENTRAL_*
variables, like every ``secl-central`` command. gunicorn_conf sets ``preload_app``, so this module is
imported once in the arbiter before it reports READY=1: a central that is not set up never becomes ready,
and says why in one line instead of a traceback.
"""

from sqlalchemy.exc import OperationalError

from secl.central import ConfigError, NotSetUp, create_app
from secl.central.context import services_of

try:
    app = create_app()
except (NotSetUp, ConfigError) as exc:
    raise SystemExit(f"secl-central: {exc}") from None
except OperationalError as exc:
    raise SystemExit(f"secl-central: cannot open the database: {exc.orig}") from None
# The schema check opened a pooled connection; workers are forked from this process and must not share
# it. Each worker opens its own on first use.
services_of(app).database.dispose()
