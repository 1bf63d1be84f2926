"""Bench: measuring a tree with secl's engine vs ``sha384sum`` over the same files, side by side.

The tree (in a temporary directory): many small files and a few large ones, random content, by default
2000 x 4 KiB + 4 x 64 MiB (264 MiB). The manifest is one ``<File Path="/data/.*" SearchType="regex"/>``,
so secl walks the tree, hashes every file and chains the CumulativeHash; ``sha384sum`` is given the same
file list in the same order on its command line. Both read from the page cache (one untimed pass warms
it), and each side runs ``--repeat`` times interleaved; the best run of each is reported.

Printed: MB/s of each, and the ratio. Three secl figures: the engine in-process with its default
threads (what the bar is about: DESIGN §7, ≥ 80 % of sha384sum), the engine on one thread (per-core
comparison: sha384sum is single-threaded), and the whole ``secl-measure --no-extend`` command including
Python's start-up. Run: ``.venv/bin/python bench/measure.py [--small N] [--large N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from secl.core.appmanifest import parse_manifest
from secl.host.measure import measure

UUID = "834076cd-f733-4cca-a417-113fac90adc7"
MANIFEST = (
    f'<Manifest xmlns="lib:wml:manifests:1.0" Label="bench" Uuid="{UUID}" DigestAlg="SHA384">'
    '<File Path="/data/.*" SearchType="regex"/></Manifest>'
)


def build_tree(root: Path, small: int, small_size: int, large: int, large_size: int) -> list[Path]:
    data = root / "data"
    for i in range(small):
        path = data / f"small/{i // 100:02}/f{i:05}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(small_size))
    chunk = os.urandom(1 << 20)
    for i in range(large):
        path = data / f"large/big{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for n in range(large_size >> 20):
                f.write(chunk[n % 7 :] + chunk[: n % 7])  # distinct 1 MiB blocks without more urandom
    return sorted(data.rglob("*"), key=os.fsencode)


def time_engine(root: Path, workers: int | None) -> tuple[float, int, str]:
    manifest = parse_manifest(MANIFEST)
    start = time.perf_counter()
    result = measure(manifest, root, workers=workers)
    return time.perf_counter() - start, result.files, result.log.cumulative_hash


def time_sha384sum(tool: str, files: list[Path]) -> float:
    start = time.perf_counter()
    subprocess.run([tool, *map(str, files)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def time_command(root: Path, manifest: Path) -> float:
    command = Path(sys.executable).with_name("secl-measure")
    args = [
        str(command),
        "--manifest",
        str(manifest),
        "--root",
        str(root),
        "--output",
        os.devnull,
        "--no-extend",
    ]
    start = time.perf_counter()
    subprocess.run(
        args, stdout=subprocess.DEVNULL, check=True, env={**os.environ, "SECL_TRUSTAGENT_CONFIG": "/dev/null"}
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="number of small files")
    parser.add_argument("--small-size", type=int, default=4096)
    parser.add_argument("--large", type=int, default=4, help="number of large files")
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tool = shutil.which("sha384sum")
    if tool is None:
        print("sha384sum not found (Debian package coreutils)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="secl-bench-measure-") as tmp:
        root = Path(tmp) / "root"
        files = [
            p
            for p in build_tree(root, args.small, args.small_size, args.large, args.large_mib << 20)
            if p.is_file()
        ]
        total = sum(p.stat().st_size for p in files)
        manifest = Path(tmp) / "manifest.xml"
        manifest.write_text(MANIFEST)
        time_sha384sum(tool, files)  # warm the page cache for both sides
        runs: dict[str, list[float]] = {"engine": [], "engine-1": [], "command": [], "sha384sum": []}
        hashed = 0
        for _ in range(args.repeat):
            seconds, hashed, _ = time_engine(root, None)
            runs["engine"].append(seconds)
            runs["engine-1"].append(time_engine(root, 1)[0])
            runs["command"].append(time_command(root, manifest))
            runs["sha384sum"].append(time_sha384sum(tool, files))
        if hashed != len(files):
            print(f"secl hashed {hashed} files, sha384sum {len(files)}: not the same work", file=sys.stderr)
            return 1
    best = {name: min(times) for name, times in runs.items()}
    rate = {name: total / seconds / 1e6 for name, seconds in best.items()}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"tree: {args.small} x {args.small_size} B + {args.large} x {args.large_mib} MiB = {len(files)} files, "
        f"{total / 1e6:.1f} MB; {cpus} CPUs; best of {args.repeat}\n"
    )
    print(f"{'':<44} {'seconds':>8} {'MB/s':>8} {'vs sha384sum':>13}")
    labels = {
        "sha384sum": "sha384sum (coreutils, one process)",
        "engine": "secl engine, default threads",
        "engine-1": "secl engine, one thread",
        "command": "secl-measure --no-extend (with start-up)",
    }
    for name in ("sha384sum", "engine", "engine-1", "command"):
        print(
            f"{labels[name]:<44} {best[name]:>8.3f} {rate[name]:>8.1f} {rate[name] / rate['sha384sum']:>12.0%}"
        )
    ratio = rate["engine"] / rate["sha384sum"]
    print(
        f"\nsecl engine at {ratio:.0%} of sha384sum's throughput (bar: ≥ 80%) -> {'MET' if ratio >= 0.8 else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
