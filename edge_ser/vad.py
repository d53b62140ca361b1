"""Voice activity detection: which 10 ms frames of a waveform hold speech (C: `edge_ser._vad`).

The detector always works on the default log-mel (`FeatureConfig()`: 64 mels, 10 ms hop, no
normalisation), whatever features a model uses. Two stages:
  1. causal, frame by frame: each band's log power is compared with a per-band noise floor
     (a low running quantile of that band, tracked without looking at the decision, so a wrong
     decision cannot lock it); the mean positive SNR over the speech band (SPEECH_BAND_HZ),
     smoothed over frames, must pass SNR_THRESHOLD_DB, and flat, noise-like spectra must pass
     STRONG_SNR_DB instead;
  2. smoothing of the decisions: bursts shorter than MIN_SPEECH dropped, HANGOVER added, gaps
     shorter than MIN_GAP bridged, onsets moved PRE_ROLL earlier. Streaming, this stage needs
     max(MIN_SPEECH, MIN_GAP, PRE_ROLL) of lookahead.
Parameters were tuned on EmoDB, clean and with noise at 10 dB SNR: `benchmarks/vad_accuracy.py`.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _vad, features, reference
from .config import FRAMES_PER_SECOND, SAMPLE_RATE, FeatureConfig

VAD_CONFIG = FeatureConfig()  # the VAD's own features, independent of any model's
SPEECH_BAND_HZ = (250.0, 4000.0)  # mel bands centred in this range are scored
SNR_THRESHOLD_DB = 4.0  # smoothed speech-band SNR over the noise floor that counts as speech
SCORE_SMOOTHING = 0.85  # one-pole smoothing of that SNR per frame: steadier in noise, lags a bit
BAND_SMOOTHING = 0.0  # one-pole smoothing of each band's log power (off: no gain on EmoDB)
FLATNESS_MAX_DB = -2.0  # flatter (more noise-like) frames need STRONG_SNR_DB to count
STRONG_SNR_DB = 8.0
FLOOR_RISE_DB = 0.3  # dB per frame the per-band noise floor may rise ...
FLOOR_FALL_DB = 2.0  # ... and fall: it tracks the 0.3 / 2.3 = 13 % quantile of each band
MIN_LEVEL_DB = -90.0  # speech-band mean log power below this (digital silence) is never speech
MIN_SPEECH = 0.05  # seconds: shorter raw speech bursts are dropped
HANGOVER = 0.05  # seconds each speech run is held past its end
# Seconds: shorter pauses are bridged. EmoDB's reference marks no pauses, so F1 there keeps
# rising up to ~1 s (+0.002); 0.4 s keeps real pauses between phrases apart.
MIN_GAP = 0.4
PRE_ROLL = 0.02  # seconds each speech run starts earlier (onsets begin below the threshold)


def _frames(seconds: float) -> int:
    """Seconds -> whole 10 ms frames."""
    return int(round(seconds * FRAMES_PER_SECOND))


@functools.lru_cache(maxsize=1)
def _speech_bands(config: FeatureConfig = VAD_CONFIG) -> tuple[int, int]:
    """Mel band range [lo, hi) whose centre frequencies lie in SPEECH_BAND_HZ."""
    mel_range = reference.hz_to_mel(config.fmin), reference.hz_to_mel(config.fmax)
    edges = reference.mel_to_hz(np.linspace(*mel_range, config.n_mels + 2))
    centres = edges[1:-1]
    inside = np.flatnonzero((centres >= SPEECH_BAND_HZ[0]) & (centres <= SPEECH_BAND_HZ[1]))
    return int(inside[0]), int(inside[-1]) + 1


def default_params() -> dict:
    """The detector's parameters as keyword arguments of `speech_frames` (times in seconds)."""
    return dict(
        snr_threshold_db=SNR_THRESHOLD_DB,
        band_smoothing=BAND_SMOOTHING,
        score_smoothing=SCORE_SMOOTHING,
        flatness_max_db=FLATNESS_MAX_DB,
        strong_snr_db=STRONG_SNR_DB,
        floor_rise_db=FLOOR_RISE_DB,
        floor_fall_db=FLOOR_FALL_DB,
        min_level_db=MIN_LEVEL_DB,
        hangover=HANGOVER,
        min_gap=MIN_GAP,
        min_speech=MIN_SPEECH,
        pre_roll=PRE_ROLL,
    )


def speech_frames(log_mel: np.ndarray, **params) -> np.ndarray:
    """log-mel [n_mels, n_frames] of `VAD_CONFIG` -> bool [n_frames], True where speech.

    `params` override `default_params()` (times in seconds)."""
    log_mel = np.ascontiguousarray(log_mel, dtype=np.float32)
    if log_mel.ndim != 2 or log_mel.shape[0] != VAD_CONFIG.n_mels:
        raise ValueError(
            f"log_mel must be [{VAD_CONFIG.n_mels}, n_frames], got shape {log_mel.shape}"
        )
    if not np.isfinite(log_mel).all():
        raise ValueError("log_mel contains NaN or infinite values")
    unknown = sorted(set(params) - set(default_params()))
    if unknown:
        raise TypeError(f"unknown VAD parameters {unknown}")
    p = {**default_params(), **params}
    for name in ("hangover", "min_gap", "min_speech", "pre_roll"):
        p[name] = _frames(p[name])
    band_lo, band_hi = _speech_bands()
    speech = np.zeros(log_mel.shape[1], dtype=np.bool_)
    _vad.detect(log_mel, speech, None, band_lo=band_lo, band_hi=band_hi, **p)
    return speech


def frames_to_segments(speech: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """bool [n_frames] -> [(start_s, end_s)]: frame t covers [t, t + 1) hops, ends <= duration."""
    padded = np.concatenate([[False], np.asarray(speech, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    hop = 1.0 / FRAMES_PER_SECOND
    starts, ends = edges[::2], edges[1::2]
    return [(float(a * hop), float(min(b * hop, duration))) for a, b in zip(starts, ends)]


def speech_segments(
    audio: np.ndarray, *, min_speech: float = MIN_SPEECH, min_gap: float = MIN_GAP, **params
) -> list[tuple[float, float]]:
    """Mono float32 [samples] at 16 kHz -> speech segments [(start_s, end_s)] in seconds.

    min_speech, min_gap (seconds) and the other `default_params()` keywords (hangover,
    snr_threshold_db, ...) tune the detector. Raises AudioError for NaN/inf or non-mono audio."""
    log_mel = features.log_mel(audio, VAD_CONFIG)
    speech = speech_frames(log_mel, min_speech=min_speech, min_gap=min_gap, **params)
    return frames_to_segments(speech, len(audio) / SAMPLE_RATE)
