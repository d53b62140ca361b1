"""The README's example clip is made, not tracked: `examples/make_clip.py` writes a seeded,
speech-like 16 kHz WAV that the runtime reads and whose phrases the VAD finds."""
import subprocess
import sys
import pathlib

import numpy as np

from edge_ser import vad
from edge_ser.audio import load_audio

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "make_clip.py"


def make(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path)


def test_the_example_clip_is_seeded_speech_with_pauses(tmp_path):
    for name in ("a.wav", "b.wav"):
        assert make(tmp_path, name).returncode == 0
    a, b = load_audio(str(tmp_path / "a.wav")), load_audio(str(tmp_path / "b.wav"))
    assert len(a) == 9 * 16000 and np.array_equal(a, b)
    segments = vad.speech_segments(a)
    speech = sum(end - start for start, end in segments)
    assert len(segments) >= 3 and 4.0 < speech < 8.5  # phrases, and pauses between them
    assert not list(tmp_path.glob("*.tmp"))  # written to a temporary name, then renamed


def test_bad_length_is_refused_naming_the_option(tmp_path):
    result = make(tmp_path, "x.wav", "--seconds", "0")
    assert result.returncode == 2 and "--seconds 0.0: must be > 0" in result.stderr
    assert not (tmp_path / "x.wav").exists()
