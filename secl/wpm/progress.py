"""Progress of a long image operation: a bar on a terminal, nothing anywhere else.

The engine reports each step (``encrypting``, ``digest``) as a fraction done; :class:`TerminalProgress`
redraws one line on the terminal with the bytes done, the rate and the time left, at most ten times a
second, and ends it with a newline. :data:`NO_PROGRESS` is for pipes, logs and tests: a script that
captures ``secl-wpm``'s output gets no carriage-return noise.
"""

from __future__ import annotations

import shutil
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """One step of an operation over ``total`` bytes."""

    def update(self, fraction: float) -> None: ...

    def finish(self, completed: bool = True) -> None:
        """End the step: ``completed`` says whether it ran to its end or stopped early (an error)."""
        ...


class ProgressFactory(Protocol):
    def __call__(self, label: str, total: int) -> Progress: ...


class _Silent:
    def update(self, fraction: float) -> None:
        pass

    def finish(self, completed: bool = True) -> None:
        pass


def _no_progress(label: str, total: int) -> Progress:
    return _Silent()


NO_PROGRESS: ProgressFactory = _no_progress


class TerminalProgress:
    """``encrypting [#########.........]  47%  120/256 MiB  310 MiB/s  0:00:01 left`` on one line."""

    _MIN_REDRAW = 0.1  # seconds: qemu-img reports every 1.5 %, a terminal needs far fewer redraws

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self._label = label
        self._total = total
        self._stream = stream
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._fraction = 0.0
        self._draw()

    def update(self, fraction: float) -> None:
        self._fraction = min(max(fraction, self._fraction), 1.0)
        now = time.monotonic()
        if now - self._last_draw >= self._MIN_REDRAW:
            self._draw(now)

    def finish(self, completed: bool = True) -> None:
        if completed:
            self._fraction = 1.0
        self._draw()
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._last_draw = now
        elapsed = now - self._start
        done = self._fraction * self._total
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self._total - done) / rate if rate > 0 else None
        tail = (
            f" {self._fraction * 100:3.0f}%  {_mib(done)}/{_mib(self._total)} MiB"
            f"  {rate / 2**20:5.0f} MiB/s  {_clock(left)}"
        )
        width = max(10, min(40, shutil.get_terminal_size().columns - len(self._label) - len(tail) - 4))
        filled = int(width * self._fraction)
        bar = "#" * filled + "." * (width - filled)
        self._stream.write(f"\r{self._label} [{bar}]{tail}")
        self._stream.flush()


def terminal_progress(stream: TextIO) -> ProgressFactory:
    """A factory drawing on ``stream`` if it is a terminal, else :data:`NO_PROGRESS`."""
    if not stream.isatty():
        return NO_PROGRESS

    def factory(label: str, total: int) -> Progress:
        return TerminalProgress(label, total, stream)

    return factory


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--:-- left"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02}:{s % 60:02} left"
