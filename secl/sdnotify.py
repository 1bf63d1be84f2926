"""sd_notify(3) for the secl daemons run with ``Type=notify``: the trust agent and ``secl-central worker``.

The protocol is one datagram to the socket named by ``$NOTIFY_SOCKET``; no libsystemd binding is needed.
Outside systemd (no variable) every call is a no-op that returns False.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("secl.sdnotify")


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:  # the manager went away: nothing to tell, and no reason to fail
        log.warning("cannot notify %s of %s: %s", address, state, exc)
        return False
    return True
