"""Live streaming: fixed windows (edge_ser.stream.FixedWindows), `Recognizer.stream`, and
`edge-ser stream` fed through a pipe: same windows and scores as offline, clean exits."""
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

import models
from conftest import REPO
from edge_ser import cli, features, stream, vad
from edge_ser.config import FRAMES_PER_SECOND, SAMPLE_RATE
from edge_ser.errors import AudioError
from edge_ser.recognizer import Recognizer
from test_cli import assert_one_line_error, run
from test_vad import background, harmonic_tone

TIMEOUT = 60  # s per subprocess: generous for a loaded 2-core machine
WINDOW, HOP = 2.0, 1.0  # seconds: the tiny model's window, the default hop
MODEL_SEED = 2  # a tiny model whose labels differ between these test sounds


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return models.save(models.build_model(seed=MODEL_SEED), tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def rec(model):
    return Recognizer(model, min_speech=0)  # synthetic audio: label by scores


def mixed_sound(seconds_of_silence_at_end: float = 0.5) -> np.ndarray:
    """7.5 s of different sounds (quiet noise, tones, loud noise), quantised to 16-bit PCM
    values, so what goes through a pipe is exactly this."""
    rng = np.random.default_rng(0)
    parts = [background(1.0), harmonic_tone(1.5, f0=100), background(0.5, level=0.05),
             harmonic_tone(1.0, f0=300, amplitude=0.05), rng.normal(0, 0.3, SAMPLE_RATE).astype(np.float32),
             harmonic_tone(2.0, f0=180), np.zeros(int(seconds_of_silence_at_end * SAMPLE_RATE), np.float32)]
    return pcm16(np.concatenate(parts)).astype(np.float32) / 32768


def pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768), -32768, 32767).astype("<i2")


def offline_windows(rec, audio: np.ndarray, window=WINDOW, hop=HOP):
    """The windows `stream` should give, computed without it: [(start, end, scores, speech)].
    Each window's audio is zero-padded to `window` and scored as a one-window `predict`; its
    speech is the offline VAD's speech frames centred inside it, in seconds over one model window."""
    win, step, n = round(window * SAMPLE_RATE), round(hop * SAMPLE_RATE), len(audio)
    speech = vad.speech_frames(features.log_mel(audio, vad.VAD_CONFIG))
    spans = [(a, a + win) for a in range(0, n - win + 1, step)]
    covered = spans[-1][1] if spans else 0
    if n > covered:
        spans.append((len(spans) * step, n))
    out = []
    for a, b in spans:
        scores = rec.predict(np.pad(audio[a:b], (0, win - (b - a)))).scores
        frames = speech[-(-a * FRAMES_PER_SECOND // SAMPLE_RATE):-(-b * FRAMES_PER_SECOND // SAMPLE_RATE)]
        seconds = float(frames.mean()) * (b - a) / SAMPLE_RATE  # its speech, as a share of one model window
        out.append((a / SAMPLE_RATE, b / SAMPLE_RATE, scores, min(1.0, seconds / rec.info.window_seconds)))
    return out


def assert_same_windows(got, expected):
    assert len(got) == len(expected)
    for w, (start, end, scores, speech) in zip(got, expected):
        assert (w.start, w.end) == pytest.approx((start, end), abs=1e-9)
        assert w.label == max(scores, key=scores.get)
        np.testing.assert_allclose([w.scores[x] for x in scores], list(scores.values()), rtol=1e-4, atol=1e-6)
        assert w.speech == pytest.approx(speech, abs=1e-9)
        assert w.latency_ms >= 0


def chunked(audio: np.ndarray, sizes) -> list[np.ndarray]:
    bounds = np.cumsum([0, *itertools.islice(itertools.cycle(sizes), len(audio))])
    bounds = bounds[bounds < len(audio)]
    return [audio[a:b] for a, b in zip(bounds, [*bounds[1:], len(audio)])]


# --- fixed windows ---------------------------------------------------------------------------


def test_fixed_windows_placement_and_tail():
    audio = background(7.3)
    windows = stream.FixedWindows(SAMPLE_RATE, 2 * SAMPLE_RATE, SAMPLE_RATE)
    out = [w for c in chunked(audio, [3000, 17000]) for w in windows.push(c)] + windows.finish()
    assert [(w.start, w.end) for w in out] == [(k, k + 2.0) for k in range(6)] + [(6.0, 7.3)]
    assert all(len(w.audio) == round((w.end - w.start) * SAMPLE_RATE) for w in out)
    np.testing.assert_array_equal(out[3].audio, audio[3 * SAMPLE_RATE:5 * SAMPLE_RATE])


def test_stream_shorter_than_a_window_gets_one_window():
    windows = stream.FixedWindows(SAMPLE_RATE, 2 * SAMPLE_RATE, SAMPLE_RATE)
    assert windows.push(background(0.7)) == []
    [w] = windows.finish()
    assert (w.start, w.end) == (0.0, pytest.approx(0.7))


def test_fixed_windows_hold_bounded_audio():
    windows = stream.FixedWindows(SAMPLE_RATE, 2 * SAMPLE_RATE, SAMPLE_RATE)
    chunk, most = background(0.25), 0
    for _ in range(400):  # 100 s
        windows.push(chunk)
        most = max(most, windows.buffered_samples)
    lookahead = vad.StreamingVAD().lookahead_seconds
    assert most <= (2.0 + 1.0 + lookahead + 0.25 + 0.1) * SAMPLE_RATE


def test_hop_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="hop"):
        stream.FixedWindows(SAMPLE_RATE, SAMPLE_RATE, 2 * SAMPLE_RATE)


# --- Recognizer.stream -------------------------------------------------------------------------


def test_stream_equals_offline_windows_whatever_the_chunking(rec):
    audio = mixed_sound()
    expected = offline_windows(rec, audio)
    assert len({max(s, key=s.get) for _, _, s, _ in expected}) > 1  # labels differ: a real check
    assert any(sp > 0.5 for *_, sp in expected) and any(sp == 0 for *_, sp in expected)
    for sizes in ([len(audio)], [160], [1000, 7, 33333]):
        assert_same_windows(list(rec.stream(chunked(audio, sizes))), expected)


def test_stream_window_and_hop(rec):
    audio = mixed_sound()
    got = list(rec.stream([audio], window=1.5, hop=0.5))
    assert_same_windows(got, offline_windows(rec, audio, window=1.5, hop=0.5))


def test_stream_reads_a_binary_pcm_file_object(rec):
    audio = mixed_sound()
    got = list(rec.stream(io.BytesIO(pcm16(audio).tobytes())))
    assert_same_windows(got, offline_windows(rec, audio))


def test_stream_rejects_bad_chunks(rec):
    with pytest.raises(AudioError, match="mono"):
        list(rec.stream([np.zeros((2, 100), np.float32)]))
    with pytest.raises(AudioError, match="NaN"):
        list(rec.stream([np.full(100, np.nan, np.float32)]))
    with pytest.raises(ValueError, match="hop"):
        list(rec.stream([background(3.0)], window=1.0, hop=2.0))


def test_pcm_reader_keeps_a_sample_split_across_reads():
    data = pcm16(np.linspace(-0.5, 0.5, 1001)).tobytes()

    class Trickle(io.RawIOBase):  # a pipe that hands out 3 bytes at a time
        def __init__(self):
            self.data = data

        def readable(self):
            return True

        def read(self, n=-1):
            piece, self.data = self.data[:3], self.data[3:]
            return piece

    got = np.concatenate(list(stream.pcm16_chunks(Trickle(), live=True)))
    np.testing.assert_array_equal(got, np.frombuffer(data, "<i2") / 32768)


def test_microphone_chunks_with_a_stand_in_sounddevice(monkeypatch):
    opened = {}

    class InputStream:
        def __init__(self, **kwargs):
            opened.update(kwargs, closed=False)

        def __enter__(self):
            block = np.ones((opened["blocksize"], 1), np.float32) * 0.25
            for _ in range(3):  # PortAudio would call this from its own thread
                opened["callback"](block, len(block), None, None)
            return self

        def __exit__(self, *exc):
            opened["closed"] = True

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=InputStream))
    mic = stream.microphone_chunks()
    chunks = list(itertools.islice(mic, 3))
    mic.close()
    assert opened["samplerate"] == SAMPLE_RATE and opened["channels"] == 1 and opened["closed"]
    assert [len(c) for c in chunks] == [round(stream.MIC_BLOCK_SECONDS * SAMPLE_RATE)] * 3
    assert all(c.ndim == 1 and (c == 0.25).all() for c in chunks)


def test_mic_without_sounddevice_is_one_line_naming_the_extra(model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    assert cli.main(["stream", "--model", str(model), "--mic"]) == 2
    assert_one_line_error(capsys.readouterr().err, "pip install 'edge-ser[mic]'")


# --- edge-ser stream -------------------------------------------------------------------------


def test_pipe_gives_the_offline_windows_and_exits_0_at_end_of_input(rec, model):
    audio = mixed_sound()
    code, out, err = run("stream", "--model", model, "--min-speech", "0", "--format", "json", "-", stdin=pcm16(audio).tobytes())
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    expected = offline_windows(rec, audio)
    assert [r["label"] for r in rows] == [max(s, key=s.get) for _, _, s, _ in expected]
    for row, (start, end, scores, speech) in zip(rows, expected):
        assert (row["start"], row["end"]) == pytest.approx((start, end))
        np.testing.assert_allclose([row["scores"][x] for x in scores], list(scores.values()), rtol=1e-4, atol=1e-6)
        assert row["speech"] == pytest.approx(speech, abs=1e-3) and row["latency_ms"] >= 0


def test_table_and_csv_rows(rec, model):
    audio = mixed_sound()
    pcm = pcm16(audio).tobytes()
    code, out, _ = run("stream", "--model", model, "--min-speech", "0", "--hop", "2", "-", stdin=pcm)
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(offline_windows(rec, audio, hop=2.0))
    assert all(line.split()[1] in models.LABELS and line.endswith(" ms") for line in lines)
    code, out, _ = run("stream", "--model", model, "--format", "csv", "-", stdin=pcm)
    header, *rows = out.splitlines()
    assert code == 0 and header.split(",")[:5] == ["start", "end", "label", "speech", "latency_ms"]
    assert len(rows) == len(offline_windows(rec, audio))


def test_empty_input_exits_0(model):
    code, out, err = run("stream", "--model", model, "-", stdin=b"")
    assert (code, out, err) == (0, "", "")


@pytest.mark.parametrize("args, fragment", [
    ([], "exactly one input"),
    (["-", "--mic"], "exactly one input"),
    (["--hop", "3", "-"], "must not exceed"),
])
def test_stream_usage_errors(model, args, fragment, capsys):
    assert cli.main(["stream", "--model", str(model), *args]) == 2
    assert_one_line_error(capsys.readouterr().err, fragment)


def test_sigint_exits_cleanly(model):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    # A shell's background job ignores SIGINT and its children inherit that (Python then installs
    # no KeyboardInterrupt handler): give the child the default, however the tests were started.
    proc = subprocess.Popen([sys.executable, "-m", "edge_ser", "stream", "--model", str(model), "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        proc.stdin.write(pcm16(mixed_sound()).tobytes()[: 4 * SAMPLE_RATE * 2])  # 4 s, pipe left open
        proc.stdin.flush()
        first = proc.stdout.readline()  # a window is out: the stream is running, waiting for more
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)  # stdin still open: only the signal can end it
        err = proc.stderr.read()
    finally:
        proc.kill()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
    assert first.split()[1].decode() in models.LABELS
    assert proc.returncode == 0, err
    assert err == b""


def test_default_model_is_used_without_model_and_named_when_missing(model, monkeypatch, capsys, tmp_path):
    from edge_ser import recognizer
    from test_cli import write_wav

    path = write_wav(tmp_path / "a.wav", mixed_sound())  # a file streams like stdin
    monkeypatch.setattr(recognizer, "DEFAULT_MODEL", tmp_path / "none.onnx")
    assert cli.main(["stream", str(path)]) == 2
    assert_one_line_error(capsys.readouterr().err, "no default model is installed yet; pass --model PATH")
    monkeypatch.setattr(recognizer, "DEFAULT_MODEL", model)
    assert cli.main(["stream", "--min-speech", "0", "--hop", "2", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.split()[1] in models.LABELS for line in lines)
