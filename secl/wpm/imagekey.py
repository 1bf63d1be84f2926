"""An image key: the key broker's AES-256 key, the LUKS passphrase made from it, and how a tool gets it.

**The passphrase encoding.** An image's LUKS passphrase is the standard base64 (RFC 4648 §4, with ``=``
padding) of the 32 raw key bytes: 44 ASCII characters, no newline. Whoever holds the unwrapped key derives
it the same way — ``base64.b64encode(key)`` — the image owner here, the workload agent on a host before it
hands the passphrase to QEMU (a libvirt secret's value, or a ``secret`` object).

Why not the raw bytes: QEMU reads a LUKS passphrase as a UTF-8 string (``qcrypto_secret_lookup_as_utf8``)
and refuses one that is not valid UTF-8 ("Data from secret … is not valid UTF-8"), which random bytes
almost never are; a NUL byte would also end it early. Base64 keeps all 256 bits in printable ASCII that
QEMU, libvirt and ``cryptsetup --key-file`` all take byte for byte. (Hex would do as well, in 64
characters; base64 is how SecL's key broker already spells keys, ``key_string``.)

**Handing the passphrase to a tool.** Never on a command line (``/proc/<pid>/cmdline`` is world-readable),
never in the environment, never in a file on disk: :meth:`ImageKey.passphrase_fd` writes it into a sealed
``memfd`` (anonymous memory, gone when the last descriptor closes), and the child process reads it as
``/proc/self/fd/N`` — QEMU's ``--object secret,file=`` and ``cryptsetup --key-file`` both accept that path.
A memfd rather than a pipe because it can be read more than once, and sealed so the child cannot alter it.
"""

from __future__ import annotations

import base64
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from secl.wpm.errors import ImageError

KEY_BYTES = 32  # AES-256, the only key the key broker makes for images (SecL: algorithm AES, key_length 256)


class ImageKey:
    """The 32 raw bytes of an image key. ``repr`` and ``str`` never show them."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) != KEY_BYTES:
            raise ImageError(
                "bad-key", f"an image key is {KEY_BYTES} bytes (AES-256), this one is {len(material)}"
            )
        self._material = bytes(material)

    @property
    def passphrase(self) -> bytes:
        """The LUKS passphrase: base64 of the key, 44 ASCII bytes without a newline (see the module doc)."""
        return base64.b64encode(self._material)

    @contextmanager
    def passphrase_fd(self) -> Iterator[int]:
        """A sealed memfd holding the passphrase, for ``pass_fds`` and ``/proc/self/fd/N``; closed on exit."""
        fd = os.memfd_create("secl-wpm-passphrase", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            data = memoryview(self.passphrase)
            while data:
                data = data[os.write(fd, data) :]
            fcntl.fcntl(
                fd,
                fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL,
            )
            yield fd
        finally:
            os.close(fd)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageKey) and other._material == self._material

    def __hash__(self) -> int:
        return hash(self._material)

    def __repr__(self) -> str:
        return "ImageKey(<redacted>)"

    __str__ = __repr__
