"""Voice-activity detection per second of audio, one thread: edge_ser's C VAD (log-mel included)
against webrtcvad and silero-vad on the same clip (the synthetic speech example, repeated). The report divides by `audio_seconds`."""
import importlib.util

import pytest

from benchmarks.clips import speech
from benchmarks.vad_impls import IMPLEMENTATIONS, OPTIONAL

CLIP_SECONDS = 10


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_vad(benchmark, impl):
    module = OPTIONAL.get(impl)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install '.[dev]')")
    x = speech(CLIP_SECONDS)
    fn = IMPLEMENTATIONS[impl]
    fn(x[:16000])  # load the model / build tables outside the timing
    benchmark.group = f"VAD {CLIP_SECONDS} s"
    benchmark.extra_info.update(kind="vad", impl=impl, clip_seconds=CLIP_SECONDS, audio_seconds=CLIP_SECONDS)
    out = benchmark(fn, x)
    assert len(out) > 0
