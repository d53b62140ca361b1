"""Benchmark inputs made here, so the suites need no corpus: noise for the feature paths (their
cost does not depend on content) and the synthetic speech-like example of `examples/make_clip.py`
for the VAD and end-to-end runs (whose windowing follows the speech)."""
from __future__ import annotations

import functools
import importlib.util
import pathlib

import numpy as np

SAMPLE_RATE = 16000
REPO = pathlib.Path(__file__).resolve().parents[1]
MAKE_CLIP = REPO / "examples" / "make_clip.py"


def data_root() -> pathlib.Path:
    """The corpora's folder, as every command finds it (train.data.default_data_root)."""
    from train.data import default_data_root

    return default_data_root()


def emodb_windows(recognizer, n_clips: int) -> np.ndarray | None:
    """The first window of each of the first `n_clips` EmoDB clips (by name), as `recognizer`'s
    model is fed it: log-mel [n_clips, n_mels, frames]; None without the corpus."""
    from edge_ser.audio import load_audio

    wavs = sorted((data_root() / "emodb" / "wav").glob("*.wav"))[:n_clips]
    if not wavs:
        return None
    return np.concatenate([recognizer.log_mel_windows(load_audio(p, recognizer.sample_rate), 1) for p in wavs])


def noise(seconds: float) -> np.ndarray:
    """Speech-band noise with a slow 3 Hz envelope: float32 [seconds * 16000], seeded."""
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    envelope = 0.5 + 0.5 * np.sin(np.arange(n) * 2 * np.pi * 3 / SAMPLE_RATE)
    return (0.1 * envelope * rng.normal(size=n)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _make_clip():
    # examples/ is a folder of scripts, not a package: load the README's clip maker by its path.
    spec = importlib.util.spec_from_file_location("make_clip", MAKE_CLIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def _example() -> np.ndarray:
    return _make_clip().synthetic_speech()


def speech(seconds: float) -> np.ndarray:
    """The synthetic speech-like example, repeated or cut to float32 [seconds * 16000]."""
    x = _example()
    n = int(seconds * SAMPLE_RATE)
    return np.ascontiguousarray(np.tile(x, -(-n // len(x)))[:n])


def write_wav(path: pathlib.Path, x: np.ndarray) -> pathlib.Path:
    """float32 [samples] -> 16-bit mono PCM WAV at 16 kHz (the clip maker's writer)."""
    return _make_clip().write_wav(path, x, SAMPLE_RATE)
