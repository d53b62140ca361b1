"""The `edge-ser` command under hostile arguments and a hostile environment (issue 22, findings 12
and 13): every failure is one line on stderr naming the input, option or stream and the problem,
with a non-zero exit code, never a traceback and never "unexpected error"; results files get
the permissions `>` would give them.

The table runs `python -m edge_ser` in a subprocess per row, in the directory the `workspace`
fixture fills: a row is the command line (naming that directory's files), how stdin and stdout
are connected, the exit code and a fragment of the one stderr line."""
import io
import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

import models
from conftest import REPO
from edge_ser import outputs, stream
from edge_ser.errors import AudioError, OutputError
from edge_ser.recognizer import Recognizer
from test_cli import noise, write_wav

TIMEOUT = 60  # s; rows that used to hang (a FIFO as the model, 1e8 threads) fail by it
LONG_NAME = "n" * 300  # longer than a file name may be (255 bytes)
NOT_UTF8 = os.fsdecode(b"empty-\xff.wav")  # a file name whose bytes are not UTF-8
DEV_FULL = "/dev/full"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory with a model, a WAV, and the awkward things the rows name."""
    root = tmp_path_factory.mktemp("hostile")
    models.save(models.build_model(), root / "model.onnx")
    write_wav(root / "clip.wav", noise(1.0, 1))
    (root / "empty.wav").write_bytes(b"")
    (root / NOT_UTF8).write_bytes(b"")
    os.mkfifo(root / "fifo")
    os.symlink("loop-b", root / "loop-a")  # a symbolic link loop
    os.symlink("loop-a", root / "loop-b")
    return root


def run_hostile(workspace, argv, stdin=b"", stdout="pipe"):
    """(exit code, stderr) of `python -m edge_ser ARGV` run in `workspace`. stdin: bytes, or
    "closed"; stdout: "pipe", "closed" or "full" (/dev/full)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("EDGE_SER_DEBUG", None)
    closed = [fd for fd, how in ((0, stdin), (1, stdout)) if how == "closed"]
    sink = open(DEV_FULL, "wb") if stdout == "full" else subprocess.PIPE
    try:
        done = subprocess.run([sys.executable, "-m", "edge_ser", *argv], cwd=workspace, env=env,
                              input=None if stdin == "closed" else stdin,
                              stdin=subprocess.DEVNULL if stdin == "closed" else None,
                              stdout=sink, stderr=subprocess.PIPE, timeout=TIMEOUT,
                              preexec_fn=(lambda: [os.close(fd) for fd in closed]) if closed else None)
    finally:
        if sink is not subprocess.PIPE:
            sink.close()
    return done.returncode, done.stderr.decode()


def assert_one_line(stderr: str, fragment: str):
    assert "Traceback" not in stderr and "unexpected error" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-ser: "), stderr
    assert fragment in lines[0], stderr


NO_SPACE = "edge-ser: cannot write results to standard output: No space left on device"
CLOSED_STDOUT = "cannot write results to standard output: it is closed"
STDIN_CLOSED = "<stdin>: standard input is closed"

# (id, argv, stdin, stdout, exit code, fragment of the one stderr line)
ROWS = [
    # --threads: 1e20 was "unexpected error: TypeError", 1e8 hung onnxruntime (1e5 crashed LiteRT)
    ("threads-huge", ["infer", "--model", "model.onnx", "--threads", "99999999999999999999", "clip.wav"],
     b"", "pipe", 2, "argument --threads: must be 1 to 256, got 99999999999999999999"),
    ("threads-1e8", ["infer", "--model", "model.onnx", "--threads", "100000000", "clip.wav"],
     b"", "pipe", 2, "argument --threads: must be 1 to 256"),
    ("threads-negative", ["stream", "--model", "model.onnx", "--threads", "-3", "clip.wav"],
     b"", "pipe", 2, "argument --threads: must be 1 to 256, got -3"),
    ("threads-text", ["infer", "--threads", "many", "clip.wav"], b"", "pipe", 2, "not an integer: 'many'"),
    ("bench-runs-huge", ["bench", "--model", "model.onnx", "--runs", "1000000000000"],  # would never end
     b"", "pipe", 2, "argument --runs: must be 1 to 100000"),
    # --window / --hop: 1e-9 s was "unexpected error: ValueError", 1e9 s "MemoryError: 58.2 TiB"
    ("window-tiny", ["stream", "--model", "model.onnx", "--window", "1e-9", "clip.wav"],
     b"", "pipe", 2, "argument --window: must be 0.1 to 60 seconds, got 1e-9"),
    ("window-huge", ["stream", "--model", "model.onnx", "--window", "1e9", "clip.wav"],
     b"", "pipe", 2, "argument --window: must be 0.1 to 60 seconds, got 1e9"),
    ("window-nan", ["stream", "--window", "nan", "-"], b"", "pipe", 2, "argument --window: must be"),
    ("hop-tiny", ["stream", "--model", "model.onnx", "--hop", "1e-12", "clip.wav"],
     b"", "pipe", 2, "argument --hop: must be 0.01 to 60 seconds"),
    ("hop-over-window", ["stream", "--model", "model.onnx", "--window", "1", "--hop", "2", "clip.wav"],
     b"", "pipe", 2, "--hop (2 s) must not exceed the window (1 s)"),
    ("format", ["infer", "--format", "xml", "clip.wav"], b"", "pipe", 2, "invalid choice: 'xml'"),
    # --output: "" wrote to stdout, "dir/" failed only after the work, with a second line
    ("output-empty", ["infer", "--model", "model.onnx", "--output", "", "clip.wav"],
     b"", "pipe", 2, "argument --output: an empty file name"),
    ("output-slash", ["infer", "--model", "model.onnx", "--output", "nowhere/", "empty.wav"],
     b"", "pipe", 2, "argument --output: nowhere/: is a directory, not a file"),
    ("output-directory", ["vad", "--output", ".", "clip.wav"], b"", "pipe", 2, ".: is a directory, not a file"),
    ("output-dot-in-new-dir", ["vad", "--output", "newdir/.", "clip.wav"],  # made a file "newdir"
     b"", "pipe", 2, "newdir/.: is a directory, not a file"),
    ("output-loop", ["vad", "--output", "loop-a", "clip.wav"],
     b"", "pipe", 2, "loop-a: cannot write output (Too many levels of symbolic links)"),
    ("output-long-name", ["vad", "--output", LONG_NAME, "clip.wav"],
     b"", "pipe", 2, "cannot write output (File name too long)"),
    # --model: a FIFO hung; a name too long was "unexpected error: OSError"; "" named "."
    ("model-fifo", ["infer", "--model", "fifo", "clip.wav"],
     b"", "pipe", 2, "fifo: not a regular file (a FIFO, device or socket), so not a model file"),
    ("model-device", ["info", "/dev/null"], b"", "pipe", 2, "/dev/null: not a regular file"),
    ("model-long-name", ["infer", "--model", LONG_NAME, "clip.wav"],
     b"", "pipe", 2, "cannot open model file (File name too long)"),
    ("info-long-name", ["info", LONG_NAME], b"", "pipe", 2, "cannot open model file (File name too long)"),
    ("model-loop", ["check", "--model", "loop-a", "clip.wav"],
     b"", "pipe", 2, "loop-a: cannot open model file (Too many levels of symbolic links)"),
    ("model-empty-name", ["info", "--model", ""], b"", "pipe", 2, "argument --model: an empty model name"),
    ("model-directory", ["infer", "--model", ".", "clip.wav"], b"", "pipe", 2, ".: is a directory, not a model file"),
    # inputs
    ("input-long-name", ["vad", LONG_NAME], b"", "pipe", 1, "cannot open: File name too long"),
    ("input-empty", ["vad", "empty.wav"], b"", "pipe", 1, "empty.wav: empty file"),
    # a name that is not UTF-8: was named twice, once escaped and once not ("\udcff")
    ("input-not-utf8", ["vad", NOT_UTF8], b"", "pipe", 1, "edge-ser: empty-\\xff.wav: empty file"),
    ("model-not-utf8", ["info", os.fsdecode(b"missing-\xff.onnx")], b"", "pipe", 2,
     "edge-ser: missing-\\xff.onnx: no such model file"),
    ("check-nothing-readable", ["check", "--model", "model.onnx", "empty.wav"], b"", "pipe", 1, "empty.wav: empty file"),
    # stdin closed: was "unexpected error: AttributeError"
    ("stdin-closed-infer", ["infer", "--model", "model.onnx", "-"], "closed", "pipe", 1, STDIN_CLOSED),
    ("stdin-closed-vad", ["vad", "-"], "closed", "pipe", 1, STDIN_CLOSED),
    ("stdin-closed-stream", ["stream", "--model", "model.onnx", "-"], "closed", "pipe", 2, STDIN_CLOSED),
    # stdout closed: was "unexpected error: AttributeError"
    ("stdout-closed-infer", ["infer", "--model", "model.onnx", "clip.wav"], b"", "closed", 2, CLOSED_STDOUT),
    ("stdout-closed-info", ["info"], b"", "closed", 2, CLOSED_STDOUT),
    # stdout on a full disk: was "unexpected error: OSError"; --version said nothing, exit code 0
    ("full-infer", ["infer", "--model", "model.onnx", "clip.wav"], b"", "full", 2, NO_SPACE),
    ("full-infer-json", ["infer", "--model", "model.onnx", "--format", "json", "clip.wav"], b"", "full", 2, NO_SPACE),
    ("full-vad", ["vad", "clip.wav"], b"", "full", 2, NO_SPACE),
    ("full-info-model", ["info", "model.onnx"], b"", "full", 2, NO_SPACE),
    ("full-info", ["info"], b"", "full", 2, NO_SPACE),
    ("full-info-json", ["info", "--format", "json", "model.onnx"], b"", "full", 2, NO_SPACE),
    ("full-bench", ["bench", "--model", "model.onnx", "--runs", "2"], b"", "full", 2, NO_SPACE),
    ("full-check", ["check", "--model", "model.onnx", "clip.wav"], b"", "full", 2, NO_SPACE),
    ("full-stream", ["stream", "--model", "model.onnx", "clip.wav"], b"", "full", 2, NO_SPACE),
    ("full-version", ["--version"], b"", "full", 2, NO_SPACE),
    ("full-help", ["infer", "--help"], b"", "full", 2, NO_SPACE),
    ("no-command", [], b"", "pipe", 2, "a command is required"),
]


@pytest.mark.parametrize("argv, stdin, stdout, code, fragment", [row[1:] for row in ROWS],
                         ids=[row[0] for row in ROWS])
def test_one_line_per_failure(workspace, argv, stdin, stdout, code, fragment):
    if stdout == "full" and not os.path.exists(DEV_FULL):
        pytest.skip(f"no {DEV_FULL} here")
    got_code, stderr = run_hostile(workspace, argv, stdin, stdout)
    assert got_code == code, stderr
    assert_one_line(stderr, fragment)


def test_stdout_closed_is_no_failure_when_results_go_to_a_file(workspace, tmp_path):
    code, stderr = run_hostile(workspace, ["vad", "--output", tmp_path / "segments.csv", "clip.wav"], stdout="closed")
    assert (code, stderr) == (0, "")
    assert (tmp_path / "segments.csv").read_text().startswith("clip.wav  0 speech segments")


def test_a_reader_that_goes_away_ends_the_stream_quietly(workspace):
    """`edge-ser stream - | head -1`: the first write after the reader has gone ends the
    command without a word on stderr (exit code 1, as for any broken pipe)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    pcm = (noise(4.0, 4) * 32767).astype("<i2").tobytes()  # two windows and the VAD's lookahead
    child = subprocess.Popen([sys.executable, "-m", "edge_ser", "stream", "--model", "model.onnx", "--hop", "0.5", "-"],
                             cwd=workspace, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = threading.Timer(TIMEOUT, child.kill)  # a read below must not wait for ever
    deadline.start()
    try:
        child.stdin.write(pcm)
        child.stdin.flush()
        assert child.stdout.readline()  # a window is out: the reader takes one line and goes
        child.stdout.close()
        try:
            child.stdin.write(pcm)  # more windows, written to a pipe nobody reads
            child.stdin.close()
        except BrokenPipeError:  # the command has already stopped at the next window
            pass
        assert child.wait(timeout=TIMEOUT) == 1
        assert child.stderr.read() == b""
    finally:
        deadline.cancel()
        child.kill()
        child.wait()


# --- results files (finding 13) --------------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_results_file_gets_the_umask_mode(tmp_path, umask_022):
    """mkstemp made every results file 0600 whatever the umask."""
    outputs.write_atomically(str(tmp_path / "results.csv"), "a,b\n")
    assert mode(tmp_path / "results.csv") == 0o644


def test_a_replaced_results_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    outputs.write_atomically(str(target), "new\n")
    assert mode(target) == 0o640 and target.read_text() == "new\n"


def test_the_command_writes_results_files_with_the_umask_mode(workspace, tmp_path):
    target = tmp_path / "segments.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "edge_ser", "vad", "--format", "json", "--output", target, "clip.wav"],
                   cwd=workspace, env=env, check=True, timeout=TIMEOUT, preexec_fn=lambda: os.umask(0o027))
    assert mode(target) == 0o640


def test_a_symbolic_link_stays_a_link_to_the_new_results(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    os.chmod(tmp_path / "real.csv", 0o604)
    os.symlink("real.csv", tmp_path / "link.csv")
    outputs.write_atomically(str(tmp_path / "link.csv"), "new\n")
    assert os.readlink(tmp_path / "link.csv") == "real.csv"
    assert (tmp_path / "real.csv").read_text() == "new\n" and mode(tmp_path / "real.csv") == 0o604


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    """Renaming over a device or FIFO (`--output /dev/null`) replaced it with a regular file."""
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: opening to write does not block
    try:
        outputs.check_writable(str(fifo))
        outputs.write_atomically(str(fifo), "results\n")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert os.read(reader, 100) == b"results\n"
    finally:
        os.close(reader)
    assert os.listdir(tmp_path) == ["results.fifo"]


def test_a_results_file_that_cannot_be_written_is_one_line(tmp_path):
    with pytest.raises(OutputError, match=r"loop: cannot write output \(Too many levels of symbolic links\)"):
        os.symlink("loop", tmp_path / "loop")
        outputs.check_writable(str(tmp_path / "loop"))


# --- the library under the command ----------------------------------------------------------


def test_standard_output_errors_name_standard_output():
    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="^cannot write results to standard output: No space left on device$"):
        outputs.StandardOutput(Full()).write("x")
    with pytest.raises(OutputError, match="it is closed"):
        outputs.StandardOutput(None).write("x")
    outputs.StandardOutput(None).flush()  # nothing written, nothing lost


def test_names_that_are_not_utf8_reach_a_strict_utf8_stdout_escaped():
    """A model path that is not UTF-8 (`info`, `check` print it) was "unexpected error:
    UnicodeEncodeError" where stdout is strict UTF-8 (PYTHONIOENCODING=utf-8)."""
    raw = io.BytesIO()
    out = outputs.StandardOutput(io.TextIOWrapper(raw, encoding="utf-8", errors="strict"))
    out.write("model: " + os.fsdecode(b"m-\xff.tflite") + "\n")
    out.flush()
    assert raw.getvalue() == b"model: m-\\xff.tflite\n"


def test_a_broken_pipe_is_not_turned_into_an_error_line():
    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        outputs.StandardOutput(Gone()).write("x")


def test_live_audio_from_a_closed_stdin_is_an_audio_error(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(AudioError, match="^<stdin>: standard input is closed$"):
        next(stream.audio_chunks("-", live=True))


@pytest.mark.parametrize("window", [1e-9, 0.05, 61.0, 1e9])
def test_stream_windows_outside_a_models_bounds_are_refused(workspace, window):
    rec = Recognizer(workspace / "model.onnx")
    with pytest.raises(ValueError, match="window must be 0.1 to 60 s"):
        next(rec.stream([np.zeros(16000, np.float32)], window=window))


def test_output_to_dev_stdout_on_a_pipe_is_written_through(workspace):
    """/dev/stdout on a pipe resolves to a /proc name that is no path: it is written directly."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "edge_ser", "vad", "--format", "csv", "--output", "/dev/stdout",
                           "clip.wav"], cwd=workspace, env=env, capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("file,start,end")


def test_setuid_and_sticky_bits_are_not_carried_over(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    os.chmod(target, 0o4755 | stat.S_ISVTX)
    outputs.write_atomically(str(target), "new\n")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755


def test_a_long_results_name_still_finds_a_temporary_name(tmp_path):
    target = tmp_path / ("r" * 240 + ".csv")  # a temporary named after all of it would pass 255 bytes
    outputs.write_atomically(str(target), "a\n")
    assert target.read_text() == "a\n" and os.listdir(tmp_path) == [target.name]
