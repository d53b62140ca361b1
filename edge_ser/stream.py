"""Audio as a stream, in bounded memory: where the recognizer's windows go, chunk by chunk.

Two placements, both fed float32 mono chunks of any length at one sample rate, both running
`vad.StreamingVAD` (at 16 kHz) as the audio arrives:

  * `SpeechStretches` (long audio: `Recognizer.predict` on files, `Recognizer.iter_segments`):
    the stretches the offline `Recognizer` places windows on, each handed out with its audio
    as soon as it is final: every VAD speech segment, cut every MAX_STRETCH_SECONDS; when the
    VAD finds no speech at all, the whole audio, cut the same way. Memory: one stretch
    (<= MAX_STRETCH_SECONDS) plus the VAD's lookahead, whatever the duration.
  * `FixedWindows` (live: `Recognizer.stream`, `edge-ser stream`): windows of fixed length at a
    fixed hop from the start of the stream, each with the share of its 10 ms frames the VAD
    calls speech. A fixed hop keeps a steady output rate, and a silent stretch still gets its
    rows (flagged), so a live display never stalls. A window is handed out once its audio and
    its frames' VAD decisions are in: about `vad.StreamingVAD().lookahead_seconds` (~0.5 s)
    after its end. Memory: one window plus one hop plus that delay.

`audio_chunks` turns the inputs the API accepts (a path, raw PCM on a binary file or stdin,
arrays) into such chunks; `microphone_chunks` reads the optional sounddevice package;
`file_speech_segments` is `vad.speech_segments` on a file read the same way (`edge-ser vad`).
"""
from __future__ import annotations

import dataclasses
import os
import queue
from typing import Iterable, Iterator

import numpy as np

from .audio import STDIN_NAME, STDIN_PATH, Resampler, iter_audio_chunks, pcm16_chunks, stdin_bytes
from .config import FRAMES_PER_SECOND, SAMPLE_RATE
from .errors import AudioError
from .vad import StreamingVAD, frames_to_segments

MAX_STRETCH_SECONDS = 30.0  # longer speech segments are cut into pieces of this length
FILE_CHUNK_SECONDS = 1.0  # audio read from a file at a time
LIVE_READ_SAMPLES = 1600  # at most 0.1 s of raw PCM per read from a pipe: lines come out promptly
MIC_BLOCK_SECONDS = 0.1  # microphone callback block
MIC_INSTALL_HINT = "pip install 'edge-ser[mic]'"
FRAME_SECONDS = 1.0 / FRAMES_PER_SECOND  # how `vad.frames_to_segments` turns frames into seconds
STREAM_NAME = "<stream>"  # how chunk iterables are named in messages


# ---------------------------------------------------------------------------------------------
# Inputs


def audio_chunks(source, sample_rate: int = SAMPLE_RATE, source_rate: int = SAMPLE_RATE,
                 live: bool = False) -> Iterator[np.ndarray]:
    """Any streaming input -> float32 mono chunks at `sample_rate` Hz.

    source: a path (read block by block and resampled from the file's own rate); "-" or a
    binary file object: raw 16-bit little-endian mono PCM at `source_rate`; an array or an
    iterable of arrays: float mono samples at `source_rate`. `live`: hand out raw PCM as it
    arrives (small reads) rather than in FILE_CHUNK_SECONDS blocks.
    """
    if isinstance(source, (str, os.PathLike)) and (os.fspath(source) != STDIN_PATH or not live):
        rate = source_rate if os.fspath(source) == STDIN_PATH else sample_rate  # PCM has no header
        yield from _resampled(iter_audio_chunks(source, FILE_CHUNK_SECONDS, rate), rate, sample_rate)
        return
    most = LIVE_READ_SAMPLES if live else round(FILE_CHUNK_SECONDS * source_rate)
    if isinstance(source, (str, os.PathLike)):
        chunks, name = pcm16_chunks(stdin_bytes(), STDIN_NAME, most, live=True), STDIN_NAME
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", STREAM_NAME))
        chunks = pcm16_chunks(source, name, most, live=True)
    elif isinstance(source, np.ndarray):
        chunks, name = iter([source]), "<array>"
    else:
        chunks, name = iter(source), STREAM_NAME
    yield from _resampled(_checked(chunks, name), source_rate, sample_rate)


def file_speech_segments(source) -> list[tuple[float, float]]:
    """A path ("-": raw s16le PCM at 16 kHz on stdin) -> its speech segments [(start_s, end_s)],
    read and detected chunk by chunk: `vad.speech_segments(audio.load_audio(source))` in
    memory bounded by a chunk (an hour of audio holds its 10 ms decisions, 360 kB, not 230 MB
    of samples). AudioError naming the input."""
    vad, n_samples, speech = StreamingVAD(), 0, []
    for chunk in audio_chunks(source, SAMPLE_RATE):
        n_samples += len(chunk)
        speech.append(vad.push(chunk))
    speech.append(vad.finish())
    return frames_to_segments(np.concatenate(speech), n_samples / SAMPLE_RATE)


def microphone_chunks(sample_rate: int = SAMPLE_RATE, block_seconds: float = MIC_BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """float32 mono chunks from the default input device via the optional sounddevice package,
    until the caller stops (Ctrl-C). AudioError naming the extra when it is not installed."""
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: the package is there but PortAudio is not
        raise AudioError(f"<mic>: the microphone needs the optional sounddevice package: "
                         f"{MIC_INSTALL_HINT}") from None
    blocks: queue.Queue = queue.Queue()

    def on_block(data, frames, time, status):  # runs on PortAudio's thread: hand over, return
        blocks.put(data[:, 0].copy())

    try:
        device = sounddevice.InputStream(samplerate=sample_rate, channels=1, dtype="float32",
                                         blocksize=max(1, round(block_seconds * sample_rate)),
                                         callback=on_block)
    except Exception as e:  # PortAudio's errors: no device, rate not supported, ...
        raise AudioError(f"<mic>: cannot open the microphone: {' '.join(str(e).split())}") from None
    with device:
        while True:
            try:
                yield blocks.get(timeout=1.0)
            except queue.Empty:  # a stalled device: keep waiting, Ctrl-C still gets through
                continue


def _checked(chunks: Iterable, name: str) -> Iterator[np.ndarray]:
    """float32 mono [samples] chunks with finite values, or AudioError naming the input."""
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise AudioError(f"{name}: audio must be mono [samples], got shape {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise AudioError(f"{name}: audio contains NaN or infinite samples")
        yield chunk


def _resampled(chunks: Iterator[np.ndarray], orig_sr: int, target_sr: int) -> Iterator[np.ndarray]:
    if orig_sr == target_sr:
        yield from chunks
        return
    resampler = Resampler(orig_sr, target_sr)
    for chunk in chunks:
        yield resampler(chunk)
    yield resampler.flush()


# ---------------------------------------------------------------------------------------------
# Buffers


class SampleBuffer:
    """The samples of a stream from some absolute index on: chunks appended, old ones dropped."""

    def __init__(self):
        self.parts: list[tuple[int, np.ndarray]] = []  # (absolute index of part[0], part)
        self.end = 0  # absolute index one past the last sample

    def append(self, samples: np.ndarray) -> None:
        if len(samples):
            self.parts.append((self.end, samples))
            self.end += len(samples)

    def get(self, start: int, end: int) -> np.ndarray:
        """float32 samples [start, end) (absolute), cut short where the stream has none."""
        pieces = [part[max(start - a, 0): max(end - a, 0)] for a, part in self.parts
                  if a < end and a + len(part) > start]
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def drop_before(self, index: int) -> None:
        """Forget the parts that end at or before absolute `index`."""
        while self.parts and self.parts[0][0] + len(self.parts[0][1]) <= index:
            self.parts.pop(0)

    @property
    def size(self) -> int:
        """Samples held now."""
        return sum(len(part) for _, part in self.parts)


class _VadFeed:
    """A StreamingVAD fed from audio at any rate (resampled to 16 kHz on the way)."""

    def __init__(self, sample_rate: int):
        self.vad = StreamingVAD()
        self._to_16k = None if sample_rate == SAMPLE_RATE else Resampler(sample_rate, SAMPLE_RATE)
        self.n_samples = 0  # at 16 kHz: the VAD's own duration

    def push(self, chunk: np.ndarray) -> np.ndarray:
        chunk = chunk if self._to_16k is None else self._to_16k(chunk)
        self.n_samples += len(chunk)
        return self.vad.push(chunk)

    def finish(self) -> np.ndarray:
        if self._to_16k is not None:
            tail = self._to_16k.flush()
            self.n_samples += len(tail)
            return np.concatenate([self.vad.push(tail), self.vad.finish()])
        return self.vad.finish()


# ---------------------------------------------------------------------------------------------
# Long audio: stretches on the speech


def split_stretch(start: float, end: float, max_seconds: float = MAX_STRETCH_SECONDS,
                  first: int = 0) -> list[tuple[float, float]]:
    """[start, end) s -> pieces [(a, b)] from piece `first` on: piece k is `stretch_piece(start,
    k)`, the last one ends at `end`. The streaming and the offline paths both cut with this, so
    they cut at the same (floating-point) times."""
    pieces, k = [], first
    while end > stretch_piece(start, k, max_seconds)[1]:
        pieces.append(stretch_piece(start, k, max_seconds))
        k += 1
    pieces.append((stretch_piece(start, k, max_seconds)[0], end))
    return pieces


def stretch_piece(start: float, k: int, max_seconds: float = MAX_STRETCH_SECONDS) -> tuple[float, float]:
    """Piece k of a stretch starting at `start` s: [start + k * max, start + (k + 1) * max)."""
    return start + k * max_seconds, start + (k + 1) * max_seconds


@dataclasses.dataclass(frozen=True)
class Stretch:
    """Audio to place windows on: [start, end) s, its samples from absolute sample `offset` on,
    and whether the VAD called it speech (False: the fallback for audio without speech)."""

    start: float
    end: float
    audio: np.ndarray
    offset: int
    speech: bool


class _OpenStretch:
    """A stretch still growing: starts at `start` s, `pieces` pieces of it already handed out."""

    def __init__(self, start: float):
        self.start, self.pieces = start, 0


class SpeechStretches:
    """Long audio fed chunk by chunk -> the stretches `Recognizer` places windows on, as they
    become final (see the module docstring). Offline, the same stretches come from
    `split_stretch` over `vad.speech_segments(audio)`, or over [0, duration) when it is empty.

    While no speech has been found, the fallback pieces of [0, duration) are handed out as
    they fill (speech=False); once speech is found they stop, and the caller drops those it
    got. `push`/`finish` return lists of Stretch; `buffered_samples` is the audio held now.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_STRETCH_SECONDS):
        self.sample_rate, self.max_seconds = sample_rate, max_seconds
        self._vad = _VadFeed(sample_rate)
        self._audio = SampleBuffer()
        self._frames = 0  # VAD frames decided so far
        self._speech: _OpenStretch | None = None  # the speech segment being read, if any
        self._fallback: _OpenStretch | None = _OpenStretch(0.0)  # None once speech is found
        self.speech_found = False

    @property
    def buffered_samples(self) -> int:
        return self._audio.size

    def push(self, chunk: np.ndarray) -> list[Stretch]:
        """float32 mono [samples] at sample_rate -> the stretches now final."""
        self._audio.append(chunk)
        out = self._decide(self._vad.push(chunk))
        self._audio.drop_before(self._sample(self._keep_from()))
        return out

    def finish(self) -> list[Stretch]:
        """The end of the audio: the stretches still open, closed at its end."""
        out = self._decide(self._vad.finish())
        duration = self._vad.n_samples / SAMPLE_RATE
        for open_stretch, speech in ((self._speech, True), (self._fallback, False)):
            if open_stretch is not None:
                pieces = split_stretch(open_stretch.start, duration, self.max_seconds, open_stretch.pieces)
                out += [self._stretch(a, min(b, duration), speech) for a, b in pieces]
        self._speech = self._fallback = None
        return out

    def _decide(self, speech: np.ndarray) -> list[Stretch]:
        """Newly final frame decisions -> the stretches they complete."""
        out = []
        edges = np.flatnonzero(np.diff(speech.astype(np.int8))) + 1
        for a, b in zip(np.r_[0, edges], np.r_[edges, len(speech)]):
            if a == b:
                continue
            a, b = self._frames + int(a), self._frames + int(b)
            if speech[a - self._frames]:
                if self._speech is None:
                    self._speech, self._fallback = _OpenStretch(a * FRAME_SECONDS), None
                    self.speech_found = True
                out += self._full_pieces(self._speech, b, True)
            else:
                if self._speech is not None:  # the segment ended at frame a
                    pieces = split_stretch(self._speech.start, a * FRAME_SECONDS, self.max_seconds,
                                           self._speech.pieces)
                    out += [self._stretch(x, y, True) for x, y in pieces]
                    self._speech = None
                if self._fallback is not None:
                    out += self._full_pieces(self._fallback, b, False)
        self._frames += len(speech)
        return out

    def _full_pieces(self, open_stretch: _OpenStretch, frames: int, speech: bool) -> list[Stretch]:
        """The pieces of a growing stretch that end before `frames` (its decided extent)."""
        out = []
        extent = min(frames * FRAME_SECONDS, self._vad.n_samples / SAMPLE_RATE)
        while True:
            a, b = stretch_piece(open_stretch.start, open_stretch.pieces, self.max_seconds)
            if extent <= b:  # the stretch might still end at b: wait and see
                return out
            out.append(self._stretch(a, b, speech))
            open_stretch.pieces += 1

    def _keep_from(self) -> float:
        """Seconds: audio before this is in no stretch still to come."""
        for open_stretch in (self._speech, self._fallback):
            if open_stretch is not None:
                return stretch_piece(open_stretch.start, open_stretch.pieces, self.max_seconds)[0]
        return self._frames * FRAME_SECONDS

    def _sample(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def _stretch(self, start: float, end: float, speech: bool) -> Stretch:
        offset = self._sample(start)
        return Stretch(start, end, self._audio.get(offset, max(self._sample(end), offset + 1)), offset, speech)


# ---------------------------------------------------------------------------------------------
# Live: fixed windows


@dataclasses.dataclass(frozen=True)
class LiveWindow:
    """One fixed window: [start, end) s, its samples, the share of its frames that are speech."""

    start: float
    end: float
    audio: np.ndarray
    speech: float


class FixedWindows:
    """Windows of `window` samples every `hop` samples from the start of a stream (see the
    module docstring). At the end, audio after the last whole window gets one more, shorter
    window from the next window start to the end. Sizes in samples at `sample_rate`."""

    def __init__(self, sample_rate: int, window: int, hop: int):
        if not 0 < hop <= window:
            raise ValueError(f"need 0 < hop <= window, got hop {hop}, window {window} samples")
        self.sample_rate, self.window, self.hop = sample_rate, window, hop
        self._vad = _VadFeed(sample_rate)
        self._audio = SampleBuffer()
        self._speech = np.zeros(0, np.bool_)  # decisions from frame `_speech_start` on
        self._speech_start = 0
        self._next = 0  # index of the next window

    @property
    def buffered_samples(self) -> int:
        return self._audio.size

    def push(self, chunk: np.ndarray) -> list[LiveWindow]:
        """float32 mono [samples] at sample_rate -> the windows now complete."""
        self._audio.append(chunk)
        self._add_decisions(self._vad.push(chunk))
        return self._complete_windows()

    def finish(self) -> list[LiveWindow]:
        """The end of the stream: the remaining whole windows and the shorter last one."""
        self._add_decisions(self._vad.finish())
        out = self._complete_windows()
        start = self._next * self.hop
        covered = start - self.hop + self.window if self._next else 0
        if self._audio.end > covered:
            out.append(self._live_window(start, self._audio.end))
            self._next += 1
        return out

    def _add_decisions(self, speech: np.ndarray) -> None:
        self._speech = np.concatenate([self._speech, speech])

    def _frame(self, sample: int) -> int:
        """The first 10 ms frame centred at or after `sample`."""
        return -(-sample * FRAMES_PER_SECOND // self.sample_rate)

    def _complete_windows(self) -> list[LiveWindow]:
        out = []
        decided = self._speech_start + len(self._speech)
        while True:
            start = self._next * self.hop
            end = start + self.window
            if end > self._audio.end or self._frame(end) > decided:
                break
            out.append(self._live_window(start, end))
            self._next += 1
        start = self._next * self.hop
        self._audio.drop_before(start)
        drop = max(0, self._frame(start) - self._speech_start)
        self._speech, self._speech_start = self._speech[drop:], self._speech_start + drop
        return out

    def _live_window(self, start: int, end: int) -> LiveWindow:
        a, b = self._frame(start) - self._speech_start, self._frame(end) - self._speech_start
        frames = self._speech[max(a, 0):max(b, 0)]
        speech = float(frames.mean()) if len(frames) else 0.0
        rate = self.sample_rate
        return LiveWindow(start / rate, end / rate, self._audio.get(start, end), speech)
