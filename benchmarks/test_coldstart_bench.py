"""Cold start: a fresh `python -m edge_ser infer --model M clip.wav` process (interpreter start,
imports, model load, one prediction of a 3 s clip: the mission's clip, on which the packaged
models' peak RSS target is stated), wall time and the child's peak RSS.

Peak RSS is the child's own VmHWM, written at exit by a three-line launcher (RSS_LAUNCHER):
wait4's ru_maxrss would report the pytest process's size, since Linux carries the RSS high-water
mark across fork and exec.
`python -m edge_ser --version` is measured too: the part of the start-up no model can change."""
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import pytest

from benchmarks.clips import speech, write_wav
from benchmarks.conftest import model_names

ROUNDS = 3
CLIP_SECONDS = 3


RSS_FILE_ENV = "EDGE_SER_BENCH_RSS_FILE"
# `python -c RSS_LAUNCHER edge_ser ARGS...` runs `python -m edge_ser ARGS...` and, at exit, writes
# the process's peak RSS (VmHWM, kB) to the file named in RSS_FILE_ENV.
RSS_LAUNCHER = """import atexit, os, re, runpy, sys
atexit.register(lambda: open(os.environ["%s"], "w").write(
    re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)))
sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)""" % RSS_FILE_ENV


def run_process(args: list[str]) -> tuple[float, int]:
    """Run `python -m edge_ser ARGS` to completion -> (wall seconds, peak RSS in bytes);
    fails on a non-zero exit."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = pathlib.Path(tmp) / "rss"
        env = {**os.environ, RSS_FILE_ENV: str(rss_file)}
        argv = [sys.executable, "-c", RSS_LAUNCHER, "edge_ser", *args]
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        seconds = time.perf_counter() - start
        err = proc.stderr.decode(errors="replace").strip()
        assert proc.returncode == 0, f"edge_ser {' '.join(args)} exited {proc.returncode}: {err[:300]}"
        return seconds, int(rss_file.read_text()) * 1024


def bench_process(benchmark, args: list[str]) -> None:
    """Time ROUNDS runs of `python -m edge_ser ARGS`; the largest peak RSS goes to extra_info."""
    peaks = []

    def once():
        seconds, rss = run_process(args)
        peaks.append(rss)
        return seconds

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=1)
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
