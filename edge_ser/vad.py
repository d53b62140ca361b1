"""Voice activity detection: which 10 ms frames of a waveform hold speech (C: `edge_ser._vad`).

The detector always works on the default log-mel (`FeatureConfig()`: 64 mels, 10 ms hop, no
normalisation), whatever features a model uses. Two stages:
  1. causal, frame by frame: each band's log power is compared with a per-band noise floor
     (a low running quantile of that band, tracked without looking at the decision, so a wrong
     decision cannot lock it); the mean positive SNR over the speech band (SPEECH_BAND_HZ),
     smoothed over frames, must pass SNR_THRESHOLD_DB, and flat, noise-like spectra must pass
     STRONG_SNR_DB instead;
  2. smoothing of the decisions: bursts shorter than MIN_SPEECH dropped, HANGOVER added, gaps
     shorter than MIN_GAP bridged, onsets moved PRE_ROLL earlier.
Parameters were tuned on EmoDB, clean and with noise at 10 dB SNR: `benchmarks/vad_accuracy.py`.

`StreamingVAD` gives the same decisions as `speech_frames(log_mel(audio))` from audio fed chunk
by chunk in bounded memory: the log-mel frames are computed as the whole signal's, the frame
stage keeps its C state between chunks, and the smoothing stage runs on a sliding buffer of
decisions, so a frame is final MIN_SPEECH + MIN_GAP + PRE_ROLL (+ one frame) after it arrives.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _vad, features, reference
from .config import FRAMES_PER_SECOND, SAMPLE_RATE, FeatureConfig
from .errors import AudioError

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
SMOOTHING_PARAMS = ("hangover", "min_gap", "min_speech", "pre_roll")  # stage 2's, in seconds


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
    log_mel = _checked_log_mel(log_mel)
    p = _frame_params(params)
    band_lo, band_hi = _speech_bands()
    speech = np.zeros(log_mel.shape[1], dtype=np.bool_)
    _vad.detect(log_mel, speech, None, band_lo=band_lo, band_hi=band_hi, **p)
    return speech


def _checked_log_mel(log_mel: np.ndarray) -> np.ndarray:
    """float32 C-contiguous [n_mels, n_frames] of VAD_CONFIG, or ValueError."""
    log_mel = np.ascontiguousarray(log_mel, dtype=np.float32)
    if log_mel.ndim != 2 or log_mel.shape[0] != VAD_CONFIG.n_mels:
        raise ValueError(
            f"log_mel must be [{VAD_CONFIG.n_mels}, n_frames], got shape {log_mel.shape}"
        )
    if not np.isfinite(log_mel).all():
        raise ValueError("log_mel contains NaN or infinite values")
    return log_mel


def _frame_params(params: dict) -> dict:
    """`default_params()` overridden by `params`, the smoothing times converted to frames."""
    unknown = sorted(set(params) - set(default_params()))
    if unknown:
        raise TypeError(f"unknown VAD parameters {unknown}")
    p = {**default_params(), **params}
    for name in SMOOTHING_PARAMS:
        p[name] = _frames(p[name])
    return p



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


# ---------------------------------------------------------------------------------------------
# Streaming


class LogMelStream:
    """The frames of `features.log_mel(whole signal, config)`, computed chunk by chunk.

    Frame t is centred on sample t * hop_length and needs n_fft // 2 samples either side, so it
    is complete once those have arrived; `finish` adds the end's padding for the rest.
    Each call runs the extractor on the samples still needed, cut on a hop boundary at least
    n_fft // 2 before the first frame wanted, so every frame equals the whole signal's.
    Memory: one chunk plus n_fft samples.
    """

    def __init__(self, config: FeatureConfig = VAD_CONFIG):
        if config.normalize != "none":
            raise ValueError(f"LogMelStream needs normalize='none', got {config.normalize!r} "
                             "(a per-call normalisation needs the whole signal)")
        self.config = config
        self.half = config.n_fft // 2
        self.lead = -(-self.half // config.hop_length)  # frames whose window starts before a cut
        self.samples = np.zeros(0, np.float32)
        self.first_sample = 0  # absolute index of samples[0], a multiple of hop_length
        self.next_frame = 0  # first frame not returned yet
        self.n_samples = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """float32 [samples] -> log-mel float32 [n_mels, frames completed by them]."""
        audio = np.asarray(audio, dtype=np.float32)
        self.samples = np.concatenate([self.samples, audio])
        self.n_samples += len(audio)
        complete = (self.n_samples - self.half) // self.config.hop_length + 1
        # drop_last_frame: a frame whose window has arrived may still not be one of the signal's.
        return self._frames(min(complete, self.config.n_frames(self.n_samples)))

    def finish(self) -> np.ndarray:
        """The remaining frames, float32 [n_mels, frames] (config.n_frames(n_samples) in all)."""
        return self._frames(self.config.n_frames(self.n_samples))

    def _frames(self, end: int) -> np.ndarray:
        if end <= self.next_frame:
            return np.zeros((self.config.n_mels, 0), np.float32)
        hop = self.config.hop_length
        first = self.first_sample // hop  # frame of the extractor's output column 0
        columns = features.log_mel(self.samples, self.config)[:, self.next_frame - first : end - first]
        self.next_frame = end
        keep_from = max(0, (end - self.lead) * hop)
        self.samples = self.samples[keep_from - self.first_sample :]
        self.first_sample = keep_from
        return np.ascontiguousarray(columns)


class SmoothingStream:
    """The smoothing stage (`_vad.smooth`) on a decision stream, fed in pieces.

    Smoothing is local: a frame's final value depends on at most min_speech + min_gap +
    pre_roll frames after it (`lookahead`) and min_speech + hangover + min_gap + pre_roll
    before it (`context`). Each `push` smooths the buffer [context | new frames | lookahead]
    and returns the frames whose value can no longer change, so the output equals smoothing
    the whole sequence at once. Times are in frames.
    """

    def __init__(self, hangover: int, min_gap: int, min_speech: int, pre_roll: int):
        self.params = dict(hangover=hangover, min_gap=min_gap, min_speech=min_speech, pre_roll=pre_roll)
        self.lookahead = min_speech + min_gap + pre_roll + 1
        self.context = min_speech + hangover + min_gap + pre_roll + 1
        self.raw = np.zeros(0, np.uint8)  # raw decisions from frame `raw_start` on
        self.raw_start = 0
        self.done = 0  # frames returned so far

    def push(self, raw: np.ndarray) -> np.ndarray:
        """uint8/bool [frames] raw decisions -> bool [frames now final] smoothed decisions."""
        self.raw = np.concatenate([self.raw, np.asarray(raw, dtype=np.uint8)])
        return self._emit(self.raw_start + len(self.raw) - self.lookahead)

    def finish(self) -> np.ndarray:
        """bool [the rest]: the stream's end is the sequence's end."""
        return self._emit(self.raw_start + len(self.raw))

    def _emit(self, end: int) -> np.ndarray:
        if end <= self.done:
            return np.zeros(0, np.bool_)
        smoothed = self.raw.copy()
        _vad.smooth(smoothed, **self.params)
        out = smoothed[self.done - self.raw_start : end - self.raw_start].view(np.bool_)
        self.done = end
        drop = max(0, end - self.context - self.raw_start)
        self.raw, self.raw_start = self.raw[drop:], self.raw_start + drop
        return out


class StreamingVAD:
    """`speech_frames` on audio that arrives chunk by chunk, in bounded memory.

        vad = StreamingVAD()
        for chunk in chunks:            # mono float32 at 16 kHz, any lengths
            speech = vad.push(chunk)    # bool [frames now final], continuing the last call
        speech = vad.finish()           # bool [the rest]

    Concatenated, the outputs equal `speech_frames(features.log_mel(all audio, VAD_CONFIG),
    **params)`. A frame is final `lookahead_seconds` (plus half an FFT window) after its
    audio has arrived. `params` as for `speech_frames` (times in seconds).
    """

    def __init__(self, **params):
        p = _frame_params(params)
        band_lo, band_hi = _speech_bands()
        smoothing = {name: p.pop(name) for name in SMOOTHING_PARAMS}
        self._mel = LogMelStream(VAD_CONFIG)
        self._frames = _vad.Stream(n_mels=VAD_CONFIG.n_mels, band_lo=band_lo, band_hi=band_hi, **p)
        self._smoothing = SmoothingStream(**smoothing)
        self.lookahead_seconds = self._smoothing.lookahead / FRAMES_PER_SECOND
        self.frames_done = 0  # frames returned so far

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Mono float32 [samples] at 16 kHz -> bool [frames now final]. AudioError for NaN/inf."""
        return self._count(self._smoothing.push(self._raw(self._mel.push(_checked_chunk(audio)))))

    def finish(self) -> np.ndarray:
        """bool [the remaining frames]: the audio has ended."""
        last = self._smoothing.push(self._raw(self._mel.finish()))
        return self._count(np.concatenate([last, self._smoothing.finish()]))

    def _raw(self, log_mel: np.ndarray) -> np.ndarray:
        """log-mel [n_mels, frames] -> uint8 [frames] raw decisions of the causal frame stage."""
        raw = np.zeros(log_mel.shape[1], np.uint8)
        if log_mel.shape[1]:
            self._frames.feed(_checked_log_mel(log_mel), raw)
        return raw

    def _count(self, speech: np.ndarray) -> np.ndarray:
        self.frames_done += len(speech)
        return speech


def _checked_chunk(audio: np.ndarray) -> np.ndarray:
    """Mono float32 [samples] with only finite values, or AudioError."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"<stream>: audio chunks must be mono [samples], got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError("<stream>: audio contains NaN or infinite samples")
    return audio
