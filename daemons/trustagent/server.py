"""Serving the trust agent's API: HTTPS with client certificates, bounded waits, readiness, SIGTERM.

:class:`MTLSServer` is werkzeug's threaded WSGI server with the TLS handshake moved into the connection's
own thread and cut off after :data:`HANDSHAKE_TIMEOUT`, idle keep-alive connections closed after
:data:`IDLE_TIMEOUT`, and only the central's pinned TLS key answered. :func:`serve` runs it until SIGTERM
and drains the requests in flight.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from secl.host.enrollment import client_key_sha256
from secl.sdnotify import notify
from secl.trustagent.api import AgentApp
from secl.trustagent.config import TrustAgentConfig

__all__ = ["HANDSHAKE_TIMEOUT", "IDLE_TIMEOUT", "MTLSServer", "mtls_context", "serve"]

log = logging.getLogger("secl.trustagent")

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 10.0  # keep-alive connections idle this long are closed (and no longer delay shutdown)


def mtls_context(config: TrustAgentConfig) -> ssl.SSLContext:
    """TLS 1.2+ with the agent's certificate; clients must present one that chains to the central's CA."""
    files = config.state
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.tls_cert, files.tls_key)
    context.load_verify_locations(cafile=files.central_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT


class MTLSServer(ThreadedWSGIServer):
    """werkzeug's threaded WSGI server, with the TLS handshake done in the connection's own thread (a
    client that stalls its handshake holds only its thread, not the accept loop) and requests drained on
    shutdown (non-daemon threads, joined by ``server_close``)."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, host: str, port: int, app: AgentApp, context: ssl.SSLContext, allowed_clients: frozenset[str]
    ) -> None:
        super().__init__(host, port, app, handler=_Handler)
        self.ssl_context = context  # werkzeug reads it for wsgi.url_scheme and SSL_CLIENT_CERT
        # SHA-256 of the keys of the clients served: the central's. Every enrolled host holds a certificate
        # from the same CA, so chaining to it is not enough: another host must not read this one's TPM.
        self.allowed_clients = allowed_clients

    def finish_request(self, request: Any, client_address: Any) -> None:  # runs in the connection's thread
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake with %s refused: %s", client_address[0], exc)
            return
        try:
            if client_key_sha256(connection.getpeercert(binary_form=True)) not in self.allowed_clients:
                log.warning("client %s refused: its certificate is not the central's", client_address[0])
                return
            super().finish_request(connection, client_address)
        finally:
            connection.close()


def serve(server: MTLSServer) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish requests in flight, and return."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loop = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    loop.start()
    log.info("listening on https://%s:%d (client certificates required)", server.host, server.port)
    notify("READY=1")
    while not stop.wait(1.0):
        pass
    log.info("stopping: finishing requests in flight")
    notify("STOPPING=1")
    server.shutdown()  # ends serve_forever, whose server_close() joins the request threads
    loop.join()
