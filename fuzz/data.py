"""Reading structured choices out of a fuzz input's bytes.

The targets are plain functions of bytes, engine-agnostic: libFuzzer (through atheris) or the
seeded fallback mutator chooses the bytes, and `ByteReader` turns them into parameters, so the same
input always means the same case. Running out of bytes gives the smallest value, never an error.
"""
from __future__ import annotations

import numpy as np


_note_hook = None  # set by the atheris engine: turns a note into coverage feedback


def note(*key) -> None:
    """Tell the coverage-guided engine which kind of case this is (a config's shape, a parameter's
    range): libFuzzer keeps an input that reaches a new kind, so the corpus spreads over configs
    whose differences live in numpy and C, where line coverage cannot see them."""
    if _note_hook is not None:
        _note_hook(key)


def bucket(value: float) -> int:
    """A coarse, logarithmic class of a non-negative number, for `note`."""
    return int(value).bit_length()


class ByteReader:
    """Consumes a bytes object from the front: small integers, choices, floats, then the rest."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, n_bytes: int) -> int:
        """An unsigned little-endian integer of n_bytes (missing bytes read as 0)."""
        return sum(self.byte() << (8 * i) for i in range(n_bytes))

    def int_in(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], using as few bytes as the span needs."""
        span = hi - lo
        if span <= 0:
            return lo
        n_bytes = (span.bit_length() + 7) // 8
        return lo + self.uint(n_bytes) % (span + 1)

    def choice(self, options):
        return options[self.int_in(0, len(options) - 1)]

    def unit(self) -> float:
        """A float in [0, 1] from two bytes."""
        return self.uint(2) / 0xFFFF

    def float_in(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def audio(self, max_samples: int) -> np.ndarray:
        """float32 [samples] from the remaining bytes, in a format the first byte picks:
        16-bit PCM scaled to [-1, 1), raw float32 (NaN, inf and huge values included: the runtime
        must refuse or survive them), or 8-bit steps scaled down to near-silence (deep spectral
        nulls, the floor of the log)."""
        mode = self.byte() % 3
        raw = self.rest()
        if mode == 0:
            x = np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float32) / 32768
        elif mode == 1:
            x = np.frombuffer(raw[: len(raw) // 4 * 4], "<f4").astype(np.float32)
        else:
            x = (np.frombuffer(raw, np.int8).astype(np.float32) * 1e-6)
        return np.ascontiguousarray(x[:max_samples])

