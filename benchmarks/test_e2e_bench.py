"""End-to-end `Recognizer.predict` (WAV file -> label), one thread, for every model and format
(bench_models): 3 s and 10 s of speech. Each round is one call; the report reads p50 / p95 from
the rounds (`extra_info["p95"]` here, pytest-benchmark stores no percentiles)."""
import numpy as np
import pytest

from benchmarks.clips import speech, write_wav
from benchmarks.conftest import model_names

CLIP_SECONDS = (3, 10)
ROUNDS = {3: 60, 10: 20}  # fixed round counts: a p95 needs enough of them, whatever the quick mode
WARMUP_ROUNDS = 2


def pin_static_frames(recognizer) -> bool:
    """A TFLite model with a static frame axis gets its windows padded/cut to that many frames,
    as the runtime already does for ONNX. Needed because litert-torch 0.10 exports no dynamic
    frame axis here and `TFLiteSession` (edge_ser/session.py) does not read a static one yet:
    without this a 3 s window (301 frames) cannot be resized into a 201-frame model.
    Returns True when the benchmark had to do this."""
    session = recognizer.session
    interpreter = getattr(session, "_interpreter", None)
    if interpreter is None or session.fixed_frames is not None:
        return False
    frames = int(interpreter.get_input_details()[0]["shape_signature"][-1])
    if frames <= 0:
        return False
    recognizer.fixed_samples = max(1, (frames - 1) * recognizer.config.hop_length)
    return True


def fixed_frames(recognizer) -> int | None:
    """Frames every window is padded/cut to (a static frame axis), or None when dynamic."""
    if recognizer.fixed_samples is None:
        return None
    return recognizer.config.n_frames(recognizer.fixed_samples)


def percentile(times: list[float], q: float) -> float:
    """q-th percentile (0-100) of round times in seconds, linear interpolation."""
    return float(np.percentile(np.asarray(times), q))


@pytest.mark.parametrize("seconds", CLIP_SECONDS)
@pytest.mark.parametrize("model", model_names())
def test_predict(benchmark, bench_model, model, seconds, tmp_path):
    from edge_ser.recognizer import Recognizer

    wav = write_wav(tmp_path / f"speech_{seconds}s.wav", speech(seconds))
    recognizer = Recognizer(bench_model.path, threads=1)
    pinned = pin_static_frames(recognizer)
    benchmark.group = f"end-to-end {seconds} s"
    benchmark.extra_info.update(kind="e2e", clip_seconds=seconds, **bench_model.extra_info())
    benchmark.extra_info.update(fixed_frames=fixed_frames(recognizer), frames_pinned_by_benchmark=pinned)
    result = benchmark.pedantic(recognizer.predict, args=(str(wav),), rounds=ROUNDS[seconds],
                                warmup_rounds=WARMUP_ROUNDS, iterations=1)
    times = benchmark.stats.stats.data
    benchmark.extra_info.update(p50=percentile(times, 50), p95=percentile(times, 95))
    assert result.label in recognizer.labels and abs(sum(result.scores.values()) - 1) < 1e-5
