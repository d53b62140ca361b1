"""The fuzz targets: each takes one input's bytes and returns, or raises.

Returning means the input was handled or refused with one of the runtime's documented errors
(`edge_ser.errors.EdgeSerError`: AudioError, ModelError, ...). Raising anything else is a
finding: `Disagreement` when two computations that must agree do not, any other type when the
runtime let an undocumented exception escape.

  wav_reader     bytes as a file: `read_wav` (and `load_audio`, which sends what is not RIFF to
                 soundfile): shapes, finite samples in range, the resampled length
  stream_reader  a block size, a chunk length, then a file: `iter_audio_chunks` (block reader,
                 streaming resampler) must give `load_audio`'s samples, or refuse the same file
  features       a random FeatureConfig within the contract's bounds, then audio: the C
                 extractor against the numpy reference, its generic against its AVX2 kernel,
                 its normalisations and MFCC against the same maths on its own log-mel
  vad            random detector parameters, a chunking, then audio: the C detector against
                 `fuzz.vad_reference`, and `StreamingVAD` against the offline `speech_frames`
  onnx_model     a (mutated) ONNX model file: load it and score a clip in a child process
  tflite_model   the same for a TFLite file
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile

import numpy as np

from edge_ser import audio, features, reference, vad
from edge_ser.config import (LOGS, MAX_N_FFT, MAX_N_MELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, NORMALIZATIONS,
                             PADS, WHISPER_FEATURES, FeatureConfig, _factors_into)
from edge_ser.errors import AudioError

from . import isolation, vad_reference
from .data import ByteReader, bucket, note

MAX_FEATURE_ELEMENTS = 1 << 22  # frames x n_fft per case: the float64 reference stays ~32 MB
MAX_VAD_SAMPLES = 4 * 16000  # 4 s of audio per VAD case
EDGE_SER_ROOT = os.path.dirname(features.__file__)  # the runtime's code, traced in model cases
MODEL_CLIP_SECONDS = 1.0  # the clip each model case scores
SMALL_N_FFT = 2048  # most feature cases stay at or under this; 1 in 16 may go up to MAX_N_FFT
VALID_N_FFT = tuple(n for n in range(4, MAX_N_FFT + 1, 2) if _factors_into(n // 2, (2, 3, 5)))
# Agreement of mel power, C (float32) against the float64 reference: relative to the value, and
# absolute relative to the loudest band of the frame (float32 FFT rounding leaks ~1e-7 of a
# frame's energy into every bin; the log of a band below that is rounding, not signal).
POWER_RTOL, POWER_FRAME_ATOL = 1e-3, 1e-5
KERNEL_RTOL, KERNEL_FRAME_ATOL = 1e-4, 1e-6  # generic against AVX2: both float32
# The configs the runtime meets in practice (a quarter of the feature cases start from one).
PRESET_CONFIGS = (FeatureConfig(), WHISPER_FEATURES, FeatureConfig(normalize="utterance"), FeatureConfig(n_mels=128),
                  FeatureConfig(n_fft=1024, win_length=800, hop_length=320, n_mels=80, fmin=50.0, fmax=7600.0))
VAD_CUE_TOL_DB = 0.02  # the frame stage's cues in dB, C float32 against the float64 reference


class Disagreement(AssertionError):
    """Two computations the runtime promises agree did not."""


def _check(condition, message: str) -> None:
    if not condition:
        raise Disagreement(message)


class _Scratch:
    """One temporary directory per process for the files a case needs (inputs and models)."""

    directory: str | None = None

    @classmethod
    def path(cls, name: str) -> str:
        if cls.directory is None:
            cls.directory = tempfile.mkdtemp(prefix="edge-ser-fuzz-")
        return os.path.join(cls.directory, name)


def _write(name: str, data: bytes) -> str:
    path = _Scratch.path(name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------------------------
# Audio input


def wav_reader(data: bytes) -> None:
    """`read_wav` on the bytes, then `load_audio` on them as a file."""
    import io

    try:
        samples, rate = audio.read_wav(io.BytesIO(data))
    except AudioError:
        samples = None
    if samples is not None:
        _check(samples.dtype == np.float32 and samples.ndim == 2 and samples.shape[0] > 0 and samples.shape[1] > 0,
               f"read_wav gave {samples.dtype} {samples.shape}")
        _check(audio.MIN_SAMPLE_RATE <= rate <= audio.MAX_SAMPLE_RATE, f"read_wav passed a rate of {rate} Hz")
        _check(np.isfinite(samples).all(), "read_wav returned non-finite samples")
    path = _write("input.wav", data)
    try:
        mono = audio.load_audio(path)
    except AudioError:
        return
    _check(mono.dtype == np.float32 and mono.ndim == 1 and len(mono) > 0, f"load_audio gave {mono.dtype} {mono.shape}")
    _check(np.isfinite(mono).all(), "load_audio returned non-finite samples")
    if samples is not None:
        expected = -(-len(samples) * audio.SAMPLE_RATE // rate)
        _check(len(mono) == expected, f"{len(samples)} frames at {rate} Hz resampled to {len(mono)} samples, "
                                      f"not {expected}")


def stream_reader(data: bytes) -> None:
    """The streaming reader against the whole-file reader on one file, with the block size and
    chunk length the first bytes choose."""
    reader = ByteReader(data)
    block_frames = reader.int_in(1, 4096)
    chunk_seconds = reader.int_in(1, 2000) / 1000
    note("stream", bucket(block_frames), bucket(chunk_seconds * 1000))
    data = reader.rest()
    path = _write("stream.wav", data)
    whole_error = streamed_error = None
    # A lossy decoder (MP3 through soundfile) resynchronises on corrupt frames differently for
    # different read sizes; the runtime reads whole and streamed files in the same blocks, so
    # such files are compared at the same block size. WAV must agree across block sizes.
    whole_blocks = block_frames if audio.sniff_format(data[:12]) not in ("WAV", None) else audio.READ_BLOCK_FRAMES
    try:
        with _read_block_frames(whole_blocks):
            whole = audio.load_audio(path)
    except AudioError as e:
        whole_error = e
    try:
        with _read_block_frames(block_frames):
            chunks = list(audio.iter_audio_chunks(path, chunk_seconds))
    except AudioError as e:
        streamed_error = e
    _check((whole_error is None) == (streamed_error is None),
           f"whole-file reader: {whole_error or 'read'}; streaming reader: {streamed_error or 'read'}")
    if whole_error is not None:
        return
    chunk_len = round(chunk_seconds * audio.SAMPLE_RATE)
    _check(all(len(c) == chunk_len for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_len,
           f"chunk lengths {[len(c) for c in chunks][:8]}... for chunks of {chunk_len}")
    streamed = np.concatenate(chunks)
    _check(streamed.shape == whole.shape, f"streamed {streamed.shape[0]} samples, whole file {whole.shape[0]} "
                                          f"(blocks of {block_frames} frames, chunks of {chunk_seconds} s)")
    worst = float(np.abs(streamed - whole).max())
    _check(worst <= 1e-6, f"streamed samples differ from the whole file's by {worst:.3g} "
                          f"(blocks of {block_frames} frames, chunks of {chunk_seconds} s)")


@contextlib.contextmanager
def _read_block_frames(frames: int):
    """Make the WAV block reader read `frames` frames at a time (its default, 65536, is longer
    than any fuzz input, so block boundaries would never be crossed)."""
    saved = audio.READ_BLOCK_FRAMES
    audio.READ_BLOCK_FRAMES = frames
    try:
        yield
    finally:
        audio.READ_BLOCK_FRAMES = saved


# ---------------------------------------------------------------------------------------------
# Features


def feature_config(reader: ByteReader) -> FeatureConfig:
    """A FeatureConfig anywhere within the bounds `edge_ser.config` documents (n_fft mostly small,
    so that a case stays fast)."""
    sample_rate = reader.choice((16000, 8000, 22050, 44100, 48000, None))
    sample_rate = sample_rate or reader.int_in(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    small = [n for n in VALID_N_FFT if n <= SMALL_N_FFT]
    n_fft = reader.choice(VALID_N_FFT if reader.byte() % 16 == 15 else small)
    win_length = reader.int_in(1, n_fft)
    hop_length = reader.int_in(1, min(sample_rate, 2 * n_fft))
    n_mels = reader.int_in(1, min(n_fft // 2 + 1, MAX_N_MELS))
    nyquist = sample_rate / 2
    fmin = reader.float_in(0.0, nyquist - 1.001) if reader.byte() % 2 else 0.0
    # MIN_BAND_HZ and a margin: fmin + 1.0 - fmin can round to just under 1.0
    fmax = reader.float_in(fmin + 1.001, nyquist) if reader.byte() % 2 else nyquist
    log_floor = 10.0 ** -reader.int_in(0, 30) if reader.byte() % 2 else max(reader.unit(), 1e-30)
    normalize = reader.choice(NORMALIZATIONS)
    log = "log10" if normalize == "whisper" else reader.choice(LOGS)
    return FeatureConfig(sample_rate=sample_rate, win_length=win_length, hop_length=hop_length, n_fft=n_fft,
                         n_mels=n_mels, fmin=fmin, fmax=fmax, log_floor=log_floor, normalize=normalize, log=log,
                         pad=reader.choice(PADS), drop_last_frame=bool(reader.byte() % 2))


def features_target(data: bytes) -> None:
    """C log-mel and MFCC on random configs and audio, against the reference and each other."""
    reader = ByteReader(data)
    config = reader.choice(PRESET_CONFIGS) if reader.byte() % 4 == 0 else feature_config(reader)
    n_mfcc = reader.int_in(1, config.n_mels)
    max_samples = max(1, MAX_FEATURE_ELEMENTS // config.n_fft * config.hop_length)
    x = reader.audio(max_samples)
    note("features", bucket(config.n_fft), bucket(config.hop_length), bucket(config.win_length), bucket(config.n_mels),
         config.normalize, config.log, config.pad, config.drop_last_frame, bucket(len(x)), bucket(config.sample_rate))
    try:
        out = features.log_mel(x, config)
    except AudioError:
        _check(not np.isfinite(x).all(), f"AudioError for finite audio of {len(x)} samples")
        return
    _check(np.isfinite(x).all(), "non-finite audio was not refused")
    _check(out.shape == (config.n_mels, config.n_frames(len(x))), f"log_mel shape {out.shape} for {len(x)} samples, {config}")
    _check(np.isfinite(out).all(), f"non-finite log-mel for finite audio (peak |x| {np.abs(x).max(initial=0):.3g}), {config}")
    if out.shape[1] == 0 or np.abs(x).max() > audio.MAX_FLOAT_SAMPLE:
        # Beyond the readers' range (|x| <= 2**31) only finiteness is promised: at 1e38 the
        # float32 FFT's rounding outweighs narrow bands.
        return
    plain = _c_log_mel(x, dataclasses.replace(config, normalize="none"), "auto")
    _check_power(plain, reference.log_mel(x, dataclasses.replace(config, normalize="none")), config,
                 POWER_RTOL, POWER_FRAME_ATOL, "C extractor against the reference")
    _check_kernels(x, config)
    _check_normalisation(out, plain, config)
    mfcc = features.mfcc(x, config, n_mfcc)
    expected = reference.dct_matrix(n_mfcc, config.n_mels) @ out.astype(np.float64)
    scale = 1.0 + np.abs(out).max()
    _check(np.abs(mfcc - expected).max() <= 1e-5 * scale * math.sqrt(config.n_mels),
           f"MFCC differs from the DCT of the log-mel by {np.abs(mfcc - expected).max():.3g}, {config}")


def _c_log_mel(x: np.ndarray, config: FeatureConfig, kernel: str) -> np.ndarray:
    out = np.empty((config.n_mels, config.n_frames(len(x))), np.float32)
    features.extractor(config, kernel=kernel).log_mel(x, out)
    return out


def _power(log_mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    log_mel = np.asarray(log_mel, np.float64)
    return np.exp(log_mel) if config.log == "ln" else 10.0 ** log_mel


def _check_power(got: np.ndarray, want: np.ndarray, config: FeatureConfig, rtol: float, frame_atol: float,
                 what: str) -> None:
    """Two un-normalised log-mels [n_mels, frames] agree as mel power: within rtol of the value
    plus frame_atol of the frame's loudest band (both floored at log_floor)."""
    p_got, p_want = _power(got, config), _power(want, config)
    allowed = rtol * p_want + frame_atol * p_want.max(axis=0, keepdims=True) + rtol * config.log_floor
    excess = np.abs(p_got - p_want) - allowed
    if (excess > 0).any():
        band, frame = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise Disagreement(f"{what}: band {band} frame {frame}: {got[band, frame]:.6g} against "
                           f"{want[band, frame]:.6g} (log), {config}")


def _check_kernels(x: np.ndarray, config: FeatureConfig) -> None:
    """The generic and AVX2 kernels, where this CPU has AVX2."""
    plain = dataclasses.replace(config, normalize="none")
    try:
        avx2 = _c_log_mel(x, plain, "avx2")
    except ValueError:  # "kernel avx2 is not available on this CPU"
        return
    _check_power(_c_log_mel(x, plain, "generic"), avx2, config, KERNEL_RTOL, KERNEL_FRAME_ATOL,
                 "generic kernel against AVX2")


def _check_normalisation(out: np.ndarray, plain: np.ndarray, config: FeatureConfig) -> None:
    """The C normalisation against the reference's, both applied to the C's plain log-mel."""
    if config.normalize == "none":
        _check(np.array_equal(out, plain), f"normalize 'none' is not the plain log-mel, {config}")
        return
    want = reference.NORMALIZERS[config.normalize](plain.astype(np.float64))
    if config.normalize == "utterance":  # float32 mean/std: rounding of |x| amplified by 1/std
        std = np.maximum(plain.astype(np.float64).std(axis=1, keepdims=True), 1e-5)
        tol = 1e-4 + 1e-6 * (1 + np.abs(plain).max(axis=1, keepdims=True)) / std
    else:
        tol = 1e-5 * (1 + np.abs(plain).max())
    worst = np.abs(out - want) - tol
    _check(not (worst > 0).any(), f"normalize {config.normalize!r} differs from the reference's by "
                                  f"{np.abs(out - want).max():.3g}, {config}")


# ---------------------------------------------------------------------------------------------
# VAD


def vad_params(reader: ByteReader) -> dict:
    """Detector parameters (`vad.default_params()` keywords) within what the C code accepts."""
    return dict(
        snr_threshold_db=reader.float_in(-5.0, 30.0), band_smoothing=reader.float_in(0.0, 0.99),
        score_smoothing=reader.float_in(0.0, 0.99), flatness_max_db=reader.float_in(-20.0, 0.0),
        strong_snr_db=reader.float_in(0.0, 40.0), floor_rise_db=reader.float_in(0.01, 5.0),
        floor_fall_db=reader.float_in(0.01, 10.0), min_level_db=reader.float_in(-200.0, 0.0),
        hangover=reader.int_in(0, 50) / 100, min_gap=reader.int_in(0, 100) / 100,
        min_speech=reader.int_in(0, 50) / 100, pre_roll=reader.int_in(0, 20) / 100)


def vad_target(data: bytes) -> None:
    """The C detector against the numpy reading of it; streaming against offline."""
    reader = ByteReader(data)
    params = vad.default_params() if reader.byte() % 4 == 0 else vad_params(reader)
    chunk = reader.int_in(1, 20000)
    x = reader.audio(MAX_VAD_SAMPLES)
    note("vad", bucket(chunk), bucket(len(x)), *(round(v, 0) for v in params.values()))
    if not len(x) or not np.isfinite(x).all():
        return
    log_mel = features.log_mel(x, vad.VAD_CONFIG)
    offline = vad.speech_frames(log_mel, **params)
    _check_vad_against_reference(log_mel, params, offline)
    detector = vad.StreamingVAD(**params)
    pieces = [detector.push(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    streamed = np.concatenate([*pieces, detector.finish()])
    _check(np.array_equal(streamed, offline), f"StreamingVAD (chunks of {chunk}) differs from speech_frames "
                                              f"at {np.flatnonzero(streamed != offline)[:5]} of {len(offline)}")
    segments = vad.frames_to_segments(offline, len(x) / vad.SAMPLE_RATE)
    ends = [t for segment in segments for t in segment]
    _check(ends == sorted(ends) and all(0 <= t <= len(x) / vad.SAMPLE_RATE for t in ends),
           f"segments {segments[:4]} are not ordered within the audio")


def _check_vad_against_reference(log_mel: np.ndarray, params: dict, offline: np.ndarray) -> None:
    band_lo, band_hi = vad._speech_bands()
    frame = {k: v for k, v in params.items() if k not in vad.SMOOTHING_PARAMS}
    raw = np.zeros(log_mel.shape[1], np.uint8)
    score = np.zeros(log_mel.shape[1], np.float32)
    vad._vad.detect(log_mel, raw, score, band_lo=band_lo, band_hi=band_hi, hangover=0, min_gap=0, min_speech=0,
                    pre_roll=0, **frame)
    cues = vad_reference.frame_stage(log_mel, band_lo, band_hi, **frame)
    tol = VAD_CUE_TOL_DB + 1e-4 * np.abs(cues.score_db)
    off = np.abs(score - cues.score_db) - tol
    _check(not (off > 0).any(), f"VAD score differs from the reference by {np.abs(score - cues.score_db).max():.3g} dB "
                                f"at frame {int(np.argmax(off))}, params {params}")
    unsure = vad_reference.near_threshold(cues, VAD_CUE_TOL_DB + 1e-4 * np.abs(cues.level_db) + tol,
                                          frame["min_level_db"], frame["snr_threshold_db"],
                                          frame["flatness_max_db"], frame["strong_snr_db"])
    wrong = (raw.astype(bool) != cues.speech) & ~unsure
    _check(not wrong.any(), f"raw VAD decisions differ from the reference at frames {np.flatnonzero(wrong)[:5]}, "
                            f"params {params}")
    frames = {name: vad._frames(params[name]) for name in vad.SMOOTHING_PARAMS}
    _check(np.array_equal(offline, vad_reference.smooth(raw, **frames)),
           f"VAD smoothing differs from the reference, params {frames}")


# ---------------------------------------------------------------------------------------------
# Model files


def _score_clip(path: str) -> None:
    """Load a model file and score one clip (runs in the child process)."""
    from edge_ser.recognizer import Recognizer

    clip = np.sin(np.arange(int(MODEL_CLIP_SECONDS * 16000)) * 0.05).astype(np.float32) * 0.1
    # min_speech 0: the tone is no speech, and the check is that the model's own label is sound
    prediction = Recognizer(path, min_speech=0).predict(clip)
    _check(prediction.label in prediction.scores, f"label {prediction.label!r} is not among the scores")


def _model_target(data: bytes, suffix: str) -> None:
    path = _write("model" + suffix, data)
    outcome = isolation.run_in_child(_score_clip, path, trace_root=EDGE_SER_ROOT)
    for arc in outcome.arcs:
        note("arc", arc)
    if not outcome.allowed:
        raise ModelCaseFailed(outcome)


class ModelCaseFailed(Exception):
    """A model case ended in the child with an outcome other than success or a refusal."""

    def __init__(self, outcome: isolation.Outcome):
        super().__init__(f"{outcome.kind}: {outcome.detail}")
        self.outcome = outcome


def onnx_model(data: bytes) -> None:
    _model_target(data, ".onnx")


def tflite_model(data: bytes) -> None:
    _model_target(data, ".tflite")


def warm_model_imports(target: str) -> None:
    """Import what a model case needs once in the parent, so each forked child starts warm."""
    import onnxruntime  # noqa: F401

    import edge_ser.recognizer  # noqa: F401
    if target == "tflite_model":
        with contextlib.suppress(ImportError):
            from ai_edge_litert import interpreter  # noqa: F401


TARGETS = {
    "wav_reader": wav_reader,
    "stream_reader": stream_reader,
    "features": features_target,
    "vad": vad_target,
    "onnx_model": onnx_model,
    "tflite_model": tflite_model,
}
MODEL_TARGETS = ("onnx_model", "tflite_model")
