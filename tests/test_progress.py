"""The progress line of long batches: on a terminal's stderr while the results go to a file or
pipe; silent with --quiet, when stderr is not a terminal, and for small batches."""
from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import numpy as np
import pytest

from edge_ser.progress import MIN_FILES, Progress
import models
from test_cli import REPO, TIMEOUT, write_wav


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(3)
    for i in range(MIN_FILES + 2):
        write_wav(folder / f"clip{i:02d}.wav", rng.normal(0, 0.1, 8000))
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEnot really")
    model = models.save(models.build_model(), folder.parent / "m.onnx")
    return folder, model


def run_with_tty_stderr(*args) -> tuple[int, str, str]:
    """Run edge-ser with stderr on a pseudo-terminal and stdout on a pipe."""
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-m", "edge_ser", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=child, env=env, timeout=TIMEOUT, cwd=REPO)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return done.returncode, done.stdout.decode(), b"".join(chunks).decode()


def test_a_terminal_sees_progress_and_the_results_stay_clean(batch):
    folder, model = batch
    code, out, err = run_with_tty_stderr("infer", "--model", model, "--format", "csv", folder)
    assert code == 1  # the broken file
    assert f"[0/{MIN_FILES + 3}]" in err
    # The error is on a line of its own: the progress line was blanked out just before it.
    before_error = err.split("edge-ser: ")[0].rsplit("\r", 2)
    assert "broken.wav:" in err and before_error[-1] == "" and before_error[-2].strip() == ""
    assert "files/s" not in out and len(out.splitlines()) == MIN_FILES + 2 + 1  # header + good files


def test_quiet_silences_it(batch):
    folder, model = batch
    _, out, err = run_with_tty_stderr("infer", "--model", model, "--quiet", "--format", "csv", folder)
    assert f"/{MIN_FILES + 3}]" not in err and "broken.wav:" in err


def test_no_progress_when_stderr_is_not_a_terminal(batch):
    folder, model = batch
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "edge_ser", "infer", "--model", str(model), str(folder)],
                          capture_output=True, env=env, timeout=TIMEOUT, cwd=REPO)
    assert f"/{MIN_FILES + 3}]" not in done.stderr.decode()


def test_line_is_rewritten_in_place_and_cleared():
    stream = io.StringIO()
    progress = Progress(20, enabled=True, stream=stream)
    progress.update(5, "a.wav")
    progress.update(20, "b.wav")
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") >= 3 and "[5/20] 25 %" in text and "\n" not in text
    assert text.endswith("\r")


def test_small_batches_and_disabled_progress_write_nothing():
    stream = io.StringIO()
    for progress in (Progress(3, enabled=False, stream=stream), Progress(50, enabled=False, stream=stream)):
        progress.update(1, "a.wav")
        progress.finish()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("files, quiet, to_terminal, shown", [
    (MIN_FILES, False, False, True), (MIN_FILES - 1, False, False, False),
    (MIN_FILES, True, False, False), (MIN_FILES, False, True, False)])
def test_when_the_line_is_shown(monkeypatch, files, quiet, to_terminal, shown):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert Progress.for_batch(files, quiet=quiet, results_to_terminal=to_terminal).enabled == shown


def test_the_first_update_gives_no_pace_yet():
    stream = io.StringIO()
    Progress(20, enabled=True, stream=stream).update(0, "a.wav")
    assert "[0/20] 0 %  a.wav" in stream.getvalue() and "left" not in stream.getvalue()
