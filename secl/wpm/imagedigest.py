"""The digest an image flavor carries: SHA-256 of the encrypted file, as SecL writes it (base64).

A host that fetches the image can check it against the signed flavor before it hands the image to QEMU.
The file is read in 1 MiB pieces into one reused buffer, so memory stays constant whatever the size.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from secl.wpm.progress import NO_PROGRESS, ProgressFactory

_CHUNK = 1 << 20


def sha256_file(path: Path, progress: ProgressFactory = NO_PROGRESS) -> bytes:
    """The SHA-256 of the file's bytes, streamed."""
    total = path.stat().st_size
    bar = progress("digest", total)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    done = 0
    completed = False
    try:
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
                done += n
                bar.update(done / total if total else 1.0)
        completed = True
    finally:
        bar.finish(completed)
    return digest.digest()


def flavor_digest(sha256: bytes) -> str:
    """SecL's spelling of an image digest in a flavor: standard base64 of the 32 bytes."""
    return base64.b64encode(sha256).decode("ascii")
