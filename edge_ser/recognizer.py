"""Recognizer: audio in, emotion scores out, with the model's own feature definition.

    rec = Recognizer(model=None, threads=1)
    rec.predict("clip.wav")         -> Prediction(label, scores, timeline, duration, segments)
    rec.iter_segments("hour.wav")   -> Segment, Segment, ... as the speech segments end
    rec.stream(sys.stdin.buffer)    -> Window, Window, ... live, at a fixed hop

Audio up to SINGLE_WINDOW_FACTOR x the model's window goes through the model as one window.
Longer audio is cut into windows of `window_seconds` placed on the speech segments the VAD finds
(`edge_ser.vad`), each cut every MAX_STRETCH_SECONDS: a segment longer than one window gets
windows about WINDOW_HOP_FRACTION of a window apart, spread from its start to its end; a shorter
segment gets one window holding the segment, zero-padded to the window length (the EmoDB
training clips were zero-padded the same way, and equal lengths let windows run as one batch).
Long audio in which the VAD finds no speech at all falls back to windows over the whole audio.
A segment's scores, and the overall scores, are the mean of their windows' softmax scores
weighted by the seconds of audio each window holds.

No speech, no emotion: every window, segment and prediction carries `speech`, the seconds of
VAD speech it holds as a share of one model window (capped at 1). Below `min_speech` (default
MIN_SPEECH_SHARE: 0.4 s of speech for a 2-s model) its label is NO_SPEECH, whatever the scores,
which stay available: a model asked about a tone or silence still answers with an emotion, and a
person reading it would believe it. One measure for every length, so a clip is judged the same
at 2.9 s (one window) as at 3.1 s (windows on its speech segments): a short clip counts the VAD
speech in it; a window on a speech segment the part of the segment it covers; a segment its
length; a prediction the speech of all its segments; the fallback windows of audio without any
speech none; a live window its speech frames. The overall scores are the mean over the windows
with enough speech (over all of them when none has).

Files (and raw PCM on stdin) are read as a stream (`edge_ser.stream.SpeechStretches`): the VAD
runs chunk by chunk and each segment is scored when it ends, so memory does not grow with the
duration; the result equals that of the same audio passed as an array. `stream` places windows
at a fixed hop instead (see `edge_ser.stream`), each with its share of speech and its latency.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
from typing import Iterable, Iterator

import numpy as np

from . import features
from .config import SAMPLE_RATE
# SINGLE_WINDOW_FACTOR: audio up to this many model windows is scored as one window
from .contract import MAX_WINDOW_SECONDS, MIN_SPEECH_SHARE, MIN_WINDOW_SECONDS, NO_SPEECH, SINGLE_WINDOW_FACTOR
from .errors import AudioError, ModelError
from .packaged import DEFAULT_MODEL, resolve_model
from .session import open_session
from .stream import (MAX_STRETCH_SECONDS, FixedWindows, SpeechStretches, Stretch, audio_chunks,
                     split_stretch)

WINDOW_HOP_FRACTION = 0.5  # hop between windows inside a long speech segment, in windows
MIN_SINGLE_WINDOW_SECONDS = 0.5  # shorter single-window audio is zero-padded to this
# `stream`'s windows have the bounds a model's own window has: a shorter one holds hardly a
# frame, a longer one would be allocated whole at once (1e9 s: 58 TiB).


@dataclasses.dataclass(frozen=True)
class Window:
    """One scored window of audio: [start, end) in seconds, its label (the top score's, or
    NO_SPEECH), softmax scores, and `speech`, its seconds of VAD speech as a share of one model
    window (0..1). From `Recognizer.stream` also `latency_ms`, the wall time its features and
    inference took."""

    start: float
    end: float
    label: str
    scores: dict[str, float]
    speech: float | None = None
    latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class Segment:
    """A stretch the windows were placed on: a VAD speech segment (cut every
    MAX_STRETCH_SECONDS), or the whole audio when it is one window or holds no speech.
    [start, end) s, label (top score's or NO_SPEECH), scores (its windows' duration-weighted
    mean), its windows, and its seconds of speech as a share of one model window (0..1)."""

    start: float
    end: float
    label: str
    scores: dict[str, float]
    windows: tuple[Window, ...]
    speech: float = 1.0


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The result for one input: label (top score's or NO_SPEECH), scores summing to 1, the
    windows, duration in s, the segments the windows lie on (each window is in exactly one), and
    its seconds of speech as a share of one model window (0..1)."""

    label: str
    scores: dict[str, float]
    timeline: list[Window]
    duration: float
    segments: list[Segment] = dataclasses.field(default_factory=list)
    speech: float = 1.0


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
    (silence-only audio) -> the same tiling over [0, duration). Segments longer than
    MAX_STRETCH_SECONDS are first cut into pieces (`stream.split_stretch`)."""
    return [span for stretch in stretches(duration, segments) for span in stretch_windows(*stretch, window)]


def stretches(duration: float, segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Speech segments [(start_s, end_s)] -> the stretches windows go on: each segment cut every
    MAX_STRETCH_SECONDS; no segments -> [0, duration) cut the same way."""
    return [piece for start, end in segments or [(0.0, duration)]
            for piece in split_stretch(start, end, MAX_STRETCH_SECONDS)]


def stretch_windows(start: float, end: float, window: float) -> list[tuple[float, float]]:
    """One stretch [start, end) s -> its window spans (see `window_spans`)."""
    if end - start <= window:
        return [(start, end)]
    hop = window * WINDOW_HOP_FRACTION
    n = 1 + int(round((end - start - window) / hop))
    starts = np.linspace(start, end - window, n) if n > 1 else [(start + end - window) / 2]
    return [(float(s), float(s) + window) for s in starts]


class Recognizer:
    """Speech emotion recognition with one model (ONNX or TFLite).

    `model`: a packaged model's name ("default", "tiny") or a model file path, resolved by
    `edge_ser.packaged.resolve_model` (an existing file wins over a name); None is DEFAULT_MODEL,
    the packaged default. Everything that depends only on the model (session, feature config,
    window length) is set up once here. `min_speech` (0..1): a window, segment or input with less
    speech than this share of one model window is labelled NO_SPEECH; 0 labels everything by its
    scores.
    `provider` ("cpu", "cuda", "tensorrt") is where an ONNX model runs when this onnxruntime has
    it (`edge_ser.session.open_session`); when it is not used, `self.session.provider_notice`
    says so in one line.
    """

    def __init__(self, model: str | os.PathLike | None = None, threads: int = 1,
                 min_speech: float = MIN_SPEECH_SHARE, provider: str = "cpu"):
        if model is None:
            if not DEFAULT_MODEL.is_file():
                raise ModelError("no default model is installed yet; pass --model PATH")
            model = DEFAULT_MODEL
        else:
            model = resolve_model(model)
        if not 0.0 <= min_speech <= 1.0:
            raise ValueError(f"min_speech must be a share of speech in 0..1, got {min_speech}")
        self.min_speech = min_speech
        self.session = open_session(model, threads, provider=provider)
        self.info = self.session.info
        self.labels = list(self.info.labels)
        self.config = self.info.feature_config
        self.sample_rate = self.config.sample_rate
        self.window_samples = self.config.n_samples(self.info.window_seconds)
        self.min_single_samples = self.config.n_samples(MIN_SINGLE_WINDOW_SECONDS)
        fixed = self.session.fixed_frames
        # A model with a static frame axis gets every window padded/cut to exactly its frames.
        self.fixed_samples = None if fixed is None else self.config.samples_for_frames(fixed)

    # --- whole inputs ------------------------------------------------------------------------

    def predict(self, audio: str | os.PathLike | np.ndarray, sample_rate: int = 16000) -> Prediction:
        """A file path ("-" = raw s16le PCM on stdin) or mono float [samples] at `sample_rate` Hz
        (ignored for files, whose header says) -> Prediction.

        Short audio is one window; long audio gets windows on its VAD speech segments, and when
        the VAD finds no speech at all, windows over the whole audio (so a prediction is always
        made; its timeline then covers silence). Files are streamed: memory stays bounded
        whatever their length (the result holds one Window per window). Raises AudioError
        naming the input."""
        if isinstance(audio, np.ndarray):
            waveform = self._checked_array(audio, sample_rate)
            return self._prediction(self._array_segments(waveform), len(waveform) / self.sample_rate)
        counted = _Counted(audio_chunks(audio, self.sample_rate, self.sample_rate))
        segments = list(self._stream_segments(counted))
        return self._prediction(segments, counted.n_samples / self.sample_rate)

    def iter_segments(self, audio, sample_rate: int = SAMPLE_RATE) -> Iterator[Segment]:
        """Long audio -> its Segments, each as soon as the VAD has seen its end; the same
        segments as `predict(audio).segments`, in bounded memory.

        audio: a path ("-": raw s16le PCM on stdin), a binary file object of raw s16le PCM, a
        float array, or an iterable of float32 mono chunks (PCM, arrays and chunks at
        `sample_rate` Hz). Short input (up to SINGLE_WINDOW_FACTOR windows) is one segment.
        Audio without any speech gives its fallback segments only at its end."""
        return self._stream_segments(audio_chunks(audio, self.sample_rate, sample_rate))

    def _prediction(self, segments: list[Segment], duration: float) -> Prediction:
        timeline = [w for segment in segments for w in segment.windows]
        speech = min(1.0, sum(s.speech for s in segments))  # segments do not overlap; each is capped at 1
        voiced = [w for w in timeline if not self._silent(w.speech)] or timeline
        overall = self._weighted_mean(voiced)
        return Prediction(self._label(overall, speech), self._scores(overall), timeline, duration, segments,
                          speech)

    def _checked_array(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float array -> float32 [samples] at the model's sample rate, or AudioError."""
        from .audio import resample

        waveform = np.asarray(audio, dtype=np.float32)
        if waveform.ndim != 1:
            raise AudioError(f"<array>: audio must be mono [samples], got shape {waveform.shape}")
        if waveform.size == 0:
            raise AudioError("<array>: audio is empty")
        if not np.isfinite(waveform).all():
            raise AudioError("<array>: audio contains NaN or infinite samples")
        if sample_rate != self.sample_rate:
            waveform = resample(waveform, sample_rate, self.sample_rate)
        return waveform

    def _is_single(self, n_samples: int) -> bool:
        return n_samples / self.sample_rate <= SINGLE_WINDOW_FACTOR * self.info.window_seconds

    def _array_segments(self, waveform: np.ndarray) -> list[Segment]:
        """A whole waveform -> its scored segments; all windows run as one batch."""
        duration = len(waveform) / self.sample_rate
        if self._is_single(len(waveform)):
            return [self._single(waveform)]
        found = self._speech_segments(waveform)
        groups = [(a, b, stretch_windows(a, b, self.info.window_seconds)) for a, b in stretches(duration, found)]
        spans = [span for _, _, group in groups for span in group]
        windows = iter(self._score(waveform, 0, spans, self._length(self.window_samples), bool(found)))
        return [self._segment(a, b, list(itertools.islice(windows, len(group))), (b - a) * bool(found))
                for a, b, group in groups]

    def _speech_segments(self, waveform: np.ndarray) -> list[tuple[float, float]]:
        """Waveform at the model's rate -> VAD speech segments [(start_s, end_s)]."""
        from . import vad  # imported here: short clips never need the VAD
        from .audio import resample

        if self.sample_rate != SAMPLE_RATE:  # the VAD works at 16 kHz whatever the model uses
            waveform = resample(waveform, self.sample_rate, SAMPLE_RATE)
        return vad.speech_segments(waveform)

    # --- streams -----------------------------------------------------------------------------

    def _stream_segments(self, chunks: Iterator[np.ndarray]) -> Iterator[Segment]:
        """Chunks at the model's rate -> scored Segments as they end (see `iter_segments`)."""
        head, n_samples = [], 0
        for chunk in chunks:  # hold audio only until it is too long for one window
            head.append(chunk)
            n_samples += len(chunk)
            if not self._is_single(n_samples):
                break
        else:
            if n_samples == 0:
                raise AudioError("<stream>: no audio (0 samples)")
            yield self._single(np.concatenate(head))
            return
        stretches_ = SpeechStretches(self.sample_rate)
        held = []  # fallback segments: given out only if the whole input has no speech
        for chunk in itertools.chain(head, chunks):
            for stretch in stretches_.push(chunk):
                yield from self._hold_or_give(stretch, held)
        for stretch in stretches_.finish():
            yield from self._hold_or_give(stretch, held)
        if not stretches_.speech_found:
            yield from held

    def _hold_or_give(self, stretch: Stretch, held: list) -> Iterator[Segment]:
        segment = self._stretch_segment(stretch)
        if stretch.speech:
            held.clear()
            yield segment
        else:
            held.append(segment)

    def _stretch_segment(self, stretch: Stretch) -> Segment:
        spans = stretch_windows(stretch.start, stretch.end, self.info.window_seconds)
        windows = self._score(stretch.audio, stretch.offset, spans, self._length(self.window_samples), stretch.speech)
        return self._segment(stretch.start, stretch.end, windows, (stretch.end - stretch.start) * stretch.speech)

    def stream(self, source, window: float | None = None, hop: float | None = None) -> Iterator[Window]:
        """Live audio -> a Window every `hop` seconds, as soon as its audio is in.

        source: a binary file object (or "-" for stdin) of raw s16le mono PCM at 16 kHz, read as
        it arrives; an iterable of float32 mono chunks at 16 kHz; or a file path. Windows are
        `window` s long (default: the model's; a model's window bounds, MIN_WINDOW_SECONDS to
        MAX_WINDOW_SECONDS, bound it, ValueError outside), at a fixed hop (default: half a window,
        at most a window) from the start; each carries `speech` (its VAD speech frames as a share
        of one model window; the VAD's lookahead delays a window ~0.5 s past its end) and `latency_ms`. At the end of the input, audio
        after the last whole window gets one shorter window, zero-padded like the rest."""
        window = self.info.window_seconds if window is None else window
        hop = window * WINDOW_HOP_FRACTION if hop is None else hop
        if not MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window must be {MIN_WINDOW_SECONDS:g} to {MAX_WINDOW_SECONDS:g} s, got {window}")
        if not 0 < hop <= window:
            raise ValueError(f"need 0 < hop <= window, got window {window}, hop {hop}")
        window_samples = self.config.n_samples(window)
        windows = FixedWindows(self.sample_rate, window_samples, max(1, self.config.n_samples(hop)))
        length = self._length(window_samples)
        for chunk in audio_chunks(source, self.sample_rate, live=True):
            for live in windows.push(chunk):
                yield self._live(live, length)
        for live in windows.finish():
            yield self._live(live, length)

    def _live(self, live, length: int) -> Window:
        began = time.perf_counter()
        speech_seconds = live.speech * (live.end - live.start)
        [window] = self._score(live.audio, round(live.start * self.sample_rate), [(live.start, live.end)], length,
                               [speech_seconds])
        return dataclasses.replace(window, latency_ms=1000 * (time.perf_counter() - began))

    def log_mel_windows(self, waveform: np.ndarray, max_windows: int | None = None) -> np.ndarray:
        """Mono float [samples] at the model's rate -> log-mel [W, n_mels, frames] of its
        consecutive model-length windows (the last one zero-padded), as the model is fed them;
        at most `max_windows`."""
        if max_windows is not None and max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        length, rate = self._length(self.window_samples), self.sample_rate
        starts = list(range(0, max(len(waveform), 1), length))[:max_windows]
        return np.stack([self._features(waveform, 0, s / rate, (s + length) / rate, length) for s in starts])

    # --- scoring -----------------------------------------------------------------------------

    def _length(self, n_samples: int) -> int:
        """Samples every window of a batch is padded or cut to."""
        return n_samples if self.fixed_samples is None else self.fixed_samples

    def _single(self, waveform: np.ndarray) -> Segment:
        """Short audio -> one segment of one window over all of it, with the VAD speech it holds."""
        duration = len(waveform) / self.sample_rate
        length = self._length(max(len(waveform), self.min_single_samples))
        speech_seconds = sum(b - a for a, b in self._speech_segments(waveform))
        return self._segment(0.0, duration, self._score(waveform, 0, [(0.0, duration)], length, [speech_seconds]),
                             speech_seconds)

    def _score(self, audio: np.ndarray, offset: int, spans: list[tuple[float, float]], length: int,
               speech: list[float] | bool) -> list[Window]:
        """Spans [(start_s, end_s)] of `audio` (whose first sample is sample `offset` of the
        input) -> scored Windows, run as one batch of `length`-sample windows. `speech`: each
        span's seconds of speech, or True for spans on speech segments (all speech), False for
        the fallback spans of audio without speech."""
        if isinstance(speech, bool):
            speech = [(e - s) * speech for s, e in spans]
        batch = np.stack([self._features(audio, offset, s, e, length) for s, e in spans])
        probs = softmax(self.session(batch) / self.info.temperature)
        shares = [self._speech_share(seconds) for seconds in speech]
        return [Window(s, e, self._label(p, share), self._scores(p), share)
                for (s, e), p, share in zip(spans, probs, shares)]

    def _features(self, audio: np.ndarray, offset: int, start: float, end: float, length: int) -> np.ndarray:
        """Audio span [start, end) s, zero-padded or cut to `length` samples -> log-mel
        [n_mels, frames]."""
        a = int(round(start * self.sample_rate))
        b = max(int(round(end * self.sample_rate)), a + 1)
        piece = audio[a - offset:b - offset][:length]
        return features.log_mel(np.pad(piece, (0, length - len(piece))), self.config)

    def _segment(self, start: float, end: float, windows: list[Window], speech_seconds: float) -> Segment:
        mean, speech = self._weighted_mean(windows), self._speech_share(speech_seconds)
        return Segment(start, end, self._label(mean, speech), self._scores(mean), tuple(windows), speech)

    def _label(self, probs: np.ndarray, speech: float) -> str:
        return NO_SPEECH if self._silent(speech) else self.labels[int(probs.argmax())]

    def _silent(self, speech: float) -> bool:
        return speech < self.min_speech

    def _speech_share(self, seconds: float) -> float:
        """Seconds of speech -> their share of one model window, capped at 1."""
        return min(1.0, float(seconds) / self.info.window_seconds)

    def _weighted_mean(self, windows: list[Window]) -> np.ndarray:
        """Windows -> float64 [n_classes]: their scores weighted by the seconds each holds."""
        probs = np.array([[w.scores[x] for x in self.labels] for w in windows])
        weights = np.maximum([w.end - w.start for w in windows], 1e-9)
        return (probs * weights[:, None]).sum(axis=0) / weights.sum()

    def _scores(self, probs: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}


class _Counted:
    """An iterator of sample chunks that counts the samples it has passed on."""

    def __init__(self, chunks: Iterable[np.ndarray]):
        self.chunks, self.n_samples = iter(chunks), 0

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        chunk = next(self.chunks)
        self.n_samples += len(chunk)
        return chunk
