"""Where an image key comes from: the one place ``secl-wpm`` acquires keys.

Three sources: a file or an inherited file descriptor (``--key-fd 3`` with ``3<key`` in the shell, or a
pipe from another program), holding either the 32 raw key bytes or their base64 (what SecL's key broker
returns as ``key_string``); or the key broker of a central (``--central``, :mod:`secl.wpm.broker`), which
creates the key or reuses ``--key-id`` and hands it over wrapped to an RSA key made in memory for this
run. The engine never sees the difference; the commands see only :class:`AcquiredKey`'s key id and URL.
"""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from secl.wpm.broker import BrokerKey, fetch_key
from secl.wpm.errors import ImageError
from secl.wpm.imagekey import KEY_BYTES, ImageKey

# A key file is 32 raw bytes or 44 base64 characters (and a newline, perhaps); anything much larger is
# not a key, so we stop reading rather than pull a mistaken multi-gigabyte path into memory.
_READ_LIMIT = 4096


@dataclass(frozen=True)
class KeySource:
    """Exactly one of ``key_file``, ``key_fd`` and ``broker``."""

    key_file: Path | None = None
    key_fd: int | None = None
    broker: BrokerKey | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.key_file, self.key_fd, self.broker)) != 1:
            raise ImageError(
                "bad-key-source", "give the image key with exactly one of --key-file, --key-fd and --central"
            )

    def describe(self) -> str:
        if self.broker is not None:
            return self.broker.describe()
        return f"key file {self.key_file}" if self.key_file is not None else f"key descriptor {self.key_fd}"


@dataclass(frozen=True)
class AcquiredKey:
    """The key, and for a broker's key its id, its transfer URL (the flavor's ``key_url``) and whether
    this run created it (so a failed encryption can delete it)."""

    key: ImageKey
    key_id: str | None = None
    key_url: str | None = None
    created: bool = False


def acquire(source: KeySource) -> AcquiredKey:
    """The image key from its source; any failure is an :class:`ImageError`."""
    if source.broker is not None:
        answer = fetch_key(source.broker)
        return AcquiredKey(ImageKey(answer.material), answer.key_id, answer.key_url, answer.created)
    return AcquiredKey(acquire_key(source))


def acquire_key(source: KeySource) -> ImageKey:
    """Read the image key from its source; an unreadable or malformed key is an :class:`ImageError`."""
    if source.broker is not None:
        return acquire(source).key
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
