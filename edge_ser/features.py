"""Log-mel spectrogram and MFCC, computed by the C extractor (`edge_ser._features`).

The definition is `edge_ser.config.FeatureConfig`; `edge_ser.reference` implements the same in
numpy and builds the tables (window, mel filterbank, DCT) handed to C, so the two differ only in
arithmetic (agreement better than 1e-4, log domain). Training calls these very functions, so a
model on the device sees exactly the features it was trained on.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _features, reference
from .config import N_MFCC, FeatureConfig
from .errors import AudioError

DEFAULT_CONFIG = FeatureConfig()


@functools.lru_cache(maxsize=16)
def extractor(config: FeatureConfig, n_mfcc: int = 0, kernel: str = "auto") -> _features.Extractor:
    """The C extractor for `config` (cached: its tables are built once and shared).

    Any number of threads may compute with it at once; calling its `__init__` again while one
    does raises RuntimeError (it would free the tables they read), so build your own instead.

    kernel: "auto" (AVX2+FMA where the CPU has it, else the baseline SSE2/NEON build),
    "generic" or "avx2"; `.kernel` on the result says which one runs.
    """
    dct = reference.dct_matrix(n_mfcc, config.n_mels) if n_mfcc else None
    return _features.Extractor(
        config.n_fft,
        config.hop_length,
        reference.hann_window(config),
        np.ascontiguousarray(reference.mel_filterbank(config)),
        config.log_floor,
        config.normalize,
        dct,
        kernel,
        log=config.log,
        pad=config.pad,
        drop_last_frame=config.drop_last_frame,
    )


def _as_audio(audio) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"audio must be mono with shape [samples], got shape {audio.shape}")
    return audio


def _run(method, audio: np.ndarray, rows: int, config: FeatureConfig) -> np.ndarray:
    audio = _as_audio(audio)
    out = np.empty((rows, config.n_frames(len(audio))), dtype=np.float32)
    try:
        method(audio, out)
    except ValueError as e:
        raise AudioError(str(e)) from None
    return out


def log_mel(audio: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Log-mel spectrogram.

    audio: [samples] float, mono, at config.sample_rate (any length; empty gives 0 frames).
    Returns float32 [n_mels, config.n_frames(samples)]: 1 + samples // hop_length frames
    (samples // hop_length with drop_last_frame), log of mel power in config.log's base,
    normalised as config.normalize says.
    Raises AudioError for NaN/inf samples or a non-1-D array. Samples beyond +-2**31 (more
    than any reader of edge_ser.audio passes on) give finite but imprecise values.
    """
    return _run(extractor(config).log_mel, audio, config.n_mels, config)


def mfcc(audio: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCC: orthonormal DCT-II of `log_mel` over bands. Returns float32 [n_mfcc, n_frames]."""
    if not 1 <= n_mfcc <= config.n_mels:
        raise ValueError(f"n_mfcc must be in 1..{config.n_mels}, got {n_mfcc}")
    return _run(extractor(config, n_mfcc).mfcc, audio, n_mfcc, config)
