"""Log-mel extraction, one thread: edge_ser's C extractor against the numpy/scipy/librosa/kaldi
paths computing the same definition, 3 s and 30 s clips, all in one run so ratios are fair.
The targets (C <= 0.5x the best numpy path, >= 6x faster than librosa) are checked by
`benchmarks/report.py` from this run's JSON."""
import importlib.util

import numpy as np
import pytest

from benchmarks.feature_impls import IMPLEMENTATIONS

OPTIONAL = {"librosa": "librosa", "kaldi_native_fbank": "kaldi_native_fbank", "scipy_fft": "scipy"}


def clip(seconds: float) -> np.ndarray:
    """Speech-band noise with a slow envelope (content does not change the cost of these paths)."""
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    envelope = 0.5 + 0.5 * np.sin(np.arange(n) * 2 * np.pi * 3 / 16000)
    return (0.1 * envelope * rng.normal(size=n)).astype(np.float32)


@pytest.mark.parametrize("seconds", [3, 30])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_log_mel(benchmark, impl, seconds):
    module = OPTIONAL.get(impl)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install '.[dev]')")
    x = clip(seconds)
    fn = IMPLEMENTATIONS[impl]
    benchmark.group = f"log-mel {seconds} s"
    benchmark.extra_info.update(kind="features", impl=impl, clip_seconds=seconds)
    out = benchmark(fn, x)
    assert out.shape[1] in (1 + len(x) // 160, len(x) // 160)  # kaldi drops the last partial frame
