"""gunicorn settings for the central, derived from the central's own configuration.

Used as ``gunicorn --config python:secl.central.gunicorn_conf secl.central.wsgi:app`` (secl-central.service).
gunicorn applies every module-level name that is one of its settings. The listen address, TLS key pair
and log level come from /etc/secl/central.toml (or $SECL_CENTRAL_CONFIG, and SECL_CENTRAL_* variables);
the process model is fixed here. Operators who need other worker counts use gunicorn's own
``GUNICORN_CMD_ARGS`` (for example ``--workers 4 --threads 16``), which overrides this module.

Readiness: gunicorn's arbiter sends ``READY=1`` to ``$NOTIFY_SOCKET`` itself once its listening socket is
bound (``gunicorn.systemd.sd_notify``, abstract ``@`` names included). With ``preload_app`` the app —
configuration, database schema check, signing key — is built before that, so READY=1 means "set up and
accepting connections" and a central that is not set up fails to start instead of looping workers.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from secl.central.config import load_config
from secl.central.context import services_of
from secl.central.keyfiles import KeyFiles

_config = load_config()
_keys = KeyFiles(_config.keys_dir)

bind = [_config.listen]
# gthread with keep-alive: a TLS handshake per connection, not per request (sync workers do one per
# request and are ~20x slower over TLS). One process per core; threads wait on the database.
worker_class = "gthread"
workers = os.cpu_count() or 2
threads = 8
keepalive = 15
timeout = 60
# SIGTERM: stop accepting, let requests in flight finish for this long, then exit 0. TimeoutStopSec in
# the unit is longer.
graceful_timeout = 20
preload_app = True

certfile = str(_keys.tls_cert)  # the central's certificate followed by the root CA
keyfile = str(_keys.tls_key)

# Logs go to stdout/stderr, i.e. the journal. The access log names the path without its query string
# and never the Authorization header or the Basic-auth user (%(u)s), nor the referrer.
accesslog = "-"
errorlog = "-"
loglevel = _config.log_level.lower()
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

# gunicorn >= 25.1 opens a control socket under $HOME or $XDG_RUNTIME_DIR by default; the service has
# neither (ProtectHome) and two instances on one host would fight over it.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    # Each forked worker checkpoints the SQLite log from its own thread (no-op on PostgreSQL), so a request
    # never waits for a checkpoint's fsyncs; threads do not survive the fork from the preloading arbiter.
    services_of(worker.wsgi).database.start_checkpointer()


def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
