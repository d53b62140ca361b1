"""The `edge-ser` command, run as `python -m edge_ser` in a subprocess: outputs, exit codes,
one-line errors without tracebacks."""
import csv
import io
import json
import os
import pathlib
import subprocess
import sys
import wave

import numpy as np
import pytest

import models
from conftest import REPO
from edge_ser import __version__, recognizer
from edge_ser.config import SAMPLE_RATE

TIMEOUT = 120  # s per command: generous for a loaded 2-core machine


def run(*args, stdin: bytes | None = None, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE", **(env_extra or {})}
    env.pop("EDGE_SER_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "edge_ser", *map(str, args)], input=stdin,
                          capture_output=True, env=env, timeout=TIMEOUT, cwd=REPO)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_one_line_error(stderr: str, *fragments: str):
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    errors = [x for x in lines if x.startswith("edge-ser: ")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], stderr


def write_wav(path, audio: np.ndarray, rate: int = SAMPLE_RATE):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return models.save(models.build_model(), tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture
def clips(tmp_path):
    """Two good synthetic WAVs in tmp_path/audio (one nested in a subdirectory)."""
    (tmp_path / "audio" / "sub").mkdir(parents=True)
    return [write_wav(tmp_path / "audio" / "a.wav", noise(1.0, 1)),
            write_wav(tmp_path / "audio" / "sub" / "b.wav", noise(4.5, 2))]


def test_version():
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"edge-ser {__version__}"


def test_table_output(model, clips):
    code, out, err = run("infer", "--model", model, "--min-speech", "0", "--timeline", *clips)
    assert code == 0, err
    assert err == ""
    rows = [x for x in out.splitlines() if not x.startswith("    ")]
    assert [r.split()[0] for r in rows] == [str(c) for c in clips]
    for row in rows:
        assert row.split()[1] in models.LABELS
    assert len(out.splitlines()) > len(rows)  # indented timeline rows


def test_json_output(model, clips):
    code, out, err = run("infer", "--model", model, "--min-speech", "0", "--format", "json", "--timeline", *clips)
    assert code == 0, err
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(c) for c in clips]
    for r in results:
        assert r["label"] in models.LABELS
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        assert r["timeline"] and all(w["label"] in models.LABELS for w in r["timeline"])
    assert results[1]["duration"] == pytest.approx(4.5)


def test_csv_output(model, clips):
    code, out, err = run("infer", "--model", model, "--min-speech", "0", "--format", "csv", *clips)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["file"] for r in rows] == [str(c) for c in clips]
    for r in rows:
        assert r["row"] == "file" and r["label"] in models.LABELS
        assert sum(float(r[x]) for x in models.LABELS) == pytest.approx(1.0, abs=1e-4)


def test_csv_timeline_rows(model, clips):
    code, out, _ = run("infer", "--model", model, "--format", "csv", "--timeline", clips[1])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["row"] == "file" and {r["row"] for r in rows[1:]} == {"window"}


def test_directory_with_one_bad_file(model, clips, tmp_path):
    bad = tmp_path / "audio" / "sub" / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (tmp_path / "audio" / "notes.txt").write_text("not audio, not walked")
    code, out, err = run("infer", "--model", model, tmp_path / "audio")
    assert code == 1
    assert_one_line_error(err, f"edge-ser: {bad}: ")
    assert sorted(x.split()[0] for x in out.splitlines()) == sorted(str(c) for c in clips)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(os.urandom(3000)), ""),
    (lambda p: p.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt "), ""),
])
def test_bad_input_file_fails_alone(model, clips, tmp_path, make, fragment):
    bad = tmp_path / "bad.wav"
    make(bad)
    code, out, err = run("infer", "--model", model, clips[0], bad, clips[1])
    assert code == 1
    assert_one_line_error(err, f"edge-ser: {bad}: ", fragment)
    assert [x.split()[0] for x in out.splitlines()] == [str(clips[0]), str(clips[1])]


@pytest.mark.parametrize("content, fragment", [
    (None, "no such model file"),
    (b"this is not an onnx model" * 20, "not a loadable ONNX model"),
    (b"", "model file is empty"),
])
def test_unusable_model_exits_2(clips, tmp_path, content, fragment):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run("infer", "--model", path, *clips)
    assert code == 2 and out == ""
    assert_one_line_error(err, str(path), fragment)


def test_model_without_metadata_exits_2(clips, tmp_path):
    path = models.save(models.build_model(metadata=False), tmp_path / "plain.onnx")
    code, _, err = run("infer", "--model", path, clips[0])
    assert code == 2
    assert_one_line_error(err, str(path), "not an edge-ser model")


def test_no_default_model_exits_2(clips, monkeypatch, tmp_path, capsys):
    from edge_ser import cli

    monkeypatch.setattr(recognizer, "DEFAULT_MODEL", tmp_path / "default.onnx")
    code = cli.main(["infer", str(clips[0])])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_line_error(err, "no default model is installed yet; pass --model PATH")


def test_info_without_packaged_models_exits_2(monkeypatch, tmp_path, capsys):
    from edge_ser import cli, packaged

    monkeypatch.setattr(packaged, "MODELS_DIR", tmp_path)  # `info` alone lists the packaged models
    assert cli.main(["info"]) == 2
    assert_one_line_error(capsys.readouterr().err, "no packaged model is installed")


@pytest.mark.parametrize("args", [[], ["infer"], ["infer", "--format", "xml", "a.wav"],
                                  ["infer", "--threads", "0", "a.wav"], ["frobnicate"]])
def test_usage_errors_exit_2(args):
    code, _, err = run(*args)
    assert code == 2 and "Traceback" not in err and "edge-ser: " in err


def test_output_file_is_written_whole(model, clips, tmp_path):
    target = tmp_path / "out" / "results.json"
    target.parent.mkdir()
    code, out, err = run("infer", "--model", model, "--format", "json", "--output", target, *clips)
    assert code == 0 and out == "", err
    assert [r["file"] for r in json.loads(target.read_text())] == [str(c) for c in clips]
    assert os.listdir(target.parent) == ["results.json"]  # no temporary file left behind
    _, stdout_run, _ = run("infer", "--model", model, "--format", "json", *clips)
    assert target.read_text() == stdout_run


def test_output_file_untouched_when_the_model_fails(clips, tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("previous results\n")
    code, _, _ = run("infer", "--model", tmp_path / "missing.onnx", "--output", target, *clips)
    assert code == 2
    assert target.read_text() == "previous results\n"
    assert sorted(os.listdir(tmp_path)) == ["audio", "results.csv"]


@pytest.mark.parametrize("command", ["infer", "vad"])
def test_output_in_a_missing_directory_exits_2_before_any_work(model, clips, tmp_path, command):
    """Refused before the inputs are read: the unreadable input here would otherwise be reported."""
    target = tmp_path / "nowhere" / "results.csv"
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    extra = ["--model", model] if command == "infer" else []
    code, _, err = run(command, *extra, "--output", target, clips[0], tmp_path / "broken.wav")
    assert code == 2
    assert_one_line_error(err, str(target))
    assert "broken.wav" not in err and not target.parent.exists()


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_a_file_name_that_is_not_utf8_is_written_escaped(model, clips, tmp_path, fmt):
    """Issue 22, finding 9: it gave "unexpected error: UnicodeEncodeError" and no output at all."""
    odd = tmp_path / os.fsdecode(b"clip-\xff.wav")
    odd.write_bytes(pathlib.Path(clips[0]).read_bytes())
    target = tmp_path / f"results.{fmt}"
    code, _, err = run("infer", "--model", model, "--format", fmt, "--output", target, clips[1], odd)
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    if fmt == "json":
        text = " ".join(row["file"] for row in json.loads(text))
    assert "clip-\\xff.wav" in text and str(clips[1]) in text


def test_stdin_raw_pcm(model):
    pcm = (noise(1.5, 3) * 32767).astype("<i2").tobytes()
    code, out, err = run("infer", "--model", model, "--format", "json", "-", stdin=pcm)
    assert code == 0, err
    [result] = json.loads(out)
    assert result["file"] == "<stdin>" and result["duration"] == pytest.approx(1.5)


def test_empty_stdin_fails_with_one_line(model):
    code, _, err = run("infer", "--model", model, "-", stdin=b"")
    assert code == 1
    assert_one_line_error(err, "edge-ser: <stdin>: ")


def test_real_emodb_directory(model, data_dir, tmp_path):
    subset = tmp_path / "emodb"
    subset.mkdir()
    sources = sorted((data_dir / "emodb" / "wav").glob("03a01*.wav"))
    for src in sources:  # symlinks: nothing of the corpus is copied
        (subset / src.name).symlink_to(src)
    code, out, err = run("infer", "--model", model, "--format", "csv", subset)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(sources) > 0
    assert all(r["label"] in models.LABELS for r in rows)


def info_fields(out: str) -> dict:
    return dict(line.split(":", 1) for line in out.splitlines())


def test_info(model):
    code, out, err = run("info", "--model", model)
    assert code == 0, err
    fields = {k: v.strip() for k, v in info_fields(out).items()}
    assert fields["labels"].startswith(", ".join(models.LABELS))
    n_mels, n_classes = 64, len(models.LABELS)
    assert fields["parameters"] == f"{n_mels * n_classes + n_classes:,}"
    assert fields["format"] == f"ONNX (opset {models.OPSET})"
    assert fields["precision"] == "float32"
    assert fields["window"] == f"{models.WINDOW_SECONDS:g} s"
    assert fields["calibration"].startswith("none")
    assert "64 bands" in fields["features"] and "25 ms window, 10 ms hop" in fields["features"]
    assert "model card" not in fields  # this model has none


def test_info_sees_quantization(model, tmp_path):
    quantized = models.quantize(model, tmp_path / "q.onnx")
    code, out, err = run("info", "--model", quantized)
    assert code == 0, err
    assert info_fields(out)["precision"].strip().startswith("INT8")


def test_info_on_a_broken_model(tmp_path):
    path = models.save(models.build_model(input_name="features"), tmp_path / "m.onnx")
    code, out, err = run("info", "--model", path)
    assert code == 2 and out == ""
    assert_one_line_error(err, str(path), "'log_mel'")


def test_unexpected_errors_are_one_line_unless_debugging(model, clips, monkeypatch, capsys):
    from edge_ser import cli

    def broken_predict(self, path, sample_rate=SAMPLE_RATE):
        raise RuntimeError("simulated bug\nsecond line")

    monkeypatch.setattr(recognizer.Recognizer, "predict", broken_predict)
    monkeypatch.delenv("EDGE_SER_DEBUG", raising=False)
    assert cli.main(["infer", "--model", str(model), str(clips[0])]) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, str(clips[0]), "unexpected error: RuntimeError: simulated bug second line")
    monkeypatch.setenv("EDGE_SER_DEBUG", "1")
    assert cli.main(["infer", "--model", str(model), str(clips[0])]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_unexpected_error_outside_a_file_exits_2(model, clips, monkeypatch, capsys):
    from edge_ser import cli

    def broken_init(self, model=None, threads=1, min_speech=0.2, provider="cpu"):
        raise MemoryError("simulated")

    monkeypatch.setattr(recognizer.Recognizer, "__init__", broken_init)
    monkeypatch.delenv("EDGE_SER_DEBUG", raising=False)
    assert cli.main(["infer", "--model", str(model), str(clips[0])]) == 2
    assert_one_line_error(capsys.readouterr().err, "unexpected error: MemoryError: simulated", "EDGE_SER_DEBUG=1")


def test_vad_finds_the_speech_between_silences(data_dir, tmp_path):
    import soundfile as sf

    a = sf.read(data_dir / "emodb" / "wav" / "03a01Fa.wav", dtype="float32")[0]
    b = sf.read(data_dir / "emodb" / "wav" / "08a02Ab.wav", dtype="float32")[0]
    silence = np.zeros(SAMPLE_RATE * 2, np.float32)
    path = write_wav(tmp_path / "two.wav", np.concatenate([silence, a, silence, b, silence]))
    code, out, err = run("vad", "--format", "json", path, tmp_path / "missing.wav")
    assert code == 1
    assert_one_line_error(err, "missing.wav", "no such file")
    (result,) = json.loads(out)
    segments = result["segments"]
    assert len(segments) == 2, segments
    # the clips span 2-4 s and 6-8 s; EmoDB clips start and end with a little silence
    assert 1.9 <= segments[0][0] < segments[0][1] <= 4.1
    assert 5.9 <= segments[1][0] < segments[1][1] <= 8.1


def test_vad_table_and_csv(tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros(SAMPLE_RATE, np.float32))
    code, out, _ = run("vad", path)
    assert code == 0 and "0 speech segments" in out
    code, out, _ = run("vad", "--format", "csv", path)
    assert code == 0 and out.splitlines() == ["file,start,end"]


# --- long audio: segments --------------------------------------------------------------------


@pytest.fixture
def long_file(tmp_path):
    """12 s: quiet noise with two tones (speech-like to the VAD) at 2-3.2 s and 7-8 s."""
    from test_vad import background, harmonic_tone, with_bursts

    audio = with_bursts(background(12.0), [(2.0, harmonic_tone(1.2)), (7.0, harmonic_tone(1.0, f0=220))])
    return write_wav(tmp_path / "long.wav", audio)


def test_segments_in_every_format(model, long_file):
    code, out, err = run("infer", "--model", model, "--format", "json", "--segments", long_file)
    assert code == 0, err
    [result] = json.loads(out)
    segments = result["segments"]
    assert len(segments) == 2 and "timeline" not in result
    assert segments[0]["start"] == pytest.approx(2.0, abs=0.3) and segments[0]["end"] == pytest.approx(3.2, abs=0.3)
    assert segments[1]["start"] == pytest.approx(7.0, abs=0.3) and segments[1]["end"] == pytest.approx(8.0, abs=0.3)
    assert all(s["label"] in models.LABELS for s in segments)

    code, out, _ = run("infer", "--model", model, "--format", "csv", "--segments", "--timeline", long_file)
    rows = list(csv.DictReader(io.StringIO(out)))
    kinds = [r["row"] for r in rows]
    assert code == 0 and kinds[0] == "file" and kinds.count("segment") == 2
    assert kinds[1] == "segment" and "window" in kinds  # each segment is followed by its windows
    assert [(float(r["start"]), r["label"]) for r in rows if r["row"] == "segment"] == \
        [(pytest.approx(s["start"], abs=1e-3), s["label"]) for s in segments]

    code, out, _ = run("infer", "--model", model, "--segments", long_file)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and all(x.startswith("    ") for x in lines[1:])
    assert [x.split()[1] for x in lines[1:]] == [s["label"] for s in segments]


def test_long_file_on_stdin_is_streamed_too(model, long_file):
    pcm = long_file.read_bytes()[44:]  # the samples of the 16-bit WAV written above
    code, out, err = run("infer", "--model", model, "--format", "json", "--segments", "-", stdin=pcm)
    assert code == 0, err
    _, file_out, _ = run("infer", "--model", model, "--format", "json", "--segments", long_file)
    [from_stdin], [from_file] = json.loads(out), json.loads(file_out)
    assert from_stdin["segments"] == from_file["segments"] and from_stdin["duration"] == pytest.approx(12.0)


def test_check_passes_when_the_kernels_agree(model, clips):
    code, out, err = run("check", "--model", model, *clips)
    windows = sum(int(np.ceil(s / models.WINDOW_SECONDS)) for s in (1.0, 4.5))  # the clips' lengths
    assert code == 0 and err == "", err
    assert out.startswith(f"{model}: kernels match") and f"on {windows} windows" in out and "100.0 %" in out


def test_check_reports_a_bad_input_and_checks_the_rest(model, clips, tmp_path):
    code, out, err = run("check", "--model", model, clips[0], tmp_path / "missing.wav")
    assert code == 1 and "kernels match" in out and "on 1 window:" in out
    assert_one_line_error(err, "missing.wav", "no such file")


def test_check_refuses_stdin(model):
    code, out, err = run("check", "--model", model, "-")
    assert code == 2 and out == ""
    assert_one_line_error(err, "check reads files, not stdin")


def test_check_fails_when_the_kernels_differ(model, clips, monkeypatch, capsys):
    """The verdict's wiring (a CPU that really saturates is tested in test_export_quantize)."""
    from edge_ser import cli, kernel_check

    differ = kernel_check.KernelCheck(agreement=0.5, max_abs_logit_diff=4.0, n_windows=4, cpu_int8_dot_product="none")
    monkeypatch.setattr(kernel_check, "kernel_check", lambda *a, **k: differ)
    assert cli.main(["check", "--model", str(model), *map(str, clips)]) == 1
    out = capsys.readouterr().out
    assert "kernels DIFFER" in out and "50.0 %" in out and "--weight-bits 7" in out
