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
    benchmark.group = f"end-to-end {seconds} s"
    benchmark.extra_info.update(kind="e2e", clip_seconds=seconds, **bench_model.extra_info())
    benchmark.extra_info.update(fixed_frames=fixed_frames(recognizer))
    result = benchmark.pedantic(recognizer.predict, args=(str(wav),), rounds=ROUNDS[seconds],
                                warmup_rounds=WARMUP_ROUNDS, iterations=1)
    if benchmark.stats:  # None under --benchmark-disable: the call ran once, nothing was timed
        times = benchmark.stats.stats.data
        benchmark.extra_info.update(p50=percentile(times, 50), p95=percentile(times, 95))
    assert result.label in recognizer.labels and abs(sum(result.scores.values()) - 1) < 1e-5
