"""Audio input: WAV parsing, raw PCM from stdin, other formats via soundfile, polyphase resampling.

Everything returns float32 in [-1, 1] (float WAV files are returned as stored). The runtime needs
only numpy here: WAV is parsed by hand (the stdlib `wave` module cannot read float or
WAVE_FORMAT_EXTENSIBLE files), and the resampler reproduces `scipy.signal.resample_poly`'s
defaults without scipy. `Resampler` and `iter_audio_chunks` work chunk by chunk in bounded
memory, for hour-long recordings and live streams.
"""
from __future__ import annotations

import contextlib
import os
import stat
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Iterator

import numpy as np

from .config import MAX_SAMPLE_RATE, SAMPLE_RATE
from .errors import AudioError

MIN_SAMPLE_RATE = 8000  # Hz: lowest rate a file may declare
STDIN_PATH = "-"  # load_audio path that means raw PCM on standard input
STDIN_NAME = "<stdin>"  # how standard input is named in error messages
READ_BLOCK_FRAMES = 1 << 16  # frames read from disk or stdin at a time when streaming
READ_BLOCK_BYTES = 1 << 20  # ... and at most this many bytes, however wide a frame is
MAX_CHANNELS = 256  # more than any microphone array or ambisonics file; a header saying 65535 lies
MAX_FMT_BYTES = 1024  # a fmt chunk needs 40; a bigger size is read this far, the rest skipped
# |float sample| above this is refused: float WAV is nominally within +-1, and even files written
# on a 32-bit integer scale stay below it, while the features stay finite in float32 up to here
MAX_FLOAT_SAMPLE = 2.0**31

# The resampler's low-pass filter, as scipy.signal.resample_poly's defaults
KAISER_BETA = 5.0  # window=('kaiser', 5.0)
HALF_TAPS_PER_RATE = 10  # half_len = 10 * max(up, down) taps of the upsampled-rate filter
# Largest term of the up/down ratio: the filter has 20 * max(up, down) + 1 taps. Every common
# rate pair stays exact (44.1k -> 16k is 160/441; 176.4k -> 16k 160/1764; 44.056k -> 16k
# 2000/5507); a rate with few factors in common with the target (191,999 Hz: 16000/191999) is
# resampled by the nearest ratio within it (1/12), at most 1/MAX_RATIO_TERM (122 ppm) off.
MAX_RATIO_TERM = 8192
MAX_BLOCK_ELEMENTS = 1 << 17  # outputs x taps gathered at once: ~0.5 MB arrays stay in cache

# WAV format tags; WAVE_FORMAT_EXTENSIBLE carries one of the others in its sub-format GUID
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
KSDATAFORMAT_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
UNSIZED_CHUNK = (0, 0xFFFFFFFF)  # data sizes written by streaming tools: read to end of file
PCM_BITS = (8, 16, 24, 32)
FLOAT_BITS = (32, 64)

SOUNDFILE_HINT = "needs the optional soundfile package: pip install 'edge-ser[audio]'"
UNKNOWN_FORMAT = "not a WAV file or a recognised audio format"
MPEG_LAYERS = (0x02, 0x04)  # second header byte & 0x06: layer III (MP3), layer II (MP2)
# Leading bytes -> format name, for formats that go through soundfile
MAGIC_FORMATS = (
    (b"fLaC", "FLAC"),
    (b"OggS", "OGG"),
    (b"ID3", "MP3"),
    (b"FORM", "AIFF"),
    (b"RF64", "RF64"),
    (b"riff", "W64"),
    (b"caff", "CAF"),
    (b".snd", "AU"),
    (b"NIST_1A", "NIST SPHERE"),  # TIMIT's .wav files
)


# ---------------------------------------------------------------------------------------------
# WAV


@dataclass(frozen=True)
class WavFormat:
    """What a WAV fmt chunk says, plus where the samples are."""

    channels: int
    sample_rate: int  # Hz
    bits: int  # container bits per sample: 8, 16, 24, 32 (PCM) or 32, 64 (float)
    is_float: bool
    data_size: int | None  # bytes of sample data; None: read to end of file

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def read_wav(path_or_fileobj) -> tuple[np.ndarray, int]:
    """Read a RIFF/WAVE file: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE.

    Returns (samples float32 [frames, channels], sample rate in Hz). Integer samples are
    scaled to [-1, 1); float samples are returned as stored (not clipped). A data chunk that
    claims more bytes than the file holds (a recorder that stopped early) gives the frames
    present. Raises AudioError naming the file for anything it cannot read.
    """
    with _opened(path_or_fileobj) as (stream, name):
        fmt = read_wav_header(stream, name)
        blocks = [_decode_frames(raw, fmt, name) for raw in _wav_data(stream, fmt)]
    if not blocks:
        raise AudioError(f"{name}: no audio (0 frames)")
    return np.concatenate(blocks), fmt.sample_rate


def read_wav_header(stream: BinaryIO, name: str, head: bytes | None = None) -> WavFormat:
    """Parse the RIFF header and chunks up to the data chunk; leaves `stream` at the samples.

    `head`: the file's first 12 bytes when the caller has already read them (a pipe cannot
    seek back). Only reads forward, in bounded pieces, so a pipe works too."""
    head = stream.read(12) if head is None else head
    if not head:
        raise AudioError(f"{name}: empty file")
    if len(head) < 12 and b"RIFF".startswith(head[:4]):
        raise AudioError(f"{name}: truncated WAV header ({len(head)} bytes)")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt_body = None
    chunk_head = stream.read(8)
    while True:
        if len(chunk_head) < 8:
            missing = "data" if fmt_body is not None else "fmt"
            raise AudioError(f"{name}: no {missing} chunk")
        chunk_id, size = struct.unpack("<4sI", chunk_head)
        if chunk_id == b"data":
            if fmt_body is None:
                raise AudioError(f"{name}: no fmt chunk before the data chunk")
            data_size = None if size in UNSIZED_CHUNK else _clamped_size(stream, size)
            return _parse_fmt(fmt_body, name, data_size)
        if chunk_id == b"fmt ":
            fmt_body = stream.read(min(size, MAX_FMT_BYTES))
            if len(fmt_body) < min(size, MAX_FMT_BYTES):
                raise AudioError(f"{name}: truncated fmt chunk")
            _skip(stream, size - len(fmt_body))
        else:  # LIST, fact, cue, ...: not needed
            _skip(stream, size)
        chunk_head = _next_chunk_head(stream, size)


def _next_chunk_head(stream: BinaryIO, previous_size: int) -> bytes:
    """The 8-byte header of the chunk after one of `previous_size` bytes (up to 8 at the end).

    Chunks are padded to an even size, but a common writer bug leaves the pad byte out: after
    an odd-sized chunk, bytes that start with a chunk ID are taken as the next header (pad
    missing); anything else (the pad byte, 0) is skipped."""
    chunk_head = stream.read(8)
    if previous_size & 1 and len(chunk_head) == 8 and not _is_chunk_id(chunk_head[:4]):
        chunk_head = chunk_head[1:] + stream.read(1)
    return chunk_head


def _is_chunk_id(four: bytes) -> bool:
    """Four printable ASCII characters starting with a letter or digit ("data", "fmt ", "LIST")."""
    return chr(four[0]).isalnum() and all(0x20 <= c < 0x7F for c in four)


def _clamped_size(stream: BinaryIO, size: int) -> int:
    """A chunk's declared size, cut to the bytes left in `stream` when it can tell (a
    truncated recording; a size of 0xFFFFFFFE over 64 kB of samples)."""
    try:
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):  # a pipe: the reads stop at its end anyway
        return size
    return max(0, min(size, end - here))


def _parse_fmt(body: bytes, name: str, data_size: int | None) -> WavFormat:
    """Validate a fmt chunk body and say how its samples are stored."""
    if len(body) < 16:
        raise AudioError(f"{name}: truncated fmt chunk ({len(body)} bytes, need 16)")
    tag, channels, sample_rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise AudioError(f"{name}: truncated WAVE_FORMAT_EXTENSIBLE fmt chunk")
        guid = body[24:40]
        if guid[2:] != KSDATAFORMAT_GUID_TAIL:
            raise AudioError(f"{name}: unsupported WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}")
        tag = struct.unpack("<H", guid[:2])[0]
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise AudioError(f"{name}: unsupported WAV format tag 0x{tag:04x} (need PCM or IEEE float)")
    is_float = tag == WAVE_FORMAT_IEEE_FLOAT
    if bits not in (FLOAT_BITS if is_float else PCM_BITS):
        raise AudioError(f"{name}: unsupported {bits}-bit {'float' if is_float else 'PCM'} WAV")
    if channels == 0:
        raise AudioError(f"{name}: WAV header says 0 channels")
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: WAV header says {channels} channels (at most {MAX_CHANNELS} are read)")
    _check_sample_rate(sample_rate, name)
    return WavFormat(channels, sample_rate, bits, is_float, data_size)


def _decode_frames(raw: bytes, fmt: WavFormat, name: str) -> np.ndarray:
    """Little-endian interleaved sample bytes (whole frames) -> float32 [frames, channels]."""
    if fmt.is_float:
        stored = np.frombuffer(raw, dtype=f"<f{fmt.bits // 8}")
        _check_float_samples(stored, name)  # before the cast: 1e300 must not become inf
        samples = stored.astype(np.float32)
    elif fmt.bits == 8:  # 8-bit WAV is unsigned, centred on 128
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif fmt.bits == 24:
        samples = _int24_to_int32(raw).astype(np.float32) / 2**23
    else:
        ints = np.frombuffer(raw, dtype=f"<i{fmt.bits // 8}")
        samples = ints.astype(np.float32) / 2 ** (fmt.bits - 1)
    return samples.reshape(-1, fmt.channels)


def _check_float_samples(samples: np.ndarray, name: str) -> None:
    """AudioError naming `name` unless every float sample is finite and within
    +-MAX_FLOAT_SAMPLE. Works on the stored precision, so nothing overflows or warns."""
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: NaN or infinite samples")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_FLOAT_SAMPLE:
        raise AudioError(f"{name}: float samples out of range (peak {peak:.3g}; full scale is 1, "
                         f"the limit {MAX_FLOAT_SAMPLE:.3g})")


def _int24_to_int32(raw: bytes) -> np.ndarray:
    """Packed little-endian 24-bit ints -> int32: placed in the top 3 bytes, then shifted
    down arithmetically so the sign extends."""
    triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
    words = np.zeros((len(triples), 4), dtype=np.uint8)
    words[:, 1:] = triples
    return words.view("<i4")[:, 0] >> 8


def _skip(stream: BinaryIO, n_bytes: int) -> None:
    """Move `n_bytes` forward; a pipe is read through in bounded blocks (a chunk may claim 4 GB)."""
    if n_bytes <= 0:
        return
    if stream.seekable():
        stream.seek(n_bytes, os.SEEK_CUR)
        return
    while n_bytes > 0:
        got = len(stream.read(min(n_bytes, READ_BLOCK_BYTES)))
        if got == 0:
            return
        n_bytes -= got


def _check_sample_rate(sample_rate: int, name: str) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {sample_rate} Hz is outside "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )


@contextlib.contextmanager
def _opened(path_or_fileobj) -> Iterator[tuple[BinaryIO, str]]:
    """(binary stream, name for messages) from a path or an open binary file object;
    closes only what it opened."""
    if hasattr(path_or_fileobj, "read"):
        yield path_or_fileobj, str(getattr(path_or_fileobj, "name", "<stream>"))
        return
    with _open_path(path_or_fileobj) as stream:
        yield stream, str(path_or_fileobj)


def _open_path(path) -> BinaryIO:
    """open(path, 'rb') with one-line AudioErrors for the usual failures."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not an audio file") from None
    except PermissionError:
        raise AudioError(f"{path}: permission denied") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot open: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------
# Raw PCM on standard input


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes; AudioError when the process was started with it closed (Python
    then sets sys.stdin to None)."""
    if sys.stdin is None:
        raise AudioError(f"{STDIN_NAME}: standard input is closed")
    return sys.stdin.buffer


def read_pcm16(stream: BinaryIO, name: str = STDIN_NAME) -> np.ndarray:
    """Raw 16-bit little-endian mono PCM from a binary stream -> float32 [samples] in [-1, 1).

    The sample rate is whatever the producer used; nothing here can check it. A trailing odd
    byte (a sample cut in half) is dropped.
    """
    raw = stream.read()
    if not isinstance(raw, (bytes, bytearray)):
        raise AudioError(f"{name}: expected a binary stream of 16-bit PCM")
    samples = _pcm16_to_float(raw[: len(raw) // 2 * 2])
    if len(samples) == 0:
        raise AudioError(f"{name}: no audio (0 samples)")
    return samples


def _pcm16_to_float(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768


# ---------------------------------------------------------------------------------------------
# Other formats (optional soundfile)


def sniff_format(head: bytes) -> str | None:
    """Format name from a file's first 12 bytes: "WAV", "FLAC", "OGG", "MP3", ... or None."""
    if head[:4] == b"RIFF":
        return "WAV"
    # an MPEG frame sync; layer I is left out: its FF FE is also the mark of UTF-16 text
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 in MPEG_LAYERS:
        return "MP3"
    for magic, name in MAGIC_FORMATS:
        if head.startswith(magic):
            return name
    return None


def _import_soundfile(path, kind: str):
    """The soundfile module, or an AudioError saying how to get it."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the package is there but libsndfile is not
        raise AudioError(f"{path}: {kind} audio {SOUNDFILE_HINT}") from None
    return soundfile


def _soundfile_error(path, kind: str, error: Exception) -> AudioError:
    # LibsndfileError.error_string is libsndfile's reason without the repeated file name
    detail = getattr(error, "error_string", None) or str(error) or type(error).__name__
    return AudioError(f"{path}: cannot read as {kind} file: {detail}")


def _open_soundfile(path, kind: str):
    """An open soundfile.SoundFile, with its sample rate checked."""
    soundfile = _import_soundfile(path, kind)
    try:
        sound = soundfile.SoundFile(str(path))
    except Exception as e:  # libsndfile's errors have no common base class worth naming
        raise _soundfile_error(path, kind, e) from None
    try:
        _check_sample_rate(sound.samplerate, str(path))
    except AudioError:
        sound.close()
        raise
    return sound


def _soundfile_blocks(sound, path, kind, block_frames: int) -> Iterator[np.ndarray]:
    """float32 [frames, channels] blocks from an open SoundFile; closes it at the end."""
    with sound:
        while True:
            try:
                block = sound.read(block_frames, dtype="float32", always_2d=True)
            except Exception as e:
                raise _soundfile_error(path, kind, e) from None
            if len(block) == 0:
                return
            _check_float_samples(block, str(path))
            yield block


# ---------------------------------------------------------------------------------------------
# Loading


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any audio file -> float32 mono [samples] at `sample_rate` Hz.

    WAV is read by `read_wav`; the other formats of MAGIC_FORMATS (told apart by their header,
    not their name) by the optional soundfile package; any other header is refused as not
    audio. A file is opened once and read forward only, so a WAV can come from a named pipe.
    Channels are averaged. `path == "-"` reads raw 16-bit little-endian mono PCM already at
    `sample_rate` from standard input.
    """
    if str(path) == STDIN_PATH:
        return read_pcm16(stdin_bytes())
    blocks, file_rate = _open_blocks(path, sample_rate)
    with contextlib.closing(blocks):
        mono = [to_mono(block) for block in blocks]
    if not mono:
        raise AudioError(f"{path}: no audio (0 frames)")
    return resample(np.concatenate(mono), file_rate, sample_rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[frames, channels] -> float32 [frames], the mean of the channels."""
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float32)


def pad_or_trim(audio: np.ndarray, length: int) -> np.ndarray:
    """[..., samples] -> [..., length]: zero-padded at the end or cut, as in whisper."""
    n = audio.shape[-1]
    if n > length:
        return audio[..., :length]
    if n < length:
        pad = [(0, 0)] * (audio.ndim - 1) + [(0, length - n)]
        return np.pad(audio, pad)
    return audio


def iter_audio_chunks(
    path, chunk_seconds: float, sample_rate: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """Yield float32 mono chunks of `chunk_seconds` at `sample_rate` Hz (the last may be
    shorter), reading and resampling block by block: memory does not grow with the file.

    Concatenated, the chunks equal `load_audio(path, sample_rate)`. Errors are raised when the
    generator first runs (bad header) or when the bad block is reached (NaN samples).
    """
    chunk_len = round(chunk_seconds * sample_rate)
    if chunk_len < 1:
        raise ValueError(f"chunk_seconds must give at least one sample, got {chunk_seconds}")
    name = STDIN_NAME if str(path) == STDIN_PATH else str(path)
    blocks, file_rate = _open_blocks(path, sample_rate)
    resampler = Resampler(file_rate, sample_rate)
    n_frames = 0
    pending = _Rechunker(chunk_len)
    with contextlib.closing(blocks):  # closes the file even if the caller stops early
        for block in blocks:
            n_frames += len(block)
            yield from pending.push(resampler(to_mono(block)))
    if n_frames == 0:
        raise AudioError(f"{name}: no audio (0 frames)")
    yield from pending.push(resampler.flush())
    yield from pending.finish()


def _open_blocks(path, sample_rate: int) -> tuple[Iterator[np.ndarray], int]:
    """(generator of float32 [frames, channels] blocks, their sample rate) for any input."""
    if str(path) == STDIN_PATH:
        return (chunk[:, None] for chunk in pcm16_chunks(stdin_bytes())), sample_rate
    stream = _open_path(path)
    try:  # the file is opened once and read forward only, so a named pipe (FIFO) works too
        head = stream.read(12)
        kind = sniff_format(head)
        if kind == "WAV" or not head:
            fmt = read_wav_header(stream, str(path), head)
            return _wav_blocks(stream, fmt, str(path)), fmt.sample_rate
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except BaseException:
        stream.close()
        raise
    stream.close()
    # Only headers of known formats go to libsndfile: on anything else (a PNG or a text file
    # named .wav) it can only fail, and its MPEG probe writes warnings to stderr on the way.
    if kind is None:
        raise AudioError(f"{path}: {UNKNOWN_FORMAT}")
    if not regular:  # libsndfile opens the file itself, and the pipe's head is read already
        raise AudioError(f"{path}: {kind} audio is read only from a regular file, not a pipe")
    sound = _open_soundfile(path, kind)
    return _soundfile_blocks(sound, path, kind, READ_BLOCK_FRAMES), sound.samplerate


def _wav_blocks(stream: BinaryIO, fmt: WavFormat, name: str) -> Iterator[np.ndarray]:
    """float32 [frames, channels] blocks from a stream positioned at WAV sample data; closes it."""
    with stream:
        for raw in _wav_data(stream, fmt):
            yield _decode_frames(raw, fmt, name)


def _wav_data(stream: BinaryIO, fmt: WavFormat) -> Iterator[bytes]:
    """The sample bytes after a WAV header in whole frames, up to its data size or the end of
    the stream: READ_BLOCK_FRAMES frames and at most READ_BLOCK_BYTES (or one frame) per read,
    so no read asks for more than a block whatever the header claims. A cut-off last frame is
    dropped; a short read (a pipe) carries its partial frame over."""
    frame = fmt.frame_bytes
    block = max(1, min(READ_BLOCK_FRAMES, READ_BLOCK_BYTES // frame)) * frame
    remaining = fmt.data_size  # None: to the end of the stream
    carry = b""
    while remaining is None or remaining > 0:
        raw = stream.read(block if remaining is None else min(block, remaining))
        if not raw:
            return
        if remaining is not None:
            remaining -= len(raw)
        raw = carry + raw if carry else raw
        whole = len(raw) // frame * frame
        carry = raw[whole:]
        if whole:
            yield raw[:whole]


def pcm16_chunks(stream: BinaryIO, name: str = STDIN_NAME, max_samples: int = READ_BLOCK_FRAMES,
                 live: bool = False) -> Iterator[np.ndarray]:
    """Raw 16-bit little-endian mono PCM from a binary stream -> float32 [samples] chunks in
    [-1, 1). `live`: hand out whatever a pipe holds as soon as it arrives (`read1`), up to
    `max_samples`, rather than waiting for full blocks."""
    read = getattr(stream, "read1", stream.read) if live else stream.read
    carry = b""  # half a sample left by a short read from a pipe or socket
    while True:
        raw = read(max_samples * 2)
        if not isinstance(raw, (bytes, bytearray)):
            raise AudioError(f"{name}: expected a binary stream of 16-bit PCM")
        if not raw:
            return
        raw = carry + raw
        whole = len(raw) // 2 * 2
        carry = raw[whole:]
        if whole:
            yield _pcm16_to_float(raw[:whole])


class _Rechunker:
    """Collects arrays of any length and hands them out `chunk_len` samples at a time."""

    def __init__(self, chunk_len: int):
        self.chunk_len = chunk_len
        self.parts: list[np.ndarray] = []
        self.size = 0

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        if len(samples):
            self.parts.append(samples)
            self.size += len(samples)
        while self.size >= self.chunk_len:
            joined = np.concatenate(self.parts)
            yield joined[: self.chunk_len]
            rest = joined[self.chunk_len :]
            self.parts, self.size = ([rest] if len(rest) else []), len(rest)

    def finish(self) -> Iterator[np.ndarray]:
        if self.size:
            yield np.concatenate(self.parts)
        self.parts, self.size = [], 0


# ---------------------------------------------------------------------------------------------
# Resampling


def lowpass_filter(n_taps: int, cutoff: float) -> np.ndarray:
    """Kaiser-windowed sinc low-pass, unit gain at DC, as `scipy.signal.firwin(n_taps, cutoff,
    window=('kaiser', KAISER_BETA))`. cutoff is relative to Nyquist (1.0). -> float64 [n_taps]"""
    t = np.arange(n_taps) - (n_taps - 1) / 2
    taps = cutoff * np.sinc(cutoff * t) * np.kaiser(n_taps, KAISER_BETA)
    return taps / taps.sum()


class Resampler:
    """Stateful polyphase resampler from `orig_sr` to `target_sr` Hz, fed chunk by chunk.

    Computes exactly what `scipy.signal.resample_poly(x, up, down)` does with its defaults
    (Kaiser beta 5 windowed sinc of 20 * max(up, down) + 1 taps, zeros beyond both ends):
    output m is the filter centred on upsampled position m * down, and the whole output has
    ceil(n * up / down) samples. up / down is target_sr / orig_sr in lowest terms, or the
    nearest ratio with terms up to MAX_RATIO_TERM when those are larger (`rate_ratio`), so the
    filter stays small for any pair of rates. `__call__` returns every output whose inputs
    have all arrived; `flush` returns the rest (treating the end as zeros) and resets the
    state. Memory is bounded by one chunk plus one filter length.
    """

    def __init__(self, orig_sr: int, target_sr: int = SAMPLE_RATE):
        self.up, self.down = rate_ratio(orig_sr, target_sr)
        self.half_len = HALF_TAPS_PER_RATE * max(self.up, self.down)
        self.n_taps = -(-(2 * self.half_len + 1) // self.up)  # input samples under the filter
        cutoff = 1 / max(self.up, self.down)  # the lower Nyquist, relative to the upsampled one
        self.phases = self._polyphase(lowpass_filter(2 * self.half_len + 1, cutoff))
        self._block = max(1, MAX_BLOCK_ELEMENTS // self.n_taps)
        self.reset()

    def _polyphase(self, taps: np.ndarray) -> np.ndarray:
        """[2 * half_len + 1] filter -> float32 [up, n_taps]: row r holds the taps that meet
        input samples when an output falls r upsampled steps past one, ordered to multiply
        the inputs oldest first."""
        padded = np.zeros(self.n_taps * self.up)
        padded[: len(taps)] = taps * self.up  # upsampling by zero-stuffing costs a gain of up
        phases = padded.reshape(self.n_taps, self.up).T[:, ::-1]
        return np.ascontiguousarray(phases, dtype=np.float32)

    def reset(self) -> None:
        """Forget all input: the next chunk starts a new signal."""
        self._history = np.zeros(self.n_taps - 1, dtype=np.float32)  # zeros before sample 0
        self._history_start = -(self.n_taps - 1)  # absolute index of _history[0]
        self._n_in = 0
        self._n_out = 0

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """float32 [samples] at orig_sr -> float32 [outputs now complete] at target_sr."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"resampler input must be mono [samples], got shape {chunk.shape}")
        self._n_in += len(chunk)
        if self.up == self.down == 1:
            return chunk.copy()
        self._history = np.concatenate([self._history, chunk])
        # output m needs inputs up to (m * down + half_len) // up
        ready = -((self.half_len - self._n_in * self.up) // self.down)
        out = self._outputs(max(ready, self._n_out))
        self._drop_used_history()
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs, float32, with zeros after the last input; then reset."""
        if self.up == self.down == 1:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        total = -(-self._n_in * self.up // self.down)
        if total > self._n_out:
            last_input = ((total - 1) * self.down + self.half_len) // self.up
            missing = last_input + 1 - (self._history_start + len(self._history))
            self._history = np.concatenate([self._history, np.zeros(max(missing, 0), np.float32)])
        out = self._outputs(max(total, self._n_out))
        self.reset()
        return out

    def _outputs(self, end: int) -> np.ndarray:
        """Outputs self._n_out .. end-1, in blocks so the gathered windows stay small."""
        if end <= self._n_out:
            return np.zeros(0, dtype=np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(self._history, self.n_taps)
        parts = []
        for first in range(self._n_out, end, self._block):
            m = np.arange(first, min(first + self._block, end), dtype=np.int64)
            position = m * self.down + self.half_len
            newest = position // self.up
            rows = windows[newest - (self.n_taps - 1) - self._history_start]
            parts.append(np.einsum("mk,mk->m", rows, self.phases[position % self.up]))
        self._n_out = end
        return np.concatenate(parts)

    def _drop_used_history(self) -> None:
        oldest_needed = (self._n_out * self.down + self.half_len) // self.up - (self.n_taps - 1)
        drop = oldest_needed - self._history_start
        if drop > 0:
            self._history = self._history[drop:]
            self._history_start += drop


def rate_ratio(orig_sr: int, target_sr: int) -> tuple[int, int]:
    """(up, down) the resampler uses from orig_sr to target_sr Hz: target_sr / orig_sr in
    lowest terms, or, when a term exceeds MAX_RATIO_TERM, the closest fraction whose terms do
    not (its relative error is below 1 / MAX_RATIO_TERM; 191999 -> 16000 Hz gives 1 / 12)."""
    if int(orig_sr) != orig_sr or int(target_sr) != target_sr or orig_sr < 1 or target_sr < 1:
        raise ValueError(f"sample rates must be positive integers, got {orig_sr}, {target_sr}")
    exact = Fraction(int(target_sr), int(orig_sr))
    if max(exact.numerator, exact.denominator) <= MAX_RATIO_TERM:
        return exact.numerator, exact.denominator
    # limit_denominator bounds the denominator; on the ratio taken below 1 that bounds both terms
    near = min(exact, 1 / exact).limit_denominator(MAX_RATIO_TERM)
    if near == 0:
        raise ValueError(f"cannot resample from {orig_sr} to {target_sr} Hz: the ratio is beyond "
                         f"1:{MAX_RATIO_TERM}")
    return (near.numerator, near.denominator) if exact < 1 else (near.denominator, near.numerator)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """float32 [samples] at orig_sr Hz -> float32 [ceil(samples * up / down)] at target_sr Hz
    (up / down = `rate_ratio(orig_sr, target_sr)`, target_sr / orig_sr for every common rate),
    anti-aliased; equals `scipy.signal.resample_poly(audio, up, down)` with its defaults."""
    resampler = Resampler(orig_sr, target_sr)
    return np.concatenate([resampler(audio), resampler.flush()])
