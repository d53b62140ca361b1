"""Audio input under hostile or broken files (issue 22, findings 10-12): reads bounded by what
the file holds, bounded channel counts, `edge-ser vad` streamed, a bounded resampler filter for
any rate, and one plain line naming the file for non-audio, pipes, out-of-range floats and a
missing pad byte. CLI checks run `python -m edge_ser` in a subprocess."""
import io
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import warnings
from fractions import Fraction

import numpy as np
import pytest

from conftest import REPO
from edge_ser import audio, cli, features
from edge_ser.audio import Resampler, iter_audio_chunks, load_audio, read_wav, resample
from edge_ser.config import SAMPLE_RATE
from edge_ser.errors import AudioError
from edge_ser.vad import speech_segments

TIMEOUT = 120  # s per command: generous for a loaded 2-core machine, not a speed target
ADDRESS_SPACE_LIMIT = 2 << 30  # bytes: a CLI run fits; a read sized by a lying header does not
UNSIZED_LIE = 0xFFFFFFFE  # a data size just short of the "read to the end" markers


# ---------------------------------------------------------------------------------------------
# WAV bytes written by hand, every field settable


def chunk(chunk_id: bytes, body: bytes, size: int | None = None, pad: bool = True) -> bytes:
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size) + body + (b"\0" * (len(body) & 1) if pad else b"")


def fmt_chunk(tag=1, channels=1, rate=SAMPLE_RATE, bits=16) -> bytes:
    block = channels * bits // 8
    fields = (tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    return chunk(b"fmt ", struct.pack("<HHIIHH", *fields))


def wav_bytes(data: bytes, fmt: bytes | None = None, data_size=None, before_data=b"") -> bytes:
    body = b"WAVE" + (fmt or fmt_chunk()) + before_data + chunk(b"data", data, data_size)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Float32 at 16 kHz: 1.5 s harmonic bursts (150 Hz voice, harmonics to 4 kHz) with 1 s of
    faint noise between them, so the VAD finds segments."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 27))
    bursts = (t % 2.5) < 1.5
    noise = np.random.default_rng(seed).normal(0, 0.003, len(t))
    return (0.2 * voiced * bursts + noise).astype(np.float32)


def run(*args, env_extra=None, limit_memory=False, stdin=None):
    """(exit code, stdout, stderr) of `python -m edge_ser ARGS`; `limit_memory` caps the
    address space, so a read that asks for gigabytes fails instead of being overcommitted."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE", **(env_extra or {})}
    env.pop("EDGE_SER_DEBUG", None)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    done = subprocess.run([sys.executable, "-m", "edge_ser", *map(str, args)], capture_output=True,
                          env=env, timeout=TIMEOUT, cwd=REPO, input=stdin,
                          preexec_fn=cap if limit_memory else None)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_one_line_error(stderr: str, expected: str):
    """stderr is exactly `edge-ser: <expected>`: one line, no traceback, no warning."""
    assert stderr.strip().splitlines() == [f"edge-ser: {expected}"], stderr


class ReadRecorder(io.BufferedReader):
    """A file whose every read(n) request is recorded."""

    def __init__(self, path):
        super().__init__(io.FileIO(path))
        self.requests = []

    def read(self, n=-1):
        self.requests.append(n)
        return super().read(n)


# ---------------------------------------------------------------------------------------------
# Finding 10: reads bounded by the file, channel counts bounded, vad streamed


def test_many_channel_header_is_refused_in_one_line(tmp_path):
    """65,535 float64 channels in 1 MB, data size claiming 4 GB: once a 34 GB read."""
    data = np.random.default_rng(0).standard_normal(65535 * 2).astype("<f8").tobytes()
    path = tmp_path / "wide.wav"
    path.write_bytes(wav_bytes(data, fmt_chunk(3, channels=65535, bits=64), data_size=0xFFFFFFF0))
    expected = f"{path}: WAV header says 65535 channels (at most {audio.MAX_CHANNELS} are read)"
    for read in (read_wav, load_audio, lambda p: list(iter_audio_chunks(p, 1.0))):
        with pytest.raises(AudioError) as error:
            read(path)
        assert str(error.value) == expected
    code, out, err = run("vad", path, limit_memory=True)
    assert code == 1 and out == ""
    assert_one_line_error(err, expected)


def test_data_size_beyond_the_file_reads_the_samples_present(tmp_path):
    """A data chunk claiming 0xFFFFFFFE bytes over 3 s (a recorder that crashed): the 3 s are
    read, with no read sized by the header, and vad gives the same as for the honest file."""
    samples = speech_like(3.0)
    honest = tmp_path / "honest.wav"
    honest.write_bytes(wav_bytes(pcm16(samples)))
    lying = tmp_path / "lying.wav"
    lying.write_bytes(wav_bytes(pcm16(samples), data_size=UNSIZED_LIE))
    np.testing.assert_array_equal(read_wav(lying)[0], read_wav(honest)[0])
    with ReadRecorder(lying) as stream:
        read_wav(stream)
    assert max(stream.requests) <= audio.READ_BLOCK_BYTES
    code, out, err = run("vad", "--format", "json", lying, limit_memory=True)
    assert (code, err) == (0, "")
    code, honest_out, _ = run("vad", "--format", "json", honest)
    assert json.loads(out)[0]["segments"] == json.loads(honest_out)[0]["segments"] != []


def test_wide_frames_are_read_in_bounded_blocks(tmp_path, monkeypatch):
    """256 float64 channels (2 kB frames): a streamed read asked 65536 frames (128 MB) at once."""
    frames = np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 256))
    path = tmp_path / "array.wav"
    path.write_bytes(wav_bytes(frames.astype("<f8").tobytes(), fmt_chunk(3, channels=256, bits=64)))
    opened = []

    def recording_open(p):
        opened.append(ReadRecorder(p))
        return opened[-1]

    monkeypatch.setattr(audio, "_open_path", recording_open)
    chunks = np.concatenate(list(iter_audio_chunks(path, 0.5)))
    np.testing.assert_allclose(chunks, frames.mean(axis=1), atol=1e-6)
    assert max(n for stream in opened for n in stream.requests) <= audio.READ_BLOCK_BYTES


def test_vad_streams_through_the_file(tmp_path, monkeypatch, capsys):
    """`edge-ser vad` never holds more than a chunk of the file: the log-mel extractor never sees
    more than a few seconds of a 60 s file, and the segments equal the offline ones."""
    samples = speech_like(60.0)
    path = tmp_path / "minute.wav"
    path.write_bytes(wav_bytes(pcm16(samples)))
    offline = speech_segments(load_audio(path))
    longest = []
    log_mel = features.log_mel

    def measuring_log_mel(audio_samples, *args, **kwargs):
        longest.append(len(audio_samples))
        return log_mel(audio_samples, *args, **kwargs)

    monkeypatch.setattr(features, "log_mel", measuring_log_mel)
    assert cli.main(["vad", "--format", "json", str(path)]) == 0
    segments = json.loads(capsys.readouterr().out)[0]["segments"]
    assert segments == [[round(a, 3), round(b, 3)] for a, b in offline] and len(segments) > 10
    assert max(longest) <= 5 * SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# Finding 11: a bounded resampler filter for any rate


COMMON_RATES = [8000, 11025, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000]


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_common_rates_keep_their_exact_ratio(rate):
    """The rates in use keep the exact ratio, so their output is what it was (scipy's)."""
    exact = Fraction(SAMPLE_RATE, rate)
    assert audio.rate_ratio(rate, SAMPLE_RATE) == (exact.numerator, exact.denominator)
    assert audio.rate_ratio(SAMPLE_RATE, rate) == (exact.denominator, exact.numerator)


@pytest.mark.parametrize("rate", [191999, 176399, 96001, 44057, 8001])
def test_coprime_rates_get_a_bounded_filter(rate):
    """191,999 Hz once built a 3.8 M-tap filter (474 MB); the ratio is now the nearest one with
    terms up to MAX_RATIO_TERM, within 1 / MAX_RATIO_TERM of the true one."""
    resampler = Resampler(rate)
    assert max(resampler.up, resampler.down) <= audio.MAX_RATIO_TERM
    assert resampler.phases.size <= 2 * audio.HALF_TAPS_PER_RATE * audio.MAX_RATIO_TERM + resampler.up
    assert abs(resampler.up / resampler.down * rate / SAMPLE_RATE - 1) <= 1 / audio.MAX_RATIO_TERM
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, rate)[1000:-1000]  # away from the zero-padded ends
    assert abs(len(out) + 2000 - SAMPLE_RATE) <= 2
    assert abs(np.sqrt(np.mean(out.astype(np.float64) ** 2)) - np.sqrt(0.5)) < 0.01
    if rate > 2 * 12000:  # above the new Nyquist: suppressed
        high = resample(np.sin(2 * np.pi * 12000 * t).astype(np.float32), rate)[1000:-1000]
        assert np.sqrt(np.mean(high.astype(np.float64) ** 2)) < 1e-3


def test_191999_hz_file_is_read_as_192000(tmp_path):
    """5 ppm from 192 kHz: the same samples as the file would give at 192 kHz."""
    samples = np.random.default_rng(2).uniform(-0.5, 0.5, 19200)
    odd = tmp_path / "odd_rate.wav"
    odd.write_bytes(wav_bytes(pcm16(samples), fmt_chunk(rate=191999)))
    usual = tmp_path / "usual_rate.wav"
    usual.write_bytes(wav_bytes(pcm16(samples), fmt_chunk(rate=192000)))
    np.testing.assert_array_equal(load_audio(odd), load_audio(usual))


@pytest.mark.parametrize("orig_sr, target_sr", [(10**9, 1), (1, 10**9)])
def test_ratios_beyond_the_bound_are_refused(orig_sr, target_sr):
    with pytest.raises(ValueError, match="beyond 1:8192"):
        Resampler(orig_sr, target_sr)


# ---------------------------------------------------------------------------------------------
# Finding 12: plain messages naming the file


NOT_AUDIO = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
    "text": b"this is a text file, not a recording\n",
    "utf16": b"\xff\xfe" + "UTF-16 text: its mark FF FE reads as an MPEG sync\n".encode("utf-16-le"),
}


@pytest.mark.parametrize("kind", sorted(NOT_AUDIO))
@pytest.mark.parametrize("soundfile_installed", [True, False])
def test_non_audio_named_wav_is_not_audio(tmp_path, kind, soundfile_installed):
    """Not: 'needs the optional soundfile package'."""
    path = tmp_path / f"{kind}.wav"
    path.write_bytes(NOT_AUDIO[kind])
    env = {}
    if not soundfile_installed:  # a module of that name that cannot be imported
        hidden = tmp_path / "hide"
        hidden.mkdir()
        (hidden / "soundfile.py").write_text("raise ImportError('hidden by the test')\n")
        env["PYTHONPATH"] = f"{hidden}{os.pathsep}{REPO}"
    code, out, err = run("vad", path, env_extra=env)
    assert code == 1 and out == ""
    assert_one_line_error(err, f"{path}: not a WAV file or a recognised audio format")


def feed_fifo(fifo, content: bytes) -> threading.Thread:
    def write():
        try:
            with open(fifo, "wb") as f:
                f.write(content)
        except BrokenPipeError:  # the reader stopped early: its message says why
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_wav_from_a_named_pipe_is_read_as_a_stream(tmp_path):
    """Once: 'File or stream is not seekable'."""
    content = wav_bytes(pcm16(speech_like(3.0)), data_size=UNSIZED_LIE)
    regular = tmp_path / "regular.wav"
    regular.write_bytes(content)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = feed_fifo(fifo, content)
    code, out, err = run("vad", "--format", "json", fifo)
    writer.join(timeout=TIMEOUT)
    assert (code, err) == (0, "")
    _, expected, _ = run("vad", "--format", "json", regular)
    assert json.loads(out)[0]["segments"] == json.loads(expected)[0]["segments"] != []


def test_flac_from_a_named_pipe_says_it_needs_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.flac"
    os.mkfifo(fifo)
    writer = feed_fifo(fifo, b"fLaC" + bytes(200))
    code, out, err = run("vad", fifo)
    writer.join(timeout=TIMEOUT)
    assert code == 1
    assert_one_line_error(err, f"{fifo}: FLAC audio is read only from a regular file, not a pipe")


@pytest.mark.parametrize(
    "dtype, bits, value, problem",
    [
        ("<f8", 64, 1e300, "float samples out of range (peak 1e+300; full scale is 1, the limit 2.15e+09)"),
        ("<f4", 32, 3e38, "float samples out of range (peak 3e+38; full scale is 1, the limit 2.15e+09)"),
        ("<f8", 64, np.inf, "NaN or infinite samples"),
        ("<f4", 32, np.nan, "NaN or infinite samples"),
    ],
)
def test_float_samples_out_of_range_or_not_finite(tmp_path, dtype, bits, value, problem):
    """1e300 in a float64 WAV: once a numpy RuntimeWarning and 'NaN or infinite samples'."""
    samples = np.full(1600, 0.1)
    samples[800] = value
    path = tmp_path / "float.wav"
    path.write_bytes(wav_bytes(samples.astype(dtype).tobytes(), fmt_chunk(3, bits=bits)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        for read in (read_wav, load_audio, lambda p: list(iter_audio_chunks(p, 1.0))):
            with pytest.raises(AudioError) as error:
                read(path)
            assert str(error.value) == f"{path}: {problem}"
    code, out, err = run("vad", path)
    assert code == 1
    assert_one_line_error(err, f"{path}: {problem}")


def test_float_samples_beyond_full_scale_are_kept():
    """Float WAV is not clipped: a peak of 4 (or an integer-scaled file) is still audio."""
    samples = np.array([0.5, -4.0, 30000.0, 0.0], dtype="<f4")
    got, _ = read_wav(io.BytesIO(wav_bytes(samples.tobytes(), fmt_chunk(3, bits=32))))
    np.testing.assert_array_equal(got[:, 0], samples)


ODD_INFO = b"INFOISFT\x05\x00\x00\x00lavf\x00"  # 17 bytes: a pad byte should follow


@pytest.mark.parametrize("where", ["before fmt", "before data"])
def test_odd_chunk_without_its_pad_byte(tmp_path, where):
    """Once: 'no data chunk'. The writer bug (no pad byte after an odd-sized chunk) is accepted."""
    samples = speech_like(3.0)
    unpadded = chunk(b"LIST", ODD_INFO, pad=False)
    if where == "before fmt":
        body = b"WAVE" + unpadded + fmt_chunk() + chunk(b"data", pcm16(samples))
    else:
        body = b"WAVE" + fmt_chunk() + unpadded + chunk(b"data", pcm16(samples))
    path = tmp_path / "no_pad.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    honest = tmp_path / "padded.wav"
    honest.write_bytes(wav_bytes(pcm16(samples), before_data=chunk(b"LIST", ODD_INFO)))
    np.testing.assert_array_equal(read_wav(path)[0], read_wav(honest)[0])
    code, out, err = run("vad", path)
    assert (code, err) == (0, "")
    assert out.startswith(f"{path}  ")


def test_load_audio_from_a_closed_stdin_is_an_audio_error(monkeypatch):
    """The API, not only the CLI: Python sets sys.stdin to None when started with it closed."""
    from edge_ser.audio import load_audio

    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(AudioError, match="standard input is closed"):
        load_audio("-")
