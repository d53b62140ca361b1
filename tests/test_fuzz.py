"""A short seeded fuzz run per target (docs/fuzzing.md), and the harness's own parts.

Each run is count-based (--runs with a fixed --seed), so it executes the same inputs every time:
libFuzzer through atheris where it is installed (the dev extra), else the seeded fallback mutator;
never skipped for want of atheris. The runs take about 30 s in all on one core.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fuzz import engine, isolation, make_corpus, targets
from fuzz.__main__ import native_finding

REPO = pathlib.Path(__file__).resolve().parents[1]
SEED = 22
RUNS = {  # per target: 2-6 s each on one core here, about 25 s in all
    "wav_reader": 8000,
    "stream_reader": 4000,
    "features": 3000,
    "vad": 800,
    "onnx_model": 800,
    "tflite_model": 800,
}


def fuzz(target: str, runs: int, out: pathlib.Path, engine: str = "auto") -> tuple[int, str, dict]:
    """python -m fuzz TARGET --runs N --seed SEED -> (exit code, output, summary.json)."""
    done = subprocess.run([sys.executable, "-m", "fuzz", target, "--runs", str(runs), "--seed", str(SEED),
                           "--out", str(out), "--progress", "1000", "--engine", engine], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return done.returncode, done.stdout + done.stderr, summary


@pytest.mark.parametrize("target", RUNS)
def test_short_seeded_run_finds_nothing(target, tmp_path):
    if target == "tflite_model":
        pytest.importorskip("ai_edge_litert", reason="the TFLite target needs the tflite extra")
    code, output, summary = fuzz(target, RUNS[target], tmp_path)
    result = summary["targets"][target]
    assert result["executions"] >= RUNS[target], output
    assert code == 0 and not result["findings"], output


def test_plain_engine_runs_where_atheris_is_missing(tmp_path):
    code, output, summary = fuzz("wav_reader", 500, tmp_path, engine="plain")
    assert code == 0 and summary["engine"] == "plain" and summary["targets"]["wav_reader"]["executions"] == 500, output


# --- the harness itself ----------------------------------------------------------------------


def test_generated_seeds_are_the_same_every_time_and_small(tmp_path):
    """The seeds are written at run time, not stored: they must not vary between runs."""
    assert make_corpus.corpus() == make_corpus.corpus()
    assert make_corpus.write(tmp_path) <= 1 << 20


def test_a_disagreement_is_recorded_once_with_its_input(tmp_path):
    """A target that raises is a finding: its first input is written, repeats only counted."""

    def broken(data):
        if data.startswith(b"x"):
            raise targets.Disagreement(f"paths differ by {len(data)}")

    recorder = engine.Recorder("demo", broken, tmp_path, tmp_path / "stats.json")
    for data in (b"a", b"x1", b"x22", b"b"):
        recorder(data)
    recorder.write_stats()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["executions"] == 4
    [(key, entry)] = stats["findings"].items()
    assert key.startswith("disagreement") and entry["hits"] == 2
    assert (tmp_path / entry["file"]).read_bytes() == b"x1"


def test_features_target_catches_a_kernel_that_strays(monkeypatch):
    """The features target fails when the C output moves off the reference by more than
    rounding (here: one band scaled by 1.01 in power)."""
    seed = make_corpus.corpus()["features"]["default-pcm16.bin"]
    targets.features_target(seed)
    real = targets._c_log_mel

    def strayed(x, config, kernel):
        out = real(x, config, kernel)
        out[3] += np.log(1.01)
        return out

    monkeypatch.setattr(targets, "_c_log_mel", strayed)
    with pytest.raises(targets.Disagreement, match="C extractor against the reference"):
        targets.features_target(seed)


def test_stream_target_catches_a_reader_that_drops_a_sample(monkeypatch):
    seed = make_corpus.corpus()["stream_reader"]["pcm16.wav"]
    targets.stream_reader(seed)
    real = targets.audio.iter_audio_chunks
    monkeypatch.setattr(targets.audio, "iter_audio_chunks", lambda *a, **k: (c[1:] for c in real(*a, **k)))
    with pytest.raises(targets.Disagreement):
        targets.stream_reader(seed)


def test_vad_reference_follows_the_c_detector_on_its_seed():
    for _, seed in sorted(make_corpus.corpus()["vad"].items()):
        targets.vad_target(seed)


@pytest.mark.parametrize("body, kind", [
    ("import ctypes; ctypes.string_at(0)", "crash"),
    ("bytearray(3 << 30)", "memory"),
    ("import time; time.sleep(30)", "timeout"),
    ("{}['missing']", "exception"),
    ("raise edge_ser.errors.ModelError('m.onnx: bad')", "refused"),
    ("pass", "ok"),
])
def test_child_outcomes(body, kind):
    def case():
        import edge_ser.errors  # noqa: F401

        exec(body)

    assert isolation.run_in_child(case, timeout=2.0).kind == kind


def test_native_failures_are_named_from_the_libfuzzer_log():
    log = "==1== ERROR: libFuzzer: timeout after 20 seconds\nTest unit written to out/findings/x/timeout-ab\n"
    assert native_finding(log) == ("hang", "out/findings/x/timeout-ab")
    assert native_finding("==1== ERROR: libFuzzer: deadly signal\n")[0] == "native crash"


def test_plain_mutator_is_seeded():
    import random

    corpus = [b"RIFF....WAVEfmt ", b"abc"]
    first = [engine.mutate(corpus[0], random.Random(5), corpus, 64) for _ in range(3)]
    again = [engine.mutate(corpus[0], random.Random(5), corpus, 64) for _ in range(3)]
    assert first == again and all(len(m) <= 64 for m in first)
