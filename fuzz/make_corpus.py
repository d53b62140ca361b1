"""The seed corpus the fuzz targets start from, generated (`python -m fuzz` writes it to
OUT/seeds; `python -m fuzz.make_corpus [DIR]` to look at it, default fuzz/out/seeds), one
directory per target.

  wav_reader, stream_reader  small WAV files in every format the reader supports (PCM 8/16/24/32,
                             float 32/64, WAVE_FORMAT_EXTENSIBLE; mono, stereo, 6 channels; 8 to
                             192 kHz) and odd chunk layouts (LIST/fact chunks, odd sizes with
                             their pad byte, unsized and over-long data chunks, a cut-off last
                             frame); stream_reader's seeds carry its 4 leading parameter bytes
  features, vad              parameter bytes (see `feature_seeds`, `vad_seeds`) then audio
Model seeds come from `fuzz.models`. Deterministic: the same files every time, so they need not
be stored (fuzz/corpus keeps only inputs that runs found).
"""
from __future__ import annotations

import pathlib
import struct
import sys

import numpy as np

DEFAULT_DIR = pathlib.Path(__file__).resolve().parent / "out" / "seeds"
FRAMES = 160  # per seed file: small inputs fuzz fast
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def _tone(frames: int, channels: int, rate: int) -> np.ndarray:
    """float64 [frames, channels] in [-0.5, 0.5]: a 440 Hz tone, shifted per channel."""
    t = np.arange(frames)[:, None] / rate
    return 0.5 * np.sin(2 * np.pi * 440 * t + np.arange(channels)[None, :])


def _samples(x: np.ndarray, bits: int, is_float: bool) -> bytes:
    if is_float:
        return x.astype(f"<f{bits // 8}").tobytes()
    if bits == 8:
        return np.round(x * 127 + 128).astype(np.uint8).tobytes()
    ints = np.round(x * (2 ** (bits - 1) - 1)).astype("<i4")
    if bits == 24:
        return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return ints.astype(f"<i{bits // 8}").tobytes()


def _fmt(channels: int, rate: int, bits: int, is_float: bool, extensible: bool) -> bytes:
    tag = 3 if is_float else 1
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block, block, bits)
    if extensible:
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + GUID_TAIL
    return body


def _chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size) + body + b"\x00" * (len(body) & 1)


def wav(channels=1, rate=16000, bits=16, is_float=False, extensible=False, frames=FRAMES,
        before_fmt=b"", before_data=b"", data_size=None, tail=b"") -> bytes:
    """A RIFF/WAVE file; before_fmt/before_data: extra chunks; data_size: what the data chunk
    header claims (None: the truth); tail: bytes after the samples."""
    data = _samples(_tone(frames, channels, rate), bits, is_float) + tail
    body = (b"WAVE" + before_fmt + _chunk(b"fmt ", _fmt(channels, rate, bits, is_float, extensible))
            + before_data + b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_seeds() -> dict[str, bytes]:
    seeds = {f"pcm{bits}.wav": wav(bits=bits) for bits in (8, 16, 24, 32)}
    seeds.update({f"float{bits}.wav": wav(bits=bits, is_float=True) for bits in (32, 64)})
    seeds.update({
        "stereo-44k1.wav": wav(channels=2, rate=44100),
        "six-channels-48k-24bit.wav": wav(channels=6, rate=48000, bits=24),
        "extensible-pcm16.wav": wav(extensible=True),
        "extensible-float32-stereo.wav": wav(channels=2, bits=32, is_float=True, extensible=True),
        "8k.wav": wav(rate=8000),
        "11025-pcm8.wav": wav(rate=11025, bits=8),
        "22050-float64.wav": wav(rate=22050, bits=64, is_float=True),
        "192k.wav": wav(rate=192000, frames=400),
        "list-before-fmt.wav": wav(before_fmt=_chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00edge\x00")),
        "odd-chunk-before-data.wav": wav(before_data=_chunk(b"fact", b"\x01\x02\x03")),
        "unsized-data.wav": wav(data_size=0xFFFFFFFF),
        "zero-sized-data.wav": wav(data_size=0),
        "data-size-too-long.wav": wav(data_size=1 << 20),
        "cut-last-frame.wav": wav(channels=2, tail=b"\x01\x02\x03"),
        "one-frame.wav": wav(frames=1),
        "header-only.wav": wav(frames=0),
    })
    return seeds


def audio_bytes(n: int, mode: int) -> bytes:
    """`ByteReader.audio` input: a mode byte, then n samples of a tone with noise."""
    x = 0.3 * np.sin(np.arange(n) * 0.07) + 0.01 * np.random.default_rng(n).normal(size=n)
    if mode == 0:
        return b"\x00" + np.round(x * 32767).astype("<i2").tobytes()
    if mode == 1:
        return b"\x01" + x.astype("<f4").tobytes()
    return b"\x02" + np.round(x * 100).astype(np.int8).tobytes()


def feature_seeds() -> dict[str, bytes]:
    """A preset config (byte 0: 0 picks a preset, byte 1 which one), n_mfcc, then audio; and one
    random config (byte 0 not a multiple of 4)."""
    return {
        "default-pcm16.bin": b"\x00\x00\x13" + audio_bytes(1600, 0),
        "whisper-float.bin": b"\x00\x01\x13" + audio_bytes(800, 1),
        "utterance-quiet.bin": b"\x00\x02\x13" + audio_bytes(800, 2),
        "n_fft-1024.bin": b"\x00\x04\x13" + audio_bytes(1200, 0),
        "random-config.bin": bytes(range(1, 24)) + audio_bytes(1200, 0),
    }


def vad_seeds() -> dict[str, bytes]:
    speechlike = np.concatenate([np.zeros(4000), 0.3 * np.sin(np.arange(8000) * 0.05) * np.hanning(8000),
                                 np.zeros(4000)]) + 1e-3 * np.random.default_rng(0).normal(size=16000)
    pcm = b"\x00" + np.round(speechlike * 32767).astype("<i2").tobytes()
    return {"defaults.bin": b"\x00\x00\x10" + pcm, "tuned.bin": b"\x01" + bytes(range(40, 62)) + pcm}


def corpus() -> dict[str, dict[str, bytes]]:
    """target -> {file name: content}"""
    wavs = wav_seeds()
    return {
        "wav_reader": wavs,
        "stream_reader": {name: b"\x07\x00\x64\x00" + content for name, content in wavs.items()},
        "features": feature_seeds(),
        "vad": vad_seeds(),
    }


def write(root: pathlib.Path) -> int:
    """Write the corpus under root; -> total bytes."""
    for target, files in corpus().items():
        write_target(root / target, files)
    return sum(len(content) for files in corpus().values() for content in files.values())


def write_target(directory: pathlib.Path, files: dict[str, bytes]) -> None:
    """One target's seeds {name: content} into `directory` (made when missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    print(f"{out}: {write(out)} bytes of seeds")
