"""Recognizer: audio in, emotion scores out, with the model's own feature definition.

    Recognizer(model=None, threads=1).predict("clip.wav")
        -> Prediction(label, scores, timeline, duration)

Audio up to SINGLE_WINDOW_FACTOR x the model's window goes through the model as one window.
Longer audio is cut into windows of `window_seconds` placed on the speech segments the VAD finds
(`edge_ser.vad.speech_segments`): a segment longer than one window gets windows about
WINDOW_HOP_FRACTION of a window apart, spread from its start to its end; a shorter segment
gets one window holding the segment, zero-padded to the window length (the EmoDB training clips
were zero-padded the same way, and equal lengths let all windows run as one batch). Long
audio in which the VAD finds no speech at all falls back to windows over the whole audio.
The overall scores are the mean of the windows' softmax scores weighted by the seconds of audio
each window holds.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from . import features
from .config import SAMPLE_RATE
from .errors import AudioError, ModelError
from .session import open_session

DEFAULT_MODEL = pathlib.Path(__file__).resolve().parent / "models" / "default.onnx"
SINGLE_WINDOW_FACTOR = 1.5  # audio up to this many model windows is scored as one window
WINDOW_HOP_FRACTION = 0.5  # hop between windows inside a long speech segment, in windows
MIN_WINDOW_SECONDS = 0.5  # shorter single-window audio is zero-padded to this


@dataclasses.dataclass(frozen=True)
class Window:
    """One scored stretch of audio: [start, end) in seconds, its top label and softmax scores."""

    start: float
    end: float
    label: str
    scores: dict[str, float]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The result for one input: top label, scores summing to 1, the windows, duration in s."""

    label: str
    scores: dict[str, float]
    timeline: list[Window]
    duration: float


def softmax(logits: np.ndarray) -> np.ndarray:
    """[B, C] logits -> [B, C] probabilities (float64, rows sum to 1)."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def window_spans(duration: float, window: float, segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Speech segments [(start_s, end_s)] -> window spans [(start_s, end_s)], each <= `window` s.

    A segment up to one window long gives one span equal to the segment. A longer one gives
    1 + round((length - window) / hop) spans of exactly `window` seconds, spread evenly from
    the segment start to its end (so neighbours are at most 0.75 window apart and the segment
    is covered, except at most hop / 4 at each end when one window is used). No segments
    (silence-only audio) -> the same tiling over [0, duration)."""
    hop = window * WINDOW_HOP_FRACTION
    spans = []
    for start, end in segments or [(0.0, duration)]:
        if end - start <= window:
            spans.append((start, end))
            continue
        n = 1 + int(round((end - start - window) / hop))
        starts = np.linspace(start, end - window, n) if n > 1 else [(start + end - window) / 2]
        spans.extend((float(s), float(s) + window) for s in starts)
    return spans


class Recognizer:
    """Speech emotion recognition with one model (ONNX or TFLite).

    `model=None` uses the packaged default model (edge_ser/models/default.onnx). Everything that
    depends only on the model (session, feature config, window length) is set up once here.
    """

    def __init__(self, model: str | os.PathLike | None = None, threads: int = 1):
        if model is None:
            if not DEFAULT_MODEL.is_file():
                raise ModelError("no default model is installed yet; pass --model PATH")
            model = DEFAULT_MODEL
        self.session = open_session(model, threads)
        self.info = self.session.info
        self.labels = list(self.info.labels)
        self.config = self.info.feature_config
        self.sample_rate = self.config.sample_rate
        self.window_samples = self.config.n_samples(self.info.window_seconds)
        self.min_single_samples = self.config.n_samples(MIN_WINDOW_SECONDS)
        fixed = self.session.fixed_frames
        # A model with a static frame axis gets every window padded/cut to exactly its frames.
        self.fixed_samples = None if fixed is None else max(1, (fixed - 1) * self.config.hop_length)

    def predict(self, audio: str | os.PathLike | np.ndarray, sample_rate: int = 16000) -> Prediction:
        """A file path ("-" = raw s16le PCM on stdin) or mono float [samples] at `sample_rate` Hz
        (ignored for files, whose header says) -> Prediction.

        Short audio is one window; long audio gets windows on its VAD speech segments, and when
        the VAD finds no speech at all, windows over the whole audio (so a prediction is always
        made; its timeline then covers silence). Raises AudioError naming the input."""
        waveform = self._load(audio, sample_rate)
        duration = len(waveform) / self.sample_rate
        # Every window of one call has the same length, so they stack into one batch.
        if duration <= SINGLE_WINDOW_FACTOR * self.info.window_seconds:
            spans, length = [(0.0, duration)], max(len(waveform), self.min_single_samples)
        else:
            spans, length = self._spans(waveform, duration), self.window_samples
        length = length if self.fixed_samples is None else self.fixed_samples
        batch = np.stack([self._features(waveform, s, e, length) for s, e in spans])
        probs = softmax(self.session(batch))
        timeline = [Window(s, e, self.labels[int(p.argmax())], self._scores(p))
                    for (s, e), p in zip(spans, probs)]
        weights = np.maximum([e - s for s, e in spans], 1e-9)  # seconds of audio per window
        overall = (probs * weights[:, None]).sum(axis=0) / weights.sum()
        return Prediction(self.labels[int(overall.argmax())], self._scores(overall), timeline, duration)

    def _load(self, audio, sample_rate: int) -> np.ndarray:
        """Path or array -> float32 mono [samples] at the model's sample rate."""
        from . import audio as audio_io

        if not isinstance(audio, np.ndarray):
            return audio_io.load_audio(os.fspath(audio), sample_rate=self.sample_rate)
        waveform = np.asarray(audio, dtype=np.float32)
        if waveform.ndim != 1:
            raise AudioError(f"<array>: audio must be mono [samples], got shape {waveform.shape}")
        if waveform.size == 0:
            raise AudioError("<array>: audio is empty")
        if not np.isfinite(waveform).all():
            raise AudioError("<array>: audio contains NaN or infinite samples")
        if sample_rate != self.sample_rate:
            waveform = audio_io.resample(waveform, sample_rate, self.sample_rate)
        return waveform

    def _spans(self, waveform: np.ndarray, duration: float) -> list[tuple[float, float]]:
        """Long audio -> window spans [(start_s, end_s)] on its speech segments."""
        from .audio import resample
        from .vad import speech_segments  # imported here: short clips never need the VAD

        if self.sample_rate != SAMPLE_RATE:  # the VAD works at 16 kHz whatever the model uses
            waveform = resample(waveform, self.sample_rate, SAMPLE_RATE)
        return window_spans(duration, self.info.window_seconds, speech_segments(waveform))

    def _features(self, waveform: np.ndarray, start: float, end: float, length: int) -> np.ndarray:
        """Audio span [start, end) s, zero-padded or cut to `length` samples -> log-mel
        [n_mels, frames]."""
        a = int(round(start * self.sample_rate))
        piece = waveform[a:max(int(round(end * self.sample_rate)), a + 1)][:length]
        return features.log_mel(np.pad(piece, (0, length - len(piece))), self.config)

    def _scores(self, probs: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}
