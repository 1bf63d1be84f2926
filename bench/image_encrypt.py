"""Bench: encrypting a VM image with secl-wpm's engine vs the machine's raw throughput for the cipher.

The image: ``--size`` MiB (default 256) of random bytes in a raw file (random, so nothing is skipped as
zeros), read once untimed so every run reads it from the page cache. Each figure is the best of
``--repeat`` runs (default 3), MB/s = 10^6 bytes of guest disk per second.

secl (through ``secl.wpm.luksimage``, the code ``secl-wpm`` runs):

* **encrypt, LUKS1**: the whole ``encrypt_image`` — cryptsetup header, the qemu-img pass, the SHA-256
  digest pass, the checks — file to file on the bench directory's disk; its phases are timed apart
  (through the engine's progress hooks), and qemu-img's CPU time gives its crypto rate per core.
* the same with the output on tmpfs (``/dev/shm``): no disk, so what is left is qemu-img's own ceiling;
* **encrypt, qcow2** (qemu-img's own LUKS header: its PBKDF2 calibration costs seconds whatever the size);
* **decrypt** the LUKS1 volume back to raw.

Baselines, measured in the same run over the same bytes:

* the cipher LUKS1 uses, AES-256-XTS (aes-xts-plain64, 512-byte sectors), through OpenSSL:
  pyca/cryptography in large buffers (4 MiB per call — the cipher's raw rate) and in 512-byte data units
  (one context per sector, as LUKS needs — mostly Python's per-call cost), and ``openssl speed -evp
  aes-256-xts -bytes 512`` (C, 512-byte units, no Python);
* ``cryptsetup benchmark -c aes-xts-plain64 -s 512`` (the kernel's cipher), when the kernel offers it;
* the same file-to-file streaming pass without encryption: ``qemu-img convert`` raw to raw, same target;
* SHA-256 (hashlib) over the bytes: the digest pass's own ceiling.

``--explore`` also times the qemu-img pass alone (into a LUKS1 volume cryptsetup formatted beforehand)
with the knobs qemu-img offers — ``-m 16 -W`` (16 coroutines, out-of-order writes), ``-t none -T none``
(O_DIRECT both ways), ``-t unsafe`` (no flush at the end), a sparse target instead of the allocated one
the engine makes — and with 2 and 4 qemu-img processes each writing one window of the volume
(``driver=raw,offset=,size=`` over the ``luks`` driver), as the engine does with ``jobs``: qemu-img
encrypts on one thread, so more processes are the only way to use more cores.

Memory: the high-water marks (``getrusage`` ``ru_maxrss``) of this process and of its children (qemu-img,
cryptsetup), read after the engine's runs and before the baselines load the image into memory; compare
two ``--size`` values to see that neither grows with the image.

Run: ``.venv/bin/python bench/image_encrypt.py [--size MiB] [--repeat N] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secl.wpm import qemuimg
from secl.wpm.imagekey import ImageKey
from secl.wpm.luksheader import PAYLOAD_OFFSET, format_luks1
from secl.wpm.luksimage import DEFAULT_JOBS, EncryptedFormat, decrypt_image, encrypt_image
from secl.wpm.progress import Progress

MIB = 1 << 20
BAR = 0.80  # DESIGN §7: image encryption >= 80 % of the machine's raw throughput for the cipher


@dataclass
class PhaseClock:
    """A progress factory that records when each engine step starts and ends (no drawing)."""

    start: float = field(default_factory=time.perf_counter)
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __call__(self, label: str, total: int) -> Progress:
        clock = self
        began = time.perf_counter()

        class _Step:
            def update(self, fraction: float) -> None:
                pass

            def finish(self, completed: bool = True) -> None:
                clock.phases[label] = (began, time.perf_counter())

        return _Step()


@dataclass
class Run:
    seconds: float
    phases: dict[str, float]
    child_cpu: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def encrypt_once(source: Path, target: Path, key: ImageKey, fmt: EncryptedFormat, iter_time: int) -> Run:
    clock = PhaseClock()
    cpu = children_cpu()
    encrypt_image(source, target, key, format=fmt, iter_time_ms=iter_time, progress=clock)
    end = time.perf_counter()
    child_cpu = children_cpu() - cpu
    encrypting = clock.phases["encrypting"]
    digest = clock.phases["digest"]
    phases = {
        "header": encrypting[0] - clock.start,
        "encrypting (qemu-img)": encrypting[1] - encrypting[0],
        "check": digest[0] - encrypting[1],
        "digest": digest[1] - digest[0],
    }
    target.unlink()
    return Run(end - clock.start, phases, child_cpu)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_copy(source: Path, target: Path, size: int) -> None:
    """qemu-img's streaming pass with no cipher: raw to raw into a fresh file of the same size."""
    with target.open("wb") as f:
        f.truncate(size)
    source_opts = f"driver=raw,file.filename={source}"
    target_opts = f"driver=raw,file.filename={target}"
    subprocess.run(
        ["qemu-img", "convert", "--image-opts", source_opts, "-n", "--target-image-opts", target_opts],
        check=True,
    )
    target.unlink()


def explore(source: Path, work: Path, key: ImageKey, size: int, repeat: int) -> list[tuple[str, float]]:
    """Seconds of the qemu-img pass alone, per variant (best of ``repeat``)."""
    target = work / "explore.luks"

    def fresh(allocated: bool) -> None:
        target.unlink(missing_ok=True)
        with target.open("wb") as f:
            if allocated:
                os.posix_fallocate(f.fileno(), 0, PAYLOAD_OFFSET + size)
            else:
                f.truncate(PAYLOAD_OFFSET + size)
        with key.passphrase_fd() as fd:
            format_luks1(target, secret_fd=fd, iterations=1000)

    def one_pass(flags: list[str], ranges: int = 1) -> float:
        part = size // ranges
        secret = {"key-secret": qemuimg.SECRET_ID}
        with key.passphrase_fd() as fd:
            argvs = []
            for i in range(ranges):
                # A window of the guest's disk, so the sector numbers (XTS tweaks) stay right.
                window = (i * part, part) if ranges > 1 else None
                src = qemuimg.file_opts("raw", source, window=window)
                tgt = qemuimg.file_opts("luks", target, window=window, unlocked=ranges > 1, **secret)
                args = [*flags, "--image-opts", src, "-n", "--target-image-opts", tgt]
                argvs.append(qemuimg.convert_argv(args, secret_fd=fd, progress=False))
            start = time.perf_counter()
            procs = [subprocess.Popen(argv, pass_fds=(fd,)) for argv in argvs]
            if any(p.wait() != 0 for p in procs):
                raise SystemExit(f"qemu-img failed: {argvs}")
            return time.perf_counter() - start

    variants: list[tuple[str, list[str], bool, int]] = [
        ("one process, allocated target, cache writeback", [], True, 1),
        ("one process, -m 16 -W", ["-m", "16", "-W"], True, 1),
        ("one process, -t none -T none (O_DIRECT)", ["-t", "none", "-T", "none"], True, 1),
        ("one process, -t unsafe (no flush)", ["-t", "unsafe"], True, 1),
        ("one process, sparse target (truncated, not allocated)", [], False, 1),
        *((f"{n} processes, one window each", [], True, n) for n in (2, 4)),
    ]
    results = []
    for name, flags, allocated, ranges in variants:
        times = []
        for _ in range(repeat):
            fresh(allocated)
            times.append(one_pass(flags, ranges))
        results.append((name, min(times)))
    target.unlink(missing_ok=True)
    return results


def xts_large(data: memoryview, out: bytearray, key: bytes) -> None:
    chunk = 4 * MIB
    for offset in range(0, len(data), chunk):
        tweak = (offset // 512).to_bytes(16, "little")
        Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor().update_into(
            data[offset : offset + chunk], out
        )


def xts_sectors(data: memoryview, out: bytearray, key: bytes) -> None:
    aes = algorithms.AES(key)
    for sector in range(len(data) // 512):
        encryptor = Cipher(aes, modes.XTS(sector.to_bytes(16, "little"))).encryptor()
        encryptor.update_into(data[sector * 512 : (sector + 1) * 512], out)


def openssl_speed_512() -> float | None:
    """``openssl speed`` AES-256-XTS at 512-byte blocks, in MB/s (it prints thousands of bytes/s)."""
    if shutil.which("openssl") is None:
        return None
    result = subprocess.run(
        ["openssl", "speed", "-elapsed", "-seconds", "2", "-evp", "aes-256-xts", "-bytes", "512"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"^AES-256-XTS\s+([\d.]+)k", result.stdout, re.MULTILINE)
    return float(match.group(1)) / 1000 if match else None


def cryptsetup_benchmark() -> tuple[float | None, str]:
    """The kernel's aes-xts-plain64 (512-bit key) encryption rate, or why cryptsetup could not measure it."""
    cryptsetup = shutil.which("cryptsetup") or shutil.which("cryptsetup", path="/usr/sbin:/sbin")
    if cryptsetup is None:
        return None, "cryptsetup not installed"
    result = subprocess.run(
        [cryptsetup, "benchmark", "-c", "aes-xts-plain64", "-s", "512"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"aes-xts\s+512b\s+([\d.]+)\s+MiB/s", result.stdout)
    if match:
        return float(match.group(1)) * MIB / 1e6, ""
    reason = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or ["no figure"])[0]
    return None, reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is reported")
    parser.add_argument("--dir", type=Path, default=None, help="where the image files go (default: TMPDIR)")
    parser.add_argument("--iter-time", type=int, default=10, help="PBKDF2 ms per key slot (default 10)")
    parser.add_argument("--explore", action="store_true", help="also time qemu-img's knobs (see the doc)")
    args = parser.parse_args()

    size = args.size * MIB
    key = ImageKey(os.urandom(32))
    work = Path(tempfile.mkdtemp(prefix="secl-bench-image-", dir=args.dir))
    shm = Path("/dev/shm")
    try:
        source = work / "image.raw"
        with source.open("wb") as f:
            for _ in range(args.size):
                f.write(os.urandom(MIB))
            # On disk before the first run: its writeback would otherwise compete with the runs' own I/O.
            f.flush()
            os.fsync(f.fileno())
        with source.open("rb") as f:  # into the page cache: every run reads the same cached bytes
            while f.read(4 * MIB):
                pass

        print(
            f"image: {args.size} MiB of random bytes, {source.parent} ({_fs(source.parent)}); "
            f"best of {args.repeat}; PBKDF2 {args.iter_time} ms; LUKS1 written by up to {DEFAULT_JOBS} qemu-img"
        )
        luks = [
            encrypt_once(source, work / "out.luks", key, EncryptedFormat.LUKS, args.iter_time)
            for _ in range(args.repeat)
        ]
        luks_best = best(luks)
        tmpfs = None
        if shm.is_dir() and shutil.disk_usage(shm).free > 2 * size + 64 * MIB:
            tmpfs = best(
                [
                    encrypt_once(
                        source,
                        shm / f"secl-bench-{os.getpid()}.luks",
                        key,
                        EncryptedFormat.LUKS,
                        args.iter_time,
                    )
                    for _ in range(args.repeat)
                ]
            )
        qcow2 = best(
            [
                encrypt_once(source, work / "out.qcow2", key, EncryptedFormat.QCOW2, args.iter_time)
                for _ in range(args.repeat)
            ]
        )
        volume = encrypt_image(source, work / "kept.luks", key, iter_time_ms=args.iter_time)

        def decrypt() -> None:
            decrypt_image(volume.path, work / "back.raw", key)
            (work / "back.raw").unlink()

        decrypt_seconds = timed(decrypt, args.repeat)
        # The engine's memory, before any baseline or exploration runs a process of its own.
        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        copy_seconds = timed(lambda: plain_copy(source, work / "copy.raw", size), args.repeat)
        explored = explore(source, work, key, size, args.repeat) if args.explore else []

        # Baselines over the same bytes, in memory (after the memory figures: they hold the image).
        data = bytearray(source.read_bytes())
        view = memoryview(data)
        out = bytearray(len(data) + 64)
        xts_key = os.urandom(64)
        large = size / timed(lambda: xts_large(view, out, xts_key), args.repeat) / 1e6
        sectors = size / timed(lambda: xts_sectors(view, out, xts_key), 1) / 1e6
        sha256 = size / timed(lambda: hashlib.sha256(view).digest(), args.repeat) / 1e6
        openssl512 = openssl_speed_512()
        kernel, kernel_reason = cryptsetup_benchmark()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for leftover in shm.glob(f"secl-bench-{os.getpid()}*"):
            leftover.unlink()

    def rate(seconds: float) -> float:
        return size / seconds / 1e6

    engine = rate(luks_best.seconds)
    print(
        "\nsecl (secl.wpm.luksimage)                                       MB/s   vs raw cipher   vs plain copy"
    )
    rows = [
        ("encrypt, LUKS1 volume, end to end", engine),
        ("encrypt, LUKS1, output on tmpfs (no disk)", rate(tmpfs.seconds) if tmpfs else None),
        ("encrypt, qcow2+LUKS, end to end (qemu's PBKDF calibration)", rate(qcow2.seconds)),
        ("decrypt, LUKS1 volume -> raw, end to end", rate(decrypt_seconds)),
    ]
    for name, value in rows:
        if value is None:
            print(f"  {name:60} (no room on /dev/shm)")
        else:
            print(f"  {name:60} {value:7.0f}   {value / large:10.1%}   {value / rate(copy_seconds):10.1%}")
    print(
        "  phases of the best LUKS1 run (s):", ", ".join(f"{k} {v:.3f}" for k, v in luks_best.phases.items())
    )
    payload = luks_best.phases["encrypting (qemu-img)"]
    print(
        f"  qemu-img pass alone: {rate(payload):.0f} MB/s wall; qemu-img+cryptsetup CPU {luks_best.child_cpu:.2f} s "
        f"-> {size / luks_best.child_cpu / 1e6:.0f} MB/s per core of CPU"
    )
    if tmpfs:
        print("  phases on tmpfs (s):", ", ".join(f"{k} {v:.3f}" for k, v in tmpfs.phases.items()))
    print("  phases of the best qcow2 run (s):", ", ".join(f"{k} {v:.3f}" for k, v in qcow2.phases.items()))
    if explored:
        print("\nthe qemu-img pass alone, by variant                             MB/s")
        for name, seconds in explored:
            print(f"  {name:60} {rate(seconds):7.0f}")

    print("\nbaselines, same bytes                                           MB/s")
    print(f"  AES-256-XTS, pyca/OpenSSL, 4 MiB buffers (raw cipher)        {large:7.0f}")
    print(f"  AES-256-XTS, pyca/OpenSSL, 512-byte data units (per call)     {sectors:7.0f}")
    if openssl512 is not None:
        print(f"  AES-256-XTS, openssl speed -bytes 512 (C, no Python)         {openssl512:7.0f}")
    if kernel is not None:
        print(f"  aes-xts-plain64 512b, cryptsetup benchmark (kernel)          {kernel:7.0f}")
    else:
        print(f"  aes-xts-plain64 512b, cryptsetup benchmark: not measured ({kernel_reason})")
    print(f"  qemu-img convert raw -> raw, no cipher (same I/O path)       {rate(copy_seconds):7.0f}")
    print(f"  SHA-256, hashlib (the digest pass's ceiling)                 {sha256:7.0f}")

    print(
        f"\nengine's memory high-water mark: this process {self_kib / 1024:.0f} MiB, children (qemu-img, cryptsetup) "
        f"{children_kib / 1024:.0f} MiB, for a {args.size} MiB image"
    )
    reference = max(large, openssl512 or 0.0)
    verdict = "met" if engine >= BAR * reference else "NOT met"
    print(
        f"bar (DESIGN §7): encryption >= {BAR:.0%} of the raw cipher ({reference:.0f} MB/s): {verdict}, "
        f"{engine / reference:.1%}"
    )


def _fs(path: Path) -> str:
    result = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True, check=False)
    lines = result.stdout.split()
    return lines[-1] if len(lines) > 1 else "?"


if __name__ == "__main__":
    main()
