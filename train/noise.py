"""Speech in recorded noise: waveforms mixed at a set signal-to-noise ratio, to test in noise
(`train.degraded`) and to train for it (`train.copies`).

SNR here is the ratio of mean powers over the whole fixed-length clip, silences and zero padding
included (what a microphone gets is the clip as it is). Test noise and training noise come from
different folders (../shared/data/noise: household recordings to test, the Speech Commands
background clips to train), so no test noise is heard in training.
"""
from __future__ import annotations

import hashlib
import pathlib
import zlib

import numpy as np

from .data import audio_files, read_audio


def noise_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The audio files under `folder`, sorted (so a seed picks the same ones everywhere)."""
    folder = pathlib.Path(folder)
    paths = audio_files(folder) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"{folder}: no .wav/.flac noise files")
    return paths


def noise_segment(noise: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """[n_samples] from a random offset of `noise` [samples], looped when it is shorter."""
    if len(noise) < n_samples:
        noise = np.tile(noise, -(-n_samples // len(noise)))
    start = int(rng.integers(0, len(noise) - n_samples + 1))
    return noise[start : start + n_samples]


def load_noises(folder: pathlib.Path) -> list[np.ndarray]:
    """Every noise recording under `folder`, float32 [samples] at 16 kHz, in `noise_files` order."""
    return [read_audio(p) for p in noise_files(folder)]


def draw_noise(noises: list[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """[n_samples] of a random recording at a random offset."""
    return noise_segment(noises[int(rng.integers(len(noises)))], n_samples, rng)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """float32 [samples]: `speech` plus `noise` (same length) scaled so that the ratio of their
    mean powers is `snr_db` decibels."""
    speech_power = float(np.mean(speech.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-20)
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def clip_rng(seed: int, clip: pathlib.Path) -> np.random.Generator:
    """The random stream of one clip's noise: from a seed and the clip's file name, so a clip
    gets the same noise whichever run, fold or corpus order asks."""
    return np.random.default_rng([seed, zlib.crc32(pathlib.Path(clip).name.encode())])


def file_digests(paths: list[pathlib.Path]) -> set[str]:
    """SHA-256 of each file's bytes: the same recording under two names is one recording."""
    return {hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest() for p in paths}
