"""Log-mel extraction, one thread: edge_ser's C extractor against the numpy/scipy/librosa/kaldi
paths computing the same definition, 3 s and 30 s clips, all in one run so ratios are fair.
The targets (C <= 0.5x the best numpy path, >= 6x faster than librosa) are checked by
`benchmarks/report.py` from this run's JSON."""
import importlib.util

import pytest

from benchmarks.clips import noise
from benchmarks.feature_impls import IMPLEMENTATIONS

OPTIONAL = {"librosa": "librosa", "kaldi_native_fbank": "kaldi_native_fbank", "scipy_fft": "scipy"}
# Fixed round counts (about 5 s for the whole suite): the target ratios are medians, and the quick
# mode's time limits left as few as 5 rounds, too few on a shared, loaded machine.
ROUNDS = {3: 40, 30: 10}


@pytest.mark.parametrize("seconds", [3, 30])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_log_mel(benchmark, impl, seconds):
    module = OPTIONAL.get(impl)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install '.[dev]')")
    x = noise(seconds)
    fn = IMPLEMENTATIONS[impl]
    benchmark.group = f"log-mel {seconds} s"
    benchmark.extra_info.update(kind="features", impl=impl, clip_seconds=seconds)
    out = benchmark.pedantic(fn, args=(x,), rounds=ROUNDS[seconds], warmup_rounds=1, iterations=1)
    assert out.shape[1] in (1 + len(x) // 160, len(x) // 160)  # kaldi drops the last partial frame
