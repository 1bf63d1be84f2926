"""Where an image key comes from: the one place ``secl-wpm`` acquires keys.

Today the image owner brings the key: a file or an inherited file descriptor (``--key-fd 3`` with
``3<key`` in the shell, or a pipe from another program), holding either the 32 raw key bytes or their
base64 (what SecL's key broker returns as ``key_string``). The key broker integration — create the key in
the central or reuse ``--key-id``, fetch it wrapped to the owner's RSA key — becomes one more kind of
:class:`KeySource` here and one more branch of :func:`acquire_key`; the engine and the commands never see
the difference.
"""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from secl.wpm.errors import ImageError
from secl.wpm.imagekey import KEY_BYTES, ImageKey

# A key file is 32 raw bytes or 44 base64 characters (and a newline, perhaps); anything much larger is
# not a key, so we stop reading rather than pull a mistaken multi-gigabyte path into memory.
_READ_LIMIT = 4096


@dataclass(frozen=True)
class KeySource:
    """Exactly one of ``key_file`` and ``key_fd``."""

    key_file: Path | None = None
    key_fd: int | None = None

    def __post_init__(self) -> None:
        if (self.key_file is None) == (self.key_fd is None):
            raise ImageError(
                "bad-key-source", "give the image key with exactly one of --key-file and --key-fd"
            )

    def describe(self) -> str:
        return f"key file {self.key_file}" if self.key_file is not None else f"key descriptor {self.key_fd}"


def acquire_key(source: KeySource) -> ImageKey:
    """Read the image key from its source; an unreadable or malformed key is an :class:`ImageError`."""
    if source.key_file is not None:
        try:
            with source.key_file.open("rb") as f:
                data = f.read(_READ_LIMIT + 1)
        except OSError as exc:
            raise ImageError("bad-key", f"{source.describe()}: {exc.strerror or exc}") from None
    else:
        assert source.key_fd is not None
        data = _read_fd(source)
    return ImageKey(decode_key(data, source.describe()))


def decode_key(data: bytes, what: str) -> bytes:
    """32 raw bytes are the key itself; otherwise the content must be the base64 of 32 bytes."""
    if len(data) == KEY_BYTES:
        return data
    if len(data) > _READ_LIMIT:
        raise ImageError(
            "bad-key", f"{what}: too large for a key (expected {KEY_BYTES} bytes or their base64)"
        )
    try:
        key = binascii.a2b_base64(data.strip(), strict_mode=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ImageError(
            "bad-key", f"{what}: not an AES-256 key (expected {KEY_BYTES} raw bytes or their base64)"
        )
    return key


def _read_fd(source: KeySource) -> bytes:
    assert source.key_fd is not None
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= _READ_LIMIT:
            chunk = os.read(source.key_fd, _READ_LIMIT + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        os.close(source.key_fd)
    except OSError as exc:
        raise ImageError("bad-key", f"{source.describe()}: {exc.strerror or exc}") from None
    return b"".join(chunks)
