"""Speech in a reverberant room, simulated: a statistical room impulse response (Polack's model:
a direct path, then Gaussian noise whose energy decays exponentially) convolved with the clip.

No recorded impulse responses are on this machine, and an image-source simulator would be a
dependency for one test; the statistical model captures what reverberation does to a
log-mel spectrogram (energy smeared forward in time, by an amount set by RT60) but not the
early reflections of a particular room's geometry.
"""
from __future__ import annotations

import numpy as np

RT60S = (0.3, 0.6, 0.9)  # seconds: a furnished living room, an office, a bare kitchen or hall
DRR_DB = 0.0  # direct-to-reverberant energy ratio: a talker ~1-2 m from a far-field microphone
PREDELAY_S = 0.002  # the first reflections arrive a few ms after the direct sound


def room_impulse(rt60: float, sample_rate: int, rng: np.random.Generator, drr_db: float = DRR_DB) -> np.ndarray:
    """float32 [rt60 * sample_rate]: 1 at t = 0 (the direct path), then from PREDELAY_S on
    Gaussian noise whose energy falls 60 dB over `rt60` seconds, scaled so that the direct path
    has `drr_db` decibels more energy than the whole tail."""
    if not (np.isfinite(rt60) and rt60 > 0):
        raise ValueError(f"RT60 must be a positive number of seconds, got {rt60}")
    n = max(int(round(rt60 * sample_rate)), int(PREDELAY_S * sample_rate) + 2)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-3 * np.log(10) * t / rt60)  # amplitude; energy -60 dB at rt60
    tail[: int(PREDELAY_S * sample_rate)] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """float32 [samples]: `speech` [samples] convolved with `rir`, cut to the input's length (the
    tail past the window is lost, as it is for a device's window) and scaled back to the input's
    RMS level, so the comparison is of reverberation, not of loudness."""
    size = 1 << (len(speech) + len(rir) - 2).bit_length()
    wet = np.fft.irfft(np.fft.rfft(speech.astype(np.float64), size) * np.fft.rfft(rir.astype(np.float64), size),
                       size)[: len(speech)]
    level_in, level_out = np.sqrt(np.mean(speech.astype(np.float64) ** 2)), np.sqrt(np.mean(wet**2))
    return (wet * (level_in / level_out if level_out > 0 else 0.0)).astype(np.float32)
