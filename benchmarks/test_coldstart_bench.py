"""Cold start: a fresh `python -m edge_ser infer --model M clip.wav` process (interpreter start,
imports, model load, one prediction of a 3 s clip: the mission's clip, on which the packaged
models' peak RSS target is stated), wall time and the child's peak RSS.

Peak RSS: the child's own VmHWM (benchmarks/coldstart.py).
`python -m edge_ser --version` is measured too: the part of the start-up no model can change."""
import pytest

from benchmarks.clips import speech, write_wav
from benchmarks.coldstart import evict_from_page_cache, library_files, run_process
from benchmarks.conftest import model_names

ROUNDS = 3
CLIP_SECONDS = 3


def bench_process(benchmark, args: list[str]) -> None:
    """Time ROUNDS runs of `python -m edge_ser ARGS`; the largest peak RSS goes to extra_info."""
    peaks = []

    def once():
        seconds, rss = run_process(args, evict=False)
        peaks.append(rss)
        return seconds

    # pedantic times the whole call: the page-cache eviction runs as its untimed setup
    benchmark.pedantic(once, setup=lambda: evict_from_page_cache(library_files()), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info["peak_rss_bytes"] = max(peaks)


def test_startup_without_model(benchmark):
    benchmark.group = "cold start"
    benchmark.extra_info.update(kind="coldstart", model="(none: --version)")
    bench_process(benchmark, ["--version"])


@pytest.mark.parametrize("model", model_names())
def test_cold_infer(benchmark, bench_model, model, tmp_path):
    wav = write_wav(tmp_path / "speech.wav", speech(CLIP_SECONDS))
    benchmark.group = "cold start"
    benchmark.extra_info.update(kind="coldstart", clip_seconds=CLIP_SECONDS, **bench_model.extra_info())
    bench_process(benchmark, ["infer", "--model", str(bench_model.path), "--threads", "1", str(wav)])
