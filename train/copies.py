"""Degraded training copies of each clip (`--noise-train`, `--reverb-train`): the clip put in a
random simulated room and/or mixed with a random noise segment, made once per run on the
waveform and passed through the runtime's extractor. `loop.fit(noisy=...)` and the export
chain's students draw them in place of the clean clip with chance `--noise-p`.

With rooms and noise, each copy draws its noise first and its room after, so a run's copies with
noise alone are what they were before rooms existed; adding rooms moves the random stream on,
so from the second copy on the noise segments differ from a noise-only run's.
"""
from __future__ import annotations

import pathlib

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.features import log_mel

from .data import read_audio
from .features import fix_length
from .noise import clip_rng, draw_noise, load_noises, mix_at_snr
from .reverb import reverberate, room_impulse

# Rooms to train in: a spread of talker distances around the test rooms' 0 dB (train/reverb.py).
TRAIN_DRR_DB = (-3.0, 6.0)
# The run settings the copies are made from (what cards and reports record about them).
COPY_FIELDS = ("noise_train", "noise_snr", "reverb_train", "noise_p", "noise_copies")


def check_range(name: str, low_high: tuple[float, float], positive: bool = False) -> None:
    if len(low_high) != 2 or not low_high[0] <= low_high[1] or (positive and low_high[0] <= 0):
        raise ValueError(f"{name}: range {low_high} must be (low, high) with {'0 < ' if positive else ''}low <= high")


def training_copies(clips: list[pathlib.Path], config: FeatureConfig, seconds: float, copies: int, seed: int,
                    noise_dir: pathlib.Path | None = None, snr_db: tuple[float, float] = (0.0, 20.0),
                    rt60: tuple[float, float] | None = None) -> "torch.Tensor":
    """Log-mel [n_clips, copies, n_mels, frames]: each clip fixed to `seconds`, then `copies`
    times: in a room of RT60 uniform in `rt60` (s) and DRR uniform in TRAIN_DRR_DB when `rt60`
    is given, then mixed with a random segment of a random file of `noise_dir` at an SNR uniform
    in `snr_db` when `noise_dir` is given."""
    import torch  # here, so reports can read COPY_FIELDS without torch
    if noise_dir is None and rt60 is None or copies < 1:
        raise ValueError(f"training copies: need noise, rooms or both, and copies {copies} >= 1")
    check_range("noise SNR (dB)", snr_db)
    if rt60 is not None:
        check_range("room RT60 (s)", rt60, positive=True)
    noises, n_samples = (load_noises(noise_dir) if noise_dir is not None else None), config.n_samples(seconds)
    out = []
    for clip in clips:
        rng = clip_rng(seed, clip)
        speech = fix_length(read_audio(clip), n_samples)
        out.append(np.stack([log_mel(degraded_copy(speech, rng, config.sample_rate, noises, snr_db, rt60), config)
                             for _ in range(copies)]))
    return torch.from_numpy(np.stack(out))


def degraded_copy(speech: np.ndarray, rng: np.random.Generator, sample_rate: int, noises: list[np.ndarray] | None,
                  snr_db: tuple[float, float], rt60: tuple[float, float] | None) -> np.ndarray:
    # The noise is drawn first: a noise-only run's copies stay what they were before rooms existed.
    if noises is not None:
        noise, snr = draw_noise(noises, len(speech), rng), float(rng.uniform(*snr_db))
    if rt60 is not None:
        room_rt60, drr = float(rng.uniform(*rt60)), float(rng.uniform(*TRAIN_DRR_DB))
        speech = reverberate(speech, room_impulse(room_rt60, sample_rate, rng, drr))
    return speech if noises is None else mix_at_snr(speech, noise, snr)
