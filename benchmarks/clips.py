"""Benchmark inputs made here, so the suites need no corpus: noise for the feature paths (their
cost does not depend on content) and the repository's synthetic speech example for the VAD and
end-to-end runs (whose windowing follows the speech)."""
from __future__ import annotations

import functools
import pathlib

import numpy as np

SAMPLE_RATE = 16000
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hello.wav"


def noise(seconds: float) -> np.ndarray:
    """Speech-band noise with a slow 3 Hz envelope: float32 [seconds * 16000], seeded."""
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    envelope = 0.5 + 0.5 * np.sin(np.arange(n) * 2 * np.pi * 3 / SAMPLE_RATE)
    return (0.1 * envelope * rng.normal(size=n)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _example() -> np.ndarray:
    from edge_ser.audio import load_audio

    return load_audio(str(EXAMPLE))


def speech(seconds: float) -> np.ndarray:
    """The synthetic speech example (espeak-ng), repeated or cut to float32 [seconds * 16000]."""
    x = _example()
    n = int(seconds * SAMPLE_RATE)
    return np.ascontiguousarray(np.tile(x, -(-n // len(x)))[:n])


def write_wav(path: pathlib.Path, x: np.ndarray) -> pathlib.Path:
    """float32 [samples] -> 16-bit mono PCM WAV at 16 kHz."""
    import wave

    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return path
