"""Inputs and host references for the standalone C check (harness.c, run by check.sh).

    python deploy/aarch64/make_cases.py CASES_DIR

Writes raw little-endian files the harness reads without Python: manifest.txt (the feature and
VAD parameters, the tolerance, the signals), window.f64 and filterbank.f64 (the tables
`edge_ser.features` hands to C), and per signal NAME.audio.f32, NAME.reference.f64 (numpy
reference log-mel [n_mels, frames]), NAME.host_logmel.f32 (this host's C extractor),
NAME.host_speech.u8 and NAME.host_score.f32 (this host's C VAD on that log-mel).
EmoDB audio is read from EDGE_SER_DATA: CASES_DIR must lie outside the repository (licence).
"""
from __future__ import annotations

import os
import pathlib
import sys

import numpy as np

from edge_ser import _vad, audio, features, reference, vad

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = vad.VAD_CONFIG  # the VAD's log-mel; also the default model's (FeatureConfig())
TOLERANCE = 1e-4  # max abs log-mel error edge_ser.reference promises for the C extractor
SECONDS = 2.0  # each signal's length, as the model's windows
EMODB_CLIPS = ("03a01Fa.wav", "08a01Na.wav")  # a male and a female speaker, speech and pauses
SWEEP_HZ = (50.0, 7900.0)  # logarithmic sine sweep range, below Nyquist
SWEEP_AMPLITUDE = 0.5
NOISE_RMS = 0.1  # white Gaussian noise
SPEECH_SNR_DB = 10.0  # speech in white noise, as the VAD was tuned on: decisions nearer its thresholds
SEED = 0


def data_root() -> pathlib.Path:
    """The speech corpora: EDGE_SER_DATA, relative to the repository root (as tests/conftest.py)."""
    return REPO / os.environ.get("EDGE_SER_DATA", "../shared/data")


def emodb_clip(name: str) -> np.ndarray:
    """A real EmoDB clip, float32 [samples] at 16 kHz (the corpus copy is 2.0 s long)."""
    path = data_root() / "emodb" / "wav" / name
    if not path.is_file():
        sys.exit(f"make_cases: {path}: speech data not found: set EDGE_SER_DATA")
    return audio.load_audio(path, CONFIG.sample_rate)


def sine_sweep(n: int) -> np.ndarray:
    """Exponential sweep over SWEEP_HZ, float32 [n]."""
    t = np.arange(n) / CONFIG.sample_rate
    f0, f1 = SWEEP_HZ
    rate = np.log(f1 / f0) / SECONDS
    phase = 2 * np.pi * f0 * (np.exp(rate * t) - 1) / rate
    return (SWEEP_AMPLITUDE * np.sin(phase)).astype(np.float32)


def white_noise(n: int, rms: float) -> np.ndarray:
    """Gaussian white noise, float32 [n], fixed seed."""
    return np.random.default_rng(SEED).normal(scale=rms, size=n).astype(np.float32)


def in_noise(speech: np.ndarray, snr_db: float) -> np.ndarray:
    """speech float32 [n] plus white noise snr_db below its RMS (over the whole clip)."""
    rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    return speech + white_noise(len(speech), rms * 10 ** (-snr_db / 20))


def signals() -> dict[str, np.ndarray]:
    """name -> float32 [samples]: real speech, clean and in noise, a sweep, silence, noise."""
    n = CONFIG.n_samples(SECONDS)
    cases = {f"emodb_{name.removesuffix('.wav')}": emodb_clip(name) for name in EMODB_CLIPS}
    first = next(iter(cases))
    cases[f"{first}_snr{SPEECH_SNR_DB:g}dB"] = in_noise(cases[first], SPEECH_SNR_DB)
    cases["sine_sweep"] = sine_sweep(n)
    cases["silence"] = np.zeros(n, np.float32)
    cases["white_noise"] = white_noise(n, NOISE_RMS)
    return cases


def vad_parameters() -> dict:
    """The VAD's parameters as speech_frames passes them to C (times in frames)."""
    band_lo, band_hi = vad._speech_bands()
    return dict(band_lo=band_lo, band_hi=band_hi, **vad._frame_params({}))


def host_vad(log_mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log-mel [n_mels, frames] -> (uint8 [frames] decisions, float32 [frames] score_db), via
    the same C call as vad.speech_frames."""
    speech = np.zeros(log_mel.shape[1], np.uint8)
    score = np.zeros(log_mel.shape[1], np.float32)
    _vad.detect(log_mel, speech, score, **vad_parameters())
    if not (speech.astype(bool) == vad.speech_frames(log_mel)).all():
        sys.exit("make_cases: _vad.detect here disagrees with vad.speech_frames: update vad_parameters")
    return speech, score


def manifest(cases: dict[str, np.ndarray]) -> str:
    """manifest.txt: "key value" lines, floats in full precision, then "signal NAME N" lines."""
    values = dict(
        n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length, n_mels=CONFIG.n_mels,
        log_floor=CONFIG.log_floor, tolerance=TOLERANCE, **vad_parameters(),
    )
    lines = [f"{key} {value!r}" for key, value in values.items()]
    lines += [f"signal {name} {len(x)}" for name, x in cases.items()]
    return "\n".join(lines) + "\n"


def write_cases(out: pathlib.Path) -> None:
    """All of the harness's inputs into out."""
    if out.resolve().is_relative_to(REPO):
        sys.exit(f"make_cases: {out}: inside the repository; EmoDB audio may not be copied there")
    out.mkdir(parents=True, exist_ok=True)
    cases = signals()
    (out / "manifest.txt").write_text(manifest(cases))
    reference.hann_window(CONFIG).astype("<f8").tofile(out / "window.f64")
    reference.mel_filterbank(CONFIG).astype("<f8").tofile(out / "filterbank.f64")
    for name, x in cases.items():
        host_mel = features.log_mel(x, CONFIG)
        speech, score = host_vad(host_mel)
        x.astype("<f4").tofile(out / f"{name}.audio.f32")
        reference.log_mel(x, CONFIG).astype("<f8").tofile(out / f"{name}.reference.f64")
        host_mel.astype("<f4").tofile(out / f"{name}.host_logmel.f32")
        speech.tofile(out / f"{name}.host_speech.u8")
        score.astype("<f4").tofile(out / f"{name}.host_score.f32")
    print(f"make_cases: {len(cases)} signals into {out} (host kernel: {features.extractor(CONFIG).kernel})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python deploy/aarch64/make_cases.py CASES_DIR")
    write_cases(pathlib.Path(sys.argv[1]))
