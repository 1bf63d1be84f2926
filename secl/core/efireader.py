"""Bounds-checked reading of the little-endian UEFI structures in event data, shared by the EFI decoders."""

from __future__ import annotations

import uuid

from secl.core.errors import EventLogError


def format_guid(raw16: bytes) -> str:
    """Format an EFI_GUID: the first three fields are little-endian, the last eight bytes in order."""
    if len(raw16) != 16:
        raise EventLogError(f"a GUID is 16 bytes, got {len(raw16)}", code="efi-guid-invalid")
    return str(uuid.UUID(bytes_le=bytes(raw16)))


class EFIReader:
    """A cursor over event data that checks every length before it slices."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int) -> bytes:
        if size < 0 or size > self.remaining:
            raise EventLogError(
                f"{self._what}: needs {size} bytes at offset {self._pos}, only {self.remaining} left",
                code="efi-truncated",
            )
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def guid(self) -> str:
        return format_guid(self.take(16))

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def utf16z(self) -> str:
        """Read a NUL-terminated UCS-2 string; a missing terminator is malformed, not the end of data."""
        start = self._pos
        while True:
            if self.take(2) == b"\0\0":
                return utf16_text(self._data[start : self._pos - 2])

    def sized_ascii(self) -> str:
        return ascii_text(self.take(self.uint(1)))


def utf16_text(raw: bytes) -> str:
    return raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def ascii_text(raw: bytes) -> str:
    # Event strings are nominally ASCII, but grub passes user text through, so keep any UTF-8 and escape the rest.
    return raw.rstrip(b"\0").decode("utf-8", errors="backslashreplace")
