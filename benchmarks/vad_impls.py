"""Voice-activity detectors a user might pick, each as audio float32 [samples] at 16 kHz ->
speech decisions, for timing per second of audio on one thread.

silero-vad runs its pip package's own ONNX file on onnxruntime (as its `OnnxWrapper` does, but
with numpy in place of torch): 512-sample chunks with 64 samples of context and a carried state.
webrtcvad scores 10 ms frames, the decision rate of edge_ser's VAD.
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from edge_ser import vad

SAMPLE_RATE = 16000
WEBRTC_FRAME = 160  # samples: 10 ms
WEBRTC_MODE = 2  # 0-3, more aggressive with higher numbers; cost does not depend on it
SILERO_CHUNK = 512  # samples per call at 16 kHz (the model's fixed window)
SILERO_CONTEXT = 64  # samples of the previous chunk prepended to each call


def edge_ser_c(x: np.ndarray) -> list[tuple[float, float]]:
    """edge_ser's C VAD, log-mel included -> speech segments [(start_s, end_s)]."""
    return vad.speech_segments(x)


@functools.lru_cache(maxsize=1)
def _webrtc():
    import webrtcvad

    return webrtcvad.Vad(WEBRTC_MODE)


def webrtc(x: np.ndarray) -> list[bool]:
    """webrtcvad on 10 ms frames of 16-bit PCM -> one decision per whole frame."""
    detector = _webrtc()
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    step = 2 * WEBRTC_FRAME
    return [detector.is_speech(pcm[i:i + step], SAMPLE_RATE) for i in range(0, len(pcm) - step + 1, step)]


def silero_model_path() -> pathlib.Path:
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None:
        raise ImportError("silero-vad is not installed")
    return pathlib.Path(spec.origin).parent / "data" / "silero_vad.onnx"


@functools.lru_cache(maxsize=1)
def _silero_session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(silero_model_path()), options, providers=["CPUExecutionProvider"])


def silero(x: np.ndarray) -> np.ndarray:
    """silero-vad v5 ONNX -> speech probability per 32 ms chunk [n_chunks]."""
    session = _silero_session()
    n = len(x) // SILERO_CHUNK
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, SILERO_CONTEXT), np.float32)
    sr = np.array(SAMPLE_RATE, np.int64)
    probs = np.empty(n, np.float32)
    for i in range(n):
        chunk = x[None, i * SILERO_CHUNK:(i + 1) * SILERO_CHUNK].astype(np.float32)
        frame = np.concatenate([context, chunk], axis=1)
        out, state = session.run(None, {"input": frame, "state": state, "sr": sr})
        probs[i] = out[0, 0]
        context = frame[:, -SILERO_CONTEXT:]
    return probs


IMPLEMENTATIONS = {"edge_ser_c": edge_ser_c, "webrtcvad": webrtc, "silero_vad": silero}
OPTIONAL = {"webrtcvad": "webrtcvad", "silero_vad": "silero_vad"}  # impl -> module it needs
