"""Log-mel extraction, one thread: edge_ser's C extractor against the numpy/scipy/librosa/kaldi
paths computing the same definition, 3 s and 30 s clips, all in one run so ratios are fair; the
same for Whisper's front end (against numpy/scipy and transformers' numpy path).
The targets (C <= 0.5x the best numpy path for both feature sets, >= 6x faster than librosa) are
checked by `benchmarks/report.py` from this run's JSON."""
import importlib.util

import pytest

from benchmarks.clips import noise
from benchmarks.feature_impls import IMPLEMENTATIONS, WHISPER, WHISPER_IMPLEMENTATIONS

OPTIONAL = {"librosa": "librosa", "kaldi_native_fbank": "kaldi_native_fbank", "scipy_fft": "scipy",
            "transformers_numpy": "transformers"}
EXTRAS = {"transformers": "train"}  # the extra that installs a module, when not dev
# Fixed round counts (about 5 s for the whole suite): the target ratios are medians, and the quick
# mode's time limits left as few as 5 rounds, too few on a shared, loaded machine.
ROUNDS = {3: 40, 30: 10}


def timed(benchmark, fn, impl: str, seconds: int, kind: str, group: str):
    """fn's output on the noise clip of `seconds`, timed into `benchmark` (skips when its library is missing)."""
    module = OPTIONAL.get(impl)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install '.[{EXTRAS.get(module, 'dev')}]')")
    x = noise(seconds)
    benchmark.group = f"{group} {seconds} s"
    benchmark.extra_info.update(kind=kind, impl=impl, clip_seconds=seconds)
    return x, benchmark.pedantic(fn, args=(x,), rounds=ROUNDS[seconds], warmup_rounds=1, iterations=1)


@pytest.mark.parametrize("seconds", [3, 30])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_log_mel(benchmark, impl, seconds):
    x, out = timed(benchmark, IMPLEMENTATIONS[impl], impl, seconds, "features", "log-mel")
    assert out.shape[1] in (1 + len(x) // 160, len(x) // 160)  # kaldi drops the last partial frame


@pytest.mark.parametrize("seconds", [3, 30])
@pytest.mark.parametrize("impl", list(WHISPER_IMPLEMENTATIONS))
def test_whisper_log_mel(benchmark, impl, seconds):
    x, out = timed(benchmark, WHISPER_IMPLEMENTATIONS[impl], impl, seconds, "whisper_features", "whisper log-mel")
    assert out.shape == (WHISPER.n_mels, WHISPER.n_frames(len(x)))
