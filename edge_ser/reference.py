"""Pure-numpy reference of the feature definition in `edge_ser.config.FeatureConfig`.

Float64 throughout. The C extractor (`edge_ser.features`) must agree with it to 1e-4 (max abs,
log domain); it also builds the window, filterbank and DCT tables the C code is given, so the
two can only differ in the arithmetic, never in the definition.
"""
from __future__ import annotations

import numpy as np

from .config import WHISPER_OFFSET, WHISPER_RANGE, WHISPER_SCALE, FeatureConfig

NUMPY_PAD_MODES = {"zero": "constant", "reflect": "reflect"}  # FeatureConfig.pad -> numpy.pad mode
LOGS = {"ln": np.log, "log10": np.log10}


def hann_window(config: FeatureConfig) -> np.ndarray:
    """Periodic Hann window of win_length, zero-padded (centred) to n_fft. Shape [n_fft]."""
    n = np.arange(config.win_length)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / config.win_length)
    left = (config.n_fft - config.win_length) // 2
    out = np.zeros(config.n_fft)
    out[left : left + config.win_length] = w
    return out


def hz_to_mel(hz):
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_edges_hz(config: FeatureConfig) -> np.ndarray:
    """The filters' corner frequencies in Hz, equally spaced in mel: [n_mels + 2]; filter m rises
    from edges[m] to its centre edges[m + 1] and falls to edges[m + 2]."""
    return mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2))


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Slaney-normalised triangular mel filters. Shape [n_mels, n_fft // 2 + 1], float64."""
    n_bins = config.n_fft // 2 + 1
    fft_hz = np.linspace(0, config.sample_rate / 2, n_bins)
    edges = mel_edges_hz(config)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    # Slaney norm: each filter has unit area in Hz, so bands carry comparable energy.
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II rows. Shape [n_mfcc, n_mels]; equals scipy.fft.dct(norm='ortho')."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    m[0] /= np.sqrt(2.0)
    return m


def frames(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Centred frames, padded as config.pad says. [samples] -> [n_frames, n_fft], float64."""
    n = config.n_frames(len(audio))
    if n == 0:
        return np.zeros((0, config.n_fft))
    # n_samples + n_fft padded samples: the last frame, (n_samples // hop) * hop + n_fft, fits.
    padded = np.pad(np.asarray(audio, dtype=np.float64), config.n_fft // 2, mode=NUMPY_PAD_MODES[config.pad])
    idx = np.arange(n)[:, None] * config.hop_length + np.arange(config.n_fft)[None, :]
    return padded[idx]


def power_spectrum(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """|rfft(window * frame)|^2. [samples] -> [n_frames, n_fft // 2 + 1], float64."""
    return np.abs(np.fft.rfft(frames(audio, config) * hann_window(config), axis=-1)) ** 2


def normalize_utterance(log_mel: np.ndarray) -> np.ndarray:
    """Per-band zero mean, unit variance over frames. [n_mels, frames] -> same."""
    mean = log_mel.mean(axis=1, keepdims=True)
    std = np.maximum(log_mel.std(axis=1, keepdims=True), 1e-5)
    return (log_mel - mean) / std


def normalize_whisper(log_mel: np.ndarray) -> np.ndarray:
    """Whisper's: clamp to WHISPER_RANGE below the maximum over all bands and frames, then
    (x + WHISPER_OFFSET) / WHISPER_SCALE. [n_mels, frames] log10 mel power -> same."""
    if log_mel.size == 0:
        return log_mel
    return (np.maximum(log_mel, log_mel.max() - WHISPER_RANGE) + WHISPER_OFFSET) / WHISPER_SCALE


NORMALIZERS = {"none": lambda x: x, "utterance": normalize_utterance, "whisper": normalize_whisper}


def log_mel(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Log-mel spectrogram. [samples] at config.sample_rate -> [n_mels, n_frames], float64."""
    mel = mel_filterbank(config) @ power_spectrum(audio, config).T
    out = LOGS[config.log](np.maximum(mel, config.log_floor))
    return NORMALIZERS[config.normalize](out)


def mfcc(audio: np.ndarray, config: FeatureConfig = FeatureConfig(), n_mfcc: int = 20) -> np.ndarray:
    """MFCC = orthonormal DCT-II of log_mel over bands. -> [n_mfcc, n_frames], float64."""
    return dct_matrix(n_mfcc, config.n_mels) @ log_mel(audio, config)
