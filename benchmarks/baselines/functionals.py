"""Utterance-level functionals of the runtime's own log-mel features, in the style of openSMILE's
sets (statistics of low-level descriptors and their deltas over an utterance), but computed from
`edge_ser.features.log_mel` alone: what a device could compute with no extra extractor.

Low-level descriptors per frame: each mel band's log energy, and their mean over bands (a
loudness proxy); each with its delta (regression over +-DELTA_WIDTH frames, as HTK/openSMILE).
Functionals per descriptor over the frames: FUNCTIONALS. Two differ from openSMILE's names:
"range" is p99 - p1 (robust to single frames), and "slope" is the least-squares slope per
standard deviation of the frame index (openSMILE: per frame), so on clips of equal length, as
here, it is a fixed multiple of the per-frame slope.
"""
from __future__ import annotations

import numpy as np

DELTA_WIDTH = 2
PERCENTILES = (1, 25, 50, 75, 99)
FUNCTIONALS = ("mean", "std", "skewness", "kurtosis", *(f"p{q}" for q in PERCENTILES), "iqr", "range", "slope")


def delta(x: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """Regression deltas along the last axis (frames), edges repeated: same shape as x."""
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(width, width)], mode="edge")
    frames = x.shape[-1]
    num = sum(k * (padded[..., width + k : width + k + frames] - padded[..., width - k : width - k + frames])
              for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def functionals(lld: np.ndarray) -> np.ndarray:
    """[N, D, frames] descriptors -> [N, D * len(FUNCTIONALS)] statistics over frames."""
    mean, std = lld.mean(-1), lld.std(-1)
    z = (lld - mean[..., None]) / np.maximum(std, 1e-8)[..., None]
    q = np.percentile(lld, PERCENTILES, axis=-1)  # [len(PERCENTILES), N, D]
    t = np.arange(lld.shape[-1], dtype=np.float64)
    t = (t - t.mean()) / (t.std() + 1e-12)
    slope = (lld * t).mean(-1)
    stats = [mean, std, (z ** 3).mean(-1), (z ** 4).mean(-1), *q, q[3] - q[1], q[4] - q[0], slope]
    return np.stack(stats, axis=-1).reshape(len(lld), -1)


def logmel_functionals(log_mel: np.ndarray) -> np.ndarray:
    """[N, n_mels, frames] log-mel -> [N, 2 * (n_mels + 1) * len(FUNCTIONALS)] float64."""
    x = log_mel.astype(np.float64)
    lld = np.concatenate([x, x.mean(axis=1, keepdims=True)], axis=1)
    return np.concatenate([functionals(lld), functionals(delta(lld))], axis=1)


ROLLOFFS = (0.25, 0.5, 0.75, 0.9)
SPECTRAL_LLDS = ("log_rms", "zcr", "log_band_250_650", "log_band_1000_4000", "centroid", "spread", "skewness",
                 "kurtosis", "entropy", "flux", "slope", *(f"rolloff{int(100 * r)}" for r in ROLLOFFS))


def spectral_descriptors(audio: np.ndarray) -> np.ndarray:
    """ComParE-style energy and spectral-shape descriptors per 25 ms / 10 ms frame from the runtime's
    own STFT (`edge_ser.reference.power_spectrum`): [samples] at 16 kHz -> [len(SPECTRAL_LLDS), frames]."""
    from edge_ser.config import FeatureConfig
    from edge_ser.reference import frames, power_spectrum

    config = FeatureConfig()
    power = power_spectrum(audio, config)  # [frames, bins]
    hz = np.fft.rfftfreq(config.n_fft, 1 / config.sample_rate)
    total = power.sum(1) + 1e-12
    p = power / total[:, None]
    centroid = p @ hz
    spread = np.sqrt(np.maximum(p @ hz ** 2 - centroid ** 2, 0)) + 1e-6
    zhz = (hz[None, :] - centroid[:, None]) / spread[:, None]
    raw = frames(audio, config)[:, config.n_fft // 2 - config.win_length // 2: config.n_fft // 2 + config.win_length // 2]
    magnitude = np.sqrt(power)
    unit = magnitude / (np.linalg.norm(magnitude, axis=1, keepdims=True) + 1e-12)
    cumulative = np.cumsum(p, axis=1)
    band = lambda lo, hi: np.log(power[:, (hz >= lo) & (hz < hi)].sum(1) + 1e-10)  # noqa: E731
    slope_x = (hz - hz.mean()) / hz.std()
    llds = [0.5 * np.log(total / config.n_fft + 1e-10),
            (np.abs(np.diff(np.sign(raw), axis=1)) > 0).mean(1),
            band(250, 650), band(1000, 4000), centroid / 1000, spread / 1000,
            (p * zhz ** 3).sum(1), (p * zhz ** 4).sum(1),
            -(p * np.log(p + 1e-12)).sum(1) / np.log(p.shape[1]),
            np.r_[0, np.linalg.norm(np.diff(unit, axis=0), axis=1)],
            np.log(power + 1e-10) @ slope_x / len(hz),
            *[hz[np.argmax(cumulative >= r, axis=1)] / 1000 for r in ROLLOFFS]]
    return np.stack(llds)


def spectral_functionals(audio: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
    """One clip's functionals of `spectral_descriptors` and MFCC 1..k ([k + 1, frames], the runtime's
    `edge_ser.features.mfcc`, c0 dropped) and their deltas -> [F] float64."""
    lld = spectral_descriptors(audio)
    n = min(lld.shape[1], mfcc.shape[1])
    lld = np.concatenate([lld[:, :n], mfcc[1:, :n]])[None]
    return np.concatenate([functionals(lld), functionals(delta(lld))], axis=1)[0]
