"""Per-window latency on this machine (`edge-ser bench`): what a board owner runs to see how
fast the packaged models are there, with nothing beyond the runtime's dependencies.

Each model gets one 3-s window (BENCH_SECONDS, the window the model cards' latency is measured
on; models with a static frame axis get theirs) of seeded speech-band noise, on one thread:
WARMUP untimed calls, then `runs` timed ones of
  - inference: the model session on the window's log-mel [1, n_mels, frames] (as the cards);
  - window: the C log-mel of the window's samples plus inference (the work behind `edge-ser
    stream`'s latency_ms, which times the model's own window, 2 s for the packaged models).
Reported as p50 / p95 in milliseconds, p95 being the sorted times' element int(0.95 (n - 1)).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Callable

import numpy as np

BENCH_SECONDS = 3.0
WARMUP = 10
DEFAULT_RUNS = 200
COLUMNS = ("model", "file", "input", "runs", "inference p50 ms", "inference p95 ms", "window p50 ms",
           "window p95 ms")


@dataclasses.dataclass(frozen=True)
class BenchRow:
    """One model's timings in ms (p50, p95) over `runs` calls on a `seconds`-long window."""

    model: str
    file: str
    seconds: float
    runs: int
    inference: tuple[float, float]
    window: tuple[float, float]

    def cells(self) -> list[str]:
        return [self.model, self.file, f"{self.seconds:.2f} s, 1 thread", str(self.runs),
                *(f"{ms:.2f}" for ms in (*self.inference, *self.window))]


def percentiles(times_ms: list[float]) -> tuple[float, float]:
    """Call times in ms -> (p50, p95), as the model cards compute them."""
    ordered = sorted(times_ms)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def time_calls(call: Callable[[], object], runs: int, warmup: int = WARMUP) -> list[float]:
    """Wall time in ms of `runs` calls of `call`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return times


def bench_audio(n_samples: int) -> np.ndarray:
    """Seeded speech-band noise, float32 [n_samples]: latency does not depend on the content."""
    return (0.1 * np.random.default_rng(0).normal(size=n_samples)).astype(np.float32)


def bench_model(name: str, recognizer, runs: int = DEFAULT_RUNS, warmup: int = WARMUP) -> BenchRow:
    """`name` and its Recognizer (open it with threads=1) -> its BenchRow."""
    from . import features

    n_samples = recognizer.fixed_samples or recognizer.config.n_samples(BENCH_SECONDS)
    audio = bench_audio(n_samples)
    log_mel = features.log_mel(audio, recognizer.config)[None]

    def window():
        return recognizer.session(features.log_mel(audio, recognizer.config)[None])

    inference = percentiles(time_calls(lambda: recognizer.session(log_mel), runs, warmup))
    whole = percentiles(time_calls(window, runs, warmup))
    return BenchRow(name, os.path.basename(recognizer.session.path), n_samples / recognizer.sample_rate,
                    runs, inference, whole)


def table(rows: list[BenchRow]) -> list[list[str]]:
    """Rows -> the table's lines as cells, header first (edge_ser.outputs.write_columns)."""
    return [list(COLUMNS)] + [row.cells() for row in rows]
