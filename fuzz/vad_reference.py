"""A numpy reading of the C voice-activity detector (edge_ser/_native/vad.c), for the fuzz target
that checks the C code against it.

Float64 where C uses float32, so the frame stage's cues agree within a tolerance, and its
decisions wherever no cue lies within that tolerance of its threshold; the smoothing stage is
integer work and must agree exactly.
"""
from __future__ import annotations

import dataclasses

import numpy as np

DB_PER_NEPER = 10 / np.log(10)  # natural-log power -> dB


@dataclasses.dataclass
class FrameCues:
    """Per frame, float64 [n_frames] each: the raw decision and the cues it was taken on (dB)."""

    speech: np.ndarray  # bool
    score_db: np.ndarray
    level_db: np.ndarray
    flatness_db: np.ndarray


def frame_stage(log_mel: np.ndarray, band_lo: int, band_hi: int, snr_threshold_db: float,
                band_smoothing: float, score_smoothing: float, flatness_max_db: float,
                strong_snr_db: float, floor_rise_db: float, floor_fall_db: float,
                min_level_db: float) -> FrameCues:
    """vad_run: log-mel [n_mels, n_frames] (natural log) -> the causal stage's cues per frame."""
    x = np.asarray(log_mel, np.float64)
    n_frames = x.shape[1]
    rise, fall = floor_rise_db / DB_PER_NEPER, floor_fall_db / DB_PER_NEPER
    smooth = noise = None
    score = 0.0
    out = {k: np.zeros(n_frames) for k in ("score_db", "level_db", "flatness_db")}
    for t in range(n_frames):
        a = band_smoothing if smooth is not None else 0.0
        smooth = x[:, t] if smooth is None else a * smooth + (1 - a) * x[:, t]
        if noise is None:
            noise = smooth.copy()
        band = smooth[band_lo:band_hi]
        snr_db = DB_PER_NEPER * np.maximum(band - noise[band_lo:band_hi], 0).mean()
        peak = band.max()
        log_mean = peak + np.log(np.exp(band - peak).mean())
        out["flatness_db"][t] = DB_PER_NEPER * (band.mean() - log_mean)
        out["level_db"][t] = DB_PER_NEPER * band.mean()
        score = score_smoothing * score + (1 - score_smoothing) * snr_db
        out["score_db"][t] = score
        noise = noise + np.clip(smooth - noise, -fall, rise)
    speech = ((out["level_db"] >= min_level_db) & (out["score_db"] >= snr_threshold_db)
              & ((out["flatness_db"] <= flatness_max_db) | (out["score_db"] >= strong_snr_db)))
    return FrameCues(speech, **out)


def near_threshold(cues: FrameCues, tol: np.ndarray, min_level_db: float, snr_threshold_db: float,
                   flatness_max_db: float, strong_snr_db: float) -> np.ndarray:
    """bool [n_frames]: frames where some cue is within `tol` dB of the threshold it meets, so
    float32 rounding may decide them either way."""
    return ((np.abs(cues.level_db - min_level_db) <= tol) | (np.abs(cues.score_db - snr_threshold_db) <= tol)
            | (np.abs(cues.flatness_db - flatness_max_db) <= tol) | (np.abs(cues.score_db - strong_snr_db) <= tol))


def _fill(speech: list, a: int, b: int, value: int) -> None:
    for t in range(a, b):
        speech[t] = value


def _remove_short_runs(speech: list, value: int, min_len: int, interior_only: bool) -> None:
    n, t = len(speech), 0
    while t < n:
        start = t
        while t < n and speech[t] == speech[start]:
            t += 1
        at_end = start == 0 or t == n
        if speech[start] == value and t - start < min_len and not (interior_only and at_end):
            _fill(speech, start, t, 1 - value)


def smooth(raw, hangover: int, min_gap: int, min_speech: int, pre_roll: int) -> np.ndarray:
    """vad_smooth: raw decisions [n] -> smoothed bool [n] (all times in frames)."""
    speech = [int(v) for v in raw]
    n = len(speech)
    _remove_short_runs(speech, 1, min_speech, False)
    for t in range(n - 1, 0, -1):  # backwards: frames it sets are not taken for new run ends
        if speech[t - 1] and not speech[t]:
            _fill(speech, t, min(t + hangover, n), 1)
    _remove_short_runs(speech, 0, min_gap, True)
    for t in range(1, n):
        if speech[t] and not speech[t - 1]:
            _fill(speech, max(t - pre_roll, 0), t, 1)
    return np.array(speech, dtype=bool)
