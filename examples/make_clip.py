"""Write a synthetic, speech-like example clip, so a fresh clone has audio to run on without
tracking any audio file (and without copying any corpus):

    python examples/make_clip.py examples/hello.wav

The clip is made by a source-filter model, not recorded: phrases of vowel-like syllables, each
a harmonic series on a falling pitch contour (F0 ~100-220 Hz) shaped by three formant
resonances, with short gaps between syllables and longer pauses between phrases (so a voice
activity detector has speech and silence to find). It carries no emotion and no words; it only
exercises the whole pipeline. numpy and the standard library only.
"""
from __future__ import annotations

import argparse
import pathlib
import wave

import numpy as np

SAMPLE_RATE = 16000  # Hz, as edge_ser.config.SAMPLE_RATE
SECONDS = 9.0  # clip length
SEED = 0
# (F1, F2, F3) in Hz of a few vowels: /a/, /i/, /u/, /e/, /o/.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))
BANDWIDTH_HZ = (90.0, 110.0, 170.0)  # formant bandwidths
MAX_HARMONIC_HZ = 5000.0


def formant_gain(freq: np.ndarray, formants) -> np.ndarray:
    """Spectral envelope |H(f)| of three resonances (sum of Lorentzian peaks), any shape."""
    return sum(1.0 / (1.0 + ((freq - f) / (b / 2)) ** 2) for f, b in zip(formants, BANDWIDTH_HZ)) + 0.02


def syllable(seconds: float, f0_start: float, f0_end: float, formants) -> np.ndarray:
    """One voiced syllable: float64 [seconds * SAMPLE_RATE], harmonics of a linear F0 glide,
    each weighted by the formant envelope at its frequency, with a raised-cosine envelope."""
    n = int(seconds * SAMPLE_RATE)
    f0 = np.linspace(f0_start, f0_end, n)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    k = np.arange(1, int(MAX_HARMONIC_HZ / max(f0_start, f0_end)) + 1)[:, None]
    harmonics = formant_gain(k * f0[None, :], formants) / k * np.sin(k * phase[None, :])
    return harmonics.sum(axis=0) * np.hanning(n)


def synthetic_speech(seconds: float = SECONDS, seed: int = SEED) -> np.ndarray:
    """The example clip: float32 [seconds * SAMPLE_RATE] at SAMPLE_RATE, peak 0.5, seeded."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    out, at = np.zeros(n), int(0.3 * SAMPLE_RATE)
    while at < n:
        pitch = rng.uniform(120, 200)  # each phrase starts higher and declines
        for _ in range(rng.integers(3, 7)):
            length = rng.uniform(0.15, 0.3)
            piece = syllable(length, pitch, pitch * 0.9, VOWELS[rng.integers(len(VOWELS))])
            end = min(n, at + len(piece))
            out[at:end] += piece[: end - at]
            at = end + int(rng.uniform(0.03, 0.1) * SAMPLE_RATE)
            pitch *= 0.95
        at += int(rng.uniform(0.4, 0.8) * SAMPLE_RATE)
    out += 1e-3 * rng.normal(size=n)  # a little room noise, so silence is not digital zero
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def write_wav(path: pathlib.Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> pathlib.Path:
    """float32 [samples] in [-1, 1] -> 16-bit mono PCM WAV, written to a temporary name and renamed."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path, help="WAV file to write, e.g. examples/hello.wav")
    ap.add_argument("--seconds", type=float, default=SECONDS)
    args = ap.parse_args(argv)
    if args.seconds <= 0:
        ap.error(f"--seconds {args.seconds}: must be > 0")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(args.out, synthetic_speech(args.seconds))
    print(f"wrote {args.out} ({args.seconds:g} s synthetic speech-like audio, {SAMPLE_RATE} Hz)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
