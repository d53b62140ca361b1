"""The same log-mel definition (edge_ser.config.FeatureConfig) in each library a user might pick,
for side-by-side timing. Each takes float32 [samples] at 16 kHz and returns [n_mels, frames].
Two feature sets: the default (`IMPLEMENTATIONS`) and Whisper's (`WHISPER_IMPLEMENTATIONS`)."""
from __future__ import annotations

import functools

import numpy as np

from edge_ser import features, reference
from edge_ser.config import WHISPER_FEATURES, WHISPER_OFFSET, WHISPER_RANGE, WHISPER_SCALE, FeatureConfig

CONFIG = FeatureConfig()
WHISPER = WHISPER_FEATURES


@functools.lru_cache(maxsize=None)
def _tables(dtype=np.float32):
    left = (CONFIG.n_fft - CONFIG.win_length) // 2
    window = reference.hann_window(CONFIG)[left : left + CONFIG.win_length].astype(dtype)
    return window, np.ascontiguousarray(reference.mel_filterbank(CONFIG).T.astype(dtype))


def _frames(x: np.ndarray) -> np.ndarray:
    """Centred frames, windowed span only: [frames, win_length] (a view, no copy)."""
    left = (CONFIG.n_fft - CONFIG.win_length) // 2
    padded = np.pad(x, CONFIG.n_fft // 2)
    view = np.lib.stride_tricks.sliding_window_view(padded, CONFIG.n_fft)[:: CONFIG.hop_length]
    return view[: CONFIG.n_frames(len(x)), left : left + CONFIG.win_length]


def scipy_fft(x: np.ndarray) -> np.ndarray:
    """The fastest numpy path found: float32 frames, scipy.fft.rfft (pocketfft), BLAS filterbank.
    Zero-padding at the end instead of centring the window changes only the phase, not the power."""
    import scipy.fft

    window, fb = _tables()
    spec = scipy.fft.rfft(_frames(x) * window, n=CONFIG.n_fft, axis=-1, workers=1)
    power = spec.real**2 + spec.imag**2
    return np.log(np.maximum(power @ fb, CONFIG.log_floor)).T


def numpy_fft(x: np.ndarray) -> np.ndarray:
    window, fb = _tables()
    spec = np.fft.rfft(_frames(x) * window, n=CONFIG.n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    return np.log(np.maximum(power.astype(np.float32) @ fb, CONFIG.log_floor)).T


def librosa_mel(x: np.ndarray) -> np.ndarray:
    import librosa

    s = librosa.feature.melspectrogram(
        y=x, sr=CONFIG.sample_rate, n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length,
        win_length=CONFIG.win_length, window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=CONFIG.n_mels,
    )
    return np.log(np.maximum(s, CONFIG.log_floor))


@functools.lru_cache(maxsize=None)
def _kaldi_options():
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = CONFIG.sample_rate
    opts.frame_opts.frame_length_ms = 1000 * CONFIG.win_length / CONFIG.sample_rate
    opts.frame_opts.frame_shift_ms = 1000 * CONFIG.hop_length / CONFIG.sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.remove_dc_offset = False
    opts.frame_opts.preemph_coeff = 0.0
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = CONFIG.n_mels
    opts.use_power = True
    return opts


def kaldi_fbank(x: np.ndarray) -> np.ndarray:
    """kaldi-native-fbank's Python API: Kaldi's own framing and HTK mel scale, so its values
    differ from ours; it is here for speed only."""
    import kaldi_native_fbank as knf

    fbank = knf.OnlineFbank(_kaldi_options())
    fbank.accept_waveform(CONFIG.sample_rate, x.tolist())
    fbank.input_finished()
    return np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).T


IMPLEMENTATIONS = {
    "edge_ser_c": features.log_mel,
    "edge_ser_c_generic": lambda x: _c_generic(x),
    "numpy_reference": lambda x: reference.log_mel(x, CONFIG),
    "scipy_fft": scipy_fft,
    "numpy_fft": numpy_fft,
    "librosa": librosa_mel,
    "kaldi_native_fbank": kaldi_fbank,
}
# What the target "C at most half the time of the best numpy/scipy implementation" compares with.
NUMPY_PATHS = ("numpy_reference", "scipy_fft", "numpy_fft")


def _c_generic(x: np.ndarray, config: FeatureConfig = CONFIG) -> np.ndarray:
    out = np.empty((config.n_mels, config.n_frames(len(x))), np.float32)
    features.extractor(config, kernel="generic").log_mel(x, out)
    return out


# --- Whisper's front end (WHISPER_FEATURES) ------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _whisper_tables(dtype=np.float32):
    """Window [n_fft] (win_length == n_fft: no zero ends to skip) and filterbank [bins, n_mels]."""
    return reference.hann_window(WHISPER).astype(dtype), np.ascontiguousarray(reference.mel_filterbank(WHISPER).T.astype(dtype))


def _whisper_frames(x: np.ndarray) -> np.ndarray:
    """Reflect-padded centred frames, the last one dropped: [samples // hop, n_fft] (a view)."""
    padded = np.pad(x, WHISPER.n_fft // 2, mode="reflect")
    view = np.lib.stride_tricks.sliding_window_view(padded, WHISPER.n_fft)[:: WHISPER.hop_length]
    return view[: WHISPER.n_frames(len(x))]


def _whisper_log(mel: np.ndarray) -> np.ndarray:
    """mel power [frames, n_mels] -> Whisper's normalised log10 [n_mels, frames]."""
    log = np.log10(np.maximum(mel, WHISPER.log_floor))
    return ((np.maximum(log, log.max() - WHISPER_RANGE) + WHISPER_OFFSET) / WHISPER_SCALE).T


def whisper_scipy_fft(x: np.ndarray) -> np.ndarray:
    """The fastest numpy path found, as `scipy_fft`: float32 frames, pocketfft rfft (n = 400, a
    mixed-radix length it handles natively), BLAS filterbank."""
    import scipy.fft

    window, fb = _whisper_tables()
    spec = scipy.fft.rfft(_whisper_frames(x) * window, axis=-1, workers=1)
    return _whisper_log((spec.real**2 + spec.imag**2) @ fb)


def whisper_numpy_fft(x: np.ndarray) -> np.ndarray:
    window, fb = _whisper_tables()
    spec = np.fft.rfft(_whisper_frames(x) * window, axis=-1)
    return _whisper_log((spec.real**2 + spec.imag**2).astype(np.float32) @ fb)


@functools.lru_cache(maxsize=None)
def _whisper_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor()


def whisper_transformers_numpy(x: np.ndarray) -> np.ndarray:
    """transformers' numpy path (what WhisperFeatureExtractor runs where torch is not installed),
    called directly so it neither pads to 30 s nor picks torch."""
    return _whisper_extractor()._np_extract_fbank_features(x[None], "cpu")[0]


WHISPER_IMPLEMENTATIONS = {
    "edge_ser_c": lambda x: features.log_mel(x, WHISPER),
    "edge_ser_c_generic": lambda x: _c_generic(x, WHISPER),
    "numpy_reference": lambda x: reference.log_mel(x, WHISPER),
    "scipy_fft": whisper_scipy_fft,
    "numpy_fft": whisper_numpy_fft,
    "transformers_numpy": whisper_transformers_numpy,
}
# What the target "C Whisper log-mel at most half the time of the best numpy/scipy path" compares with.
WHISPER_NUMPY_PATHS = ("numpy_reference", "scipy_fft", "numpy_fft", "transformers_numpy")
