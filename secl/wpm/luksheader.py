"""The LUKS parameters of every image secl encrypts, and the LUKS1 header of a volume, written by cryptsetup.

**Parameters.** AES-256 in XTS mode with plain64 sector IVs (a 512-bit XTS key; 512-byte sectors, as
QEMU's LUKS driver and dm-crypt use for LUKS1), PBKDF2 with HMAC-SHA-512 for key slots and the master-key
digest. LUKS1, not LUKS2: QEMU 7.2 opens LUKS1 only.

Why SHA-512 and not the tools' SHA-256 default: qemu-img (7.2) calibrates PBKDF2 by timing 2^15
iterations with the thread's CPU clock and gives up ("Unable to get accurate CPU usage") when that clock
has not moved. On a kernel with tick-based CPU accounting (250 Hz: 4 ms ticks) and a CPU with SHA
instructions, SHA-256's 2^15 iterations take ~6 ms and qemu-img failed 6 to 14 times in 20 here; SHA-512's
take ~12 ms and never failed. The encrypted qcow2 needs qemu-img's calibration, so both formats use
SHA-512 (cryptsetup and QEMU both support it in LUKS1).

**The header of a LUKS1 volume** is written by ``cryptsetup luksFormat`` on the output file, sized for
the payload beforehand, and qemu-img then writes the encrypted payload into it (``convert -n``). Not
``qemu-img convert -O luks``, for two reasons measured here: its calibration costs ~2.5 s of CPU per image
(and with SHA-256 fails as above), and cryptsetup takes an exact iteration count
(``--pbkdf-force-iterations``), which :func:`pbkdf2_iterations` computes for the requested time with a
probe of a few milliseconds.

**Iteration time.** The passphrase is the base64 of a random 256-bit key, not a human password: key
stretching adds nothing against guessing it, and every VM start pays it (opening derives the key slot
and the master-key digest: about twice the iteration time). Hence a default of 100 ms, not cryptsetup's
2 s; tests use 10 ms. Neither tool goes below 1,000 iterations.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import subprocess
import time
from pathlib import Path

from secl.wpm.errors import ImageError
from secl.wpm.tools import find_tool

log = logging.getLogger(__name__)

CIPHER_ALG = "aes-256"
CIPHER_MODE = "xts"
IVGEN_ALG = "plain64"
CRYPTSETUP_CIPHER = "aes-xts-plain64"  # the same cipher, in cryptsetup's spelling
KEY_BITS = 512  # XTS: two AES-256 keys
HASH_ALG = "sha512"
DEFAULT_ITER_TIME_MS = 100
MIN_ITERATIONS = 1000

# The payload starts 2 MiB into the volume. That is what cryptsetup chooses for LUKS1 with a 512-bit key
# (8 key slots of 4000 AF stripes, aligned to 1 MiB); we state it so the file can be sized beforehand.
PAYLOAD_SECTORS = 4096
PAYLOAD_OFFSET = PAYLOAD_SECTORS * 512

_PROBE_SECONDS = 0.005


def pbkdf2_iterations(iter_time_ms: int) -> int:
    """PBKDF2-HMAC-SHA-512 iterations that take about ``iter_time_ms`` on this machine (at least 1,000).

    Timed with the wall clock on a short probe doubled until it lasts 5 ms, so the estimate costs a few
    milliseconds — unlike both tools' own calibrations, which spend seconds.
    """
    if iter_time_ms <= 0:
        raise ImageError("bad-iter-time", f"the PBKDF iteration time must be positive, not {iter_time_ms} ms")
    probe = MIN_ITERATIONS
    while True:
        start = time.perf_counter()
        # dklen 64: one SHA-512 block per iteration, as a key slot of a 512-bit key costs.
        hashlib.pbkdf2_hmac(HASH_ALG, b"\0" * 44, b"\0" * 32, probe, 64)
        elapsed = time.perf_counter() - start
        if elapsed >= _PROBE_SECONDS:
            break
        probe *= 2
    return max(MIN_ITERATIONS, round(probe * iter_time_ms / 1000 / elapsed))


def format_luks1(path: Path, *, secret_fd: int, iterations: int) -> None:
    """Write a LUKS1 header with one key slot (the passphrase on ``secret_fd``) at the start of ``path``.

    ``path`` must already be ``PAYLOAD_OFFSET`` + the payload's size long: cryptsetup formats the file in
    place, and QEMU takes the volume's size to be the file's size less the payload offset.
    """
    argv = [
        find_tool("cryptsetup"),
        "luksFormat",
        "--batch-mode",
        "--type=luks1",
        f"--cipher={CRYPTSETUP_CIPHER}",
        f"--key-size={KEY_BITS}",
        f"--hash={HASH_ALG}",
        f"--pbkdf-force-iterations={iterations}",
        f"--align-payload={PAYLOAD_SECTORS}",
        # A lock protects a block device's metadata from concurrent cryptsetup runs; our file is a private
        # temporary one, and the lock directory (/run/cryptsetup) is missing where systemd did not boot.
        "--disable-locks",
        f"--key-file=/proc/self/fd/{secret_fd}",
        str(path.absolute()),
    ]
    log.debug("running %s", shlex.join(argv))
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, pass_fds=(secret_fd,), check=False
    )
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.decode(errors="replace").splitlines() if ln.strip()]
        detail = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise ImageError("cryptsetup-failed", f"{path}: cryptsetup luksFormat failed: {detail}")
