"""Bench: an IMA runtime log of 10,000 ima-ng lines, parsed, every template hash checked and PCR 10 replayed.

secl: ``log = parse_ima_log(data); log.verify_template_hashes(); log.replay()`` on the ASCII log in
memory, as a verifier does with the log a host sent. The floor is a bare hashlib loop over the same
template data (each entry's bytes hashed once with its template-hash algorithm): the hashing no checker
can avoid. The bar (issue 18) is ≤ 3 µs a line; the ratio to the floor is printed beside it.

The lines are the rust-keylime corpus log's 826 real ima-ng entries (sha1 template hashes, sha1 and
sha256 file digests, real paths), repeated to 10,000 lines. Run: ``.venv/bin/python bench/ima.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from secl.core.ima import parse_ima_log
from tests.corpus import corpus_bytes

LOG = "rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements"
LINES = 10_000
BAR_US_PER_LINE = 3.0


def log_of(lines: int) -> bytes:
    real = [line for line in corpus_bytes(LOG).splitlines(keepends=True) if line.strip()]
    return b"".join(real[i % len(real)] for i in range(lines))


def best_seconds(fn: Callable[[], object], budget: float) -> float:
    """The fastest of as many runs as fit in ``budget`` seconds (at least 5)."""
    best, runs, deadline = float("inf"), 0, time.perf_counter() + budget
    while runs < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of repetitions per figure")
    parser.add_argument("--lines", type=int, default=LINES, help="lines in the log")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, for both figures
    data = log_of(args.lines)
    log = parse_ima_log(data)
    log.verify_template_hashes()  # the log must be valid before it is timed
    pcr10 = log.replay()
    datas = [e.template_data for e in log.entries if e.template_data is not None]
    assert len(datas) == args.lines
    sha1 = hashlib.sha1

    def secl() -> bytes:
        checked = parse_ima_log(data)
        checked.verify_template_hashes()
        return checked.replay()

    def floor() -> None:
        for template_data in datas:
            sha1(template_data).digest()

    assert secl() == pcr10
    ours = best_seconds(secl, args.budget) / args.lines * 1e6
    bare = best_seconds(floor, args.budget) / args.lines * 1e6
    print(f"log: {args.lines:,} ima-ng lines ({len(data):,} bytes) from {LOG}; PCR 10 sha1 {pcr10.hex()}")
    print(
        f"secl parse + template-hash check + replay: {ours:6.2f} µs a line ({ours * args.lines / 1e3:6.1f} ms)"
    )
    print(
        f"floor: hashlib.sha1 over each template data: {bare:6.2f} µs a line ({bare * args.lines / 1e3:6.1f} ms)"
    )
    print(f"ratio secl/floor: {ours / bare:.1f}x")
    met = ours <= BAR_US_PER_LINE
    print(f"bar <= {BAR_US_PER_LINE:g} µs a line: {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
