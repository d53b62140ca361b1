"""--provider cpu|cuda|tensorrt (edge_ser.session) and `edge-ser bench`: provider selection, the
fall back to the CPU with one line on stderr when this onnxruntime lacks the provider (the
onnxruntime here is the CPU-only build), and the bench table's shape."""
import os
import subprocess
import sys

import numpy as np
import pytest

import models
from conftest import REPO
from edge_ser import cli, session
from edge_ser.config import SAMPLE_RATE
from test_cli import write_wav

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
TIMEOUT = 120


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-m", "edge_ser", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT, cwd=REPO)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return models.save(models.build_model(), tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("audio") / "a.wav", np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE))


@pytest.mark.parametrize("provider, available, expected", [
    ("cpu", [TRT, CUDA, CPU], [CPU]),
    ("cuda", [TRT, CUDA, CPU], [CUDA, CPU]),
    ("tensorrt", [TRT, CUDA, CPU], [TRT, CUDA, CPU]),
    ("tensorrt", [CUDA, CPU], [CUDA, CPU]),  # no TensorRT: CUDA next
    ("cuda", [CPU], [CPU]),
    ("tensorrt", ["AzureExecutionProvider", CPU], [CPU]),
])
def test_provider_chain_keeps_what_this_onnxruntime_has(provider, available, expected):
    assert session.onnx_providers(provider, available) == expected


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="provider must be one of cpu, cuda, tensorrt"):
        session.onnx_providers("npu", [CPU])


@pytest.mark.parametrize("provider, used, notice", [
    ("cpu", [CPU], None),
    ("cuda", [CUDA, CPU], None),
    ("cuda", [CPU], "m.onnx: provider cuda (CUDAExecutionProvider) could not be used here; "
                    "running on the CPU"),
    ("tensorrt", [CUDA, CPU], "m.onnx: provider tensorrt (TensorrtExecutionProvider) could not be used here; "
                              "running on CUDAExecutionProvider"),
])
def test_provider_notice_says_where_the_model_runs(provider, used, notice):
    assert session.provider_notice("m.onnx", provider, used) == notice


def test_cpu_only_onnxruntime_falls_back_to_cpu(model):
    s = session.OnnxSession(model, provider="cuda")
    assert s._session.get_providers() == [CPU]
    assert "provider cuda (CUDAExecutionProvider) could not be used here" in s.provider_notice
    assert session.OnnxSession(model).provider_notice is None


def test_fallback_is_read_back_from_the_session(model, monkeypatch):
    """A GPU build on a machine without a usable GPU lists CUDA but the session drops it."""
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    s = session.OnnxSession(model, provider="cuda")
    assert s._session.get_providers() == [CPU]
    assert s.provider_notice.endswith("running on the CPU")


def test_onnxruntime_fallback_chatter_stays_off_stdout(model, monkeypatch, capsys):
    """onnxruntime print()s an 'EP Error ... Falling back' block when a GPU provider fails to
    start: stdout carries the results, so the block must not reach it."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def failing_gpu(path, options, providers):
        print("*************** EP Error ***************\nFalling back to ['CPUExecutionProvider'] and retrying.")
        return real(path, options, providers=[CPU])

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnxruntime, "InferenceSession", failing_gpu)
    s = session.OnnxSession(model, provider="cuda")
    assert capsys.readouterr().out == "" and s.provider_notice.endswith("running on the CPU")


def test_cli_provider_fallback_is_one_stderr_line_and_the_same_result(model, clip):
    rc_cpu, out_cpu, err_cpu = run("infer", "--model", model, "--format", "json", clip)
    rc, out, err = run("infer", "--provider", "cuda", "--model", model, "--format", "json", clip)
    assert rc == rc_cpu == 0 and err_cpu == ""
    assert out == out_cpu
    [line] = err.strip().splitlines()
    assert line == f"edge-ser: {model}: provider cuda (CUDAExecutionProvider) could not be used here; running on the CPU"


def test_cli_stream_takes_the_provider(model, clip):
    rc, out, err = run("stream", "--provider", "tensorrt", "--model", model, "--format", "json", clip)
    assert rc == 0 and out.strip()
    assert err.count("\n") == 1 and "provider tensorrt (TensorrtExecutionProvider) could not be used" in err


def test_tflite_with_a_gpu_provider_runs_on_cpu_with_one_line(clip):
    pytest.importorskip("ai_edge_litert")
    rc, out, err = run("infer", "--provider", "cuda", "--model", "tiny", clip)
    assert rc == 0 and out.strip()
    [line] = err.strip().splitlines()
    assert line.endswith("tiny.tflite: provider cuda applies to ONNX models only; this TFLite model runs on the CPU")


def test_unknown_provider_is_a_usage_error(model, clip):
    rc, _, err = run("infer", "--provider", "npu", "--model", model, clip)
    assert rc == 2 and "invalid choice: 'npu'" in err and "Traceback" not in err


def test_cli_lists_the_session_providers():
    assert cli.PROVIDERS == session.PROVIDERS


# --- edge-ser bench ---------------------------------------------------------------------------


def test_bench_prints_one_row_per_model(model):
    rc, out, err = run("bench", "--model", model, "--model", model, "--runs", "3")
    assert rc == 0 and err == ""
    header, *rows = [line.split("  ") for line in out.strip().splitlines()]
    header = [cell.strip() for cell in header if cell.strip()]
    assert header == ["model", "file", "input", "runs", "inference p50 ms", "inference p95 ms", "window p50 ms",
                      "window p95 ms"]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row if cell.strip()]
        assert cells[:4] == [str(model), "tiny.onnx", "3.00 s, 1 thread", "3"]
        p50, p95, window_p50, window_p95 = map(float, cells[4:])
        assert 0 < p50 <= p95 and 0 < window_p50 <= window_p95


def test_bench_percentiles_match_the_model_cards():
    from edge_ser.bench import percentiles

    times = [float(x) for x in range(1, 201)]  # p95 of 200: element int(0.95 * 199) = 189 of the sorted times
    assert percentiles(times[::-1]) == (100.5, 190.0)


def test_bench_a_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    rc, out, err = run("bench", "--model", bad, "--runs", "2")
    assert rc == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"edge-ser: {bad}: not a loadable ONNX model")


@pytest.mark.parametrize("threads", [0, 10**5, 2.5])
def test_the_api_bounds_threads_as_the_cli_does(model, threads):
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 256"):
        session.open_session(model, threads=threads)


def test_a_model_path_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    from edge_ser.errors import ModelError

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        session.open_session(fifo)
