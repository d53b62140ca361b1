"""A progress line on stderr for long batches (`edge-ser infer DIR > results.csv`).

Shown only where a person watches it and it cannot mix with the results: stderr is a terminal,
the results go to a file or a pipe (stdout is not that terminal, or --output), the batch has at
least MIN_FILES inputs, and --quiet is not given. The line is rewritten in place (carriage
return), at most every REFRESH_SECONDS, and cleared before any other message and at the end.
"""
from __future__ import annotations

import sys
import time

MIN_FILES = 10  # smaller batches finish before a progress line would help
REFRESH_SECONDS = 0.25


class Progress:
    """`update(done, name)` after each input, `clear()` before printing anything else to
    stderr, `finish()` at the end. Does nothing when not `enabled`."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown_at = float("-inf")  # the first update is shown at once
        self.width = 0

    @classmethod
    def for_batch(cls, total: int, quiet: bool, results_to_terminal: bool) -> "Progress":
        watched = sys.stderr is not None and sys.stderr.isatty() and not results_to_terminal
        return cls(total, enabled=watched and not quiet and total >= MIN_FILES)

    def update(self, done: int, name: str) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.shown_at < REFRESH_SECONDS and done < self.total):
            return
        self.shown_at = now
        rate = done / max(now - self.started, 1e-9)
        pace = f"{rate:.1f} files/s  {_duration((self.total - done) / rate)} left  " if done else ""
        self._show(f"[{done}/{self.total}] {100 * done // self.total} %  {pace}{name}")

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def finish(self) -> None:
        self.clear()

    def _show(self, text: str) -> None:
        text = text[:max(20, _columns() - 1)]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns
