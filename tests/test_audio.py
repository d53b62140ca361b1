"""edge_ser.audio: WAV parsing, other formats, stdin PCM, resampling, chunked reading."""
import io
import math
import struct
import sys

import numpy as np
import pytest
import scipy.signal
import soundfile

from edge_ser import audio
from edge_ser.audio import (
    Resampler,
    iter_audio_chunks,
    load_audio,
    pad_or_trim,
    read_pcm16,
    read_wav,
    resample,
)
from edge_ser.config import SAMPLE_RATE
from edge_ser.errors import AudioError

RATES = [8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000, 192000]
FLOAT_GUID = struct.pack("<H", 3) + audio.KSDATAFORMAT_GUID_TAIL
PCM_GUID = struct.pack("<H", 1) + audio.KSDATAFORMAT_GUID_TAIL


# ---------------------------------------------------------------------------------------------
# a small WAV writer, independent of the reader: every field can be set wrong on purpose


def fmt_chunk(tag=1, channels=1, rate=16000, bits=16, guid=None) -> bytes:
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if guid is not None:  # WAVE_FORMAT_EXTENSIBLE
        body = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        body += struct.pack("<HHI", 22, bits, 0) + guid
    return chunk(b"fmt ", body)


def chunk(chunk_id: bytes, body: bytes, size=None) -> bytes:
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size) + body + b"\0" * (len(body) & 1)


def wav_bytes(data: bytes, fmt: bytes = None, data_size=None, riff_size=None) -> bytes:
    fmt = fmt_chunk() if fmt is None else fmt
    body = b"WAVE" + fmt + chunk(b"data", data, data_size)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def write(tmp_path, content: bytes, name="a.wav"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def pack24(ints) -> bytes:
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)


# ---------------------------------------------------------------------------------------------
# WAV variants: samples against values worked out by hand


@pytest.mark.parametrize(
    "bits, data, expected",
    [
        (8, bytes([0, 64, 128, 192, 255]), [-1.0, -0.5, 0.0, 0.5, 127 / 128]),
        (16, struct.pack("<5h", -32768, -16384, 0, 1, 32767), [-1, -0.5, 0, 2**-15, 1 - 2**-15]),
        (24, pack24([-(2**23), -(2**22), 0, 1, 2**23 - 1]), [-1, -0.5, 0, 2**-23, 1 - 2**-23]),
        (32, struct.pack("<5i", -(2**31), -(2**30), 0, 2**16, 2**31 - 1), [-1, -0.5, 0, 2**-15, 1]),
    ],
)
def test_pcm_depths_scale_to_unit_range(tmp_path, bits, data, expected):
    samples, rate = read_wav(write(tmp_path, wav_bytes(data, fmt_chunk(bits=bits))))
    assert rate == 16000 and samples.dtype == np.float32 and samples.shape == (5, 1)
    np.testing.assert_allclose(samples[:, 0], expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("bits, code", [(32, "<f4"), (64, "<f8")])
@pytest.mark.parametrize("extensible", [False, True])
def test_float_wav(tmp_path, bits, code, extensible):
    values = np.array([-1.0, -0.25, 0.0, 0.3, 0.999], dtype=code)
    fmt = fmt_chunk(3, bits=bits, guid=FLOAT_GUID if extensible else None)
    samples, _ = read_wav(write(tmp_path, wav_bytes(values.tobytes(), fmt)))
    np.testing.assert_array_equal(samples[:, 0], values.astype(np.float32))


def test_extensible_pcm_and_any_channel_count(tmp_path):
    ints = np.arange(-600, 600, 7, dtype=np.int16)[: 6 * 20]  # 20 frames of 6 channels
    fmt = fmt_chunk(channels=6, bits=16, guid=PCM_GUID)
    samples, _ = read_wav(write(tmp_path, wav_bytes(ints.tobytes(), fmt)))
    assert samples.shape == (20, 6)
    np.testing.assert_array_equal(samples, ints.reshape(20, 6) / 32768)


@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_files_written_by_libsndfile(tmp_path, container, subtype):
    data = np.random.default_rng(1).uniform(-0.9, 0.9, size=(500, 3))
    path = tmp_path / "sf.wav"
    soundfile.write(path, data, 44100, format=container, subtype=subtype)
    expected, expected_rate = soundfile.read(path, dtype="float64", always_2d=True)
    samples, rate = read_wav(path)
    assert rate == expected_rate == 44100 and samples.shape == (500, 3)
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-7)


def test_real_emodb_wav_matches_soundfile(data_dir):
    for path in sorted((data_dir / "emodb" / "wav").glob("*.wav"))[:5]:
        samples, rate = read_wav(path)
        expected, expected_rate = soundfile.read(path, dtype="float32", always_2d=True)
        assert rate == expected_rate
        np.testing.assert_array_equal(samples, expected)


def test_unknown_chunks_and_odd_padding_are_skipped(tmp_path):
    ints = np.array([100, -200, 300], dtype=np.int16)
    before = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00lavf\x00")  # odd size: one pad byte follows
    between = chunk(b"fact", struct.pack("<I", 3))
    after = chunk(b"LIST", b"trailing metadata that is not audio")
    body = before + fmt_chunk() + between + chunk(b"data", ints.tobytes()) + after
    content = b"RIFF\0\0\0\0WAVE" + body
    samples, _ = read_wav(write(tmp_path, content))
    np.testing.assert_array_equal(samples[:, 0], ints / 32768)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_streaming_sizes_read_to_end_of_file(tmp_path, size):
    ints = np.arange(-50, 50, dtype=np.int16)
    content = wav_bytes(ints.tobytes(), data_size=size, riff_size=size)
    samples, _ = read_wav(write(tmp_path, content))
    np.testing.assert_array_equal(samples[:, 0], ints / 32768)


def test_short_data_chunk_keeps_whole_frames(tmp_path):
    ints = np.arange(21, dtype=np.int16) * 100  # 10.5 stereo frames, header claims 1000
    content = wav_bytes(ints.tobytes(), fmt_chunk(channels=2), data_size=4000)
    samples, _ = read_wav(write(tmp_path, content))
    np.testing.assert_array_equal(samples, ints[:20].reshape(10, 2) / 32768)


def test_one_frame_file_is_audio(tmp_path):
    path = write(tmp_path, wav_bytes(struct.pack("<h", 16384)))
    samples, _ = read_wav(path)
    np.testing.assert_array_equal(samples, [[0.5]])
    assert len(load_audio(path)) == 1


def test_read_wav_from_file_object():
    ints = np.array([1, 2, 3], dtype=np.int16)
    samples, rate = read_wav(io.BytesIO(wav_bytes(ints.tobytes(), fmt_chunk(rate=8000))))
    assert rate == 8000
    np.testing.assert_array_equal(samples[:, 0], ints / 32768)


# ---------------------------------------------------------------------------------------------
# bad input: one AudioError naming the file and the problem

GOOD_DATA = struct.pack("<4h", 1, 2, 3, 4)
NAN_DATA = np.array([0.1, np.nan, 0.2], dtype="<f4").tobytes()
INF_DATA = np.array([0.1, np.inf], dtype="<f8").tobytes()
RIFF = b"RIFF\0\0\0\0WAVE"  # a RIFF header with the size left 0, as streaming tools write it
BAD_FILES = {
    "empty file": (b"", "empty file"),
    "truncated header": (b"RIFF\x24\x00", "truncated WAV header"),
    "garbage": (b"\x13\x37 this is not audio at all \x00\xff", "not a WAV file"),
    "RIFF but not WAVE": (b"RIFF\x04\x00\x00\x00AVI LIST", "not a WAV file"),
    "no fmt chunk": (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
    "data before fmt": (RIFF + chunk(b"data", GOOD_DATA) + fmt_chunk(), "no fmt chunk"),
    "no data chunk": (RIFF + fmt_chunk(), "no data chunk"),
    "truncated fmt": (RIFF + b"fmt \x10\x00\x00\x00\x01\x00", "truncated fmt chunk"),
    "short fmt": (RIFF + chunk(b"fmt ", b"\x01\x00") + chunk(b"data", GOOD_DATA), "truncated fmt"),
    "zero-length data": (wav_bytes(b""), "no audio (0 frames)"),
    "half a frame": (wav_bytes(b"\x01", fmt_chunk(channels=2)), "no audio (0 frames)"),
    "12-bit PCM": (wav_bytes(GOOD_DATA, fmt_chunk(bits=12)), "unsupported 12-bit PCM"),
    "16-bit float": (wav_bytes(GOOD_DATA, fmt_chunk(3, bits=16)), "unsupported 16-bit float"),
    "mu-law": (wav_bytes(GOOD_DATA, fmt_chunk(7, bits=8)), "unsupported WAV format tag 0x0007"),
    "unknown sub-format": (wav_bytes(GOOD_DATA, fmt_chunk(guid=b"\x07" * 16)), "sub-format"),
    "zero channels": (wav_bytes(GOOD_DATA, fmt_chunk(channels=0)), "0 channels"),
    "rate too low": (wav_bytes(GOOD_DATA, fmt_chunk(rate=4000)), "sample rate 4000 Hz is outside"),
    "rate too high": (wav_bytes(GOOD_DATA, fmt_chunk(rate=384000)), "sample rate 384000 Hz is"),
    "NaN float": (wav_bytes(NAN_DATA, fmt_chunk(3, bits=32)), "NaN or infinite"),
    "inf double": (wav_bytes(INF_DATA, fmt_chunk(3, bits=64)), "NaN or infinite"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, case):
    content, problem = BAD_FILES[case]
    path = write(tmp_path, content, "bad input.wav")
    for read in (read_wav, load_audio, lambda p: list(iter_audio_chunks(p, 1.0))):
        with pytest.raises(AudioError) as error:
            read(path)
        assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda tmp: tmp / "missing.wav", "no such file"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_unopenable_paths(tmp_path, make, problem):
    path = make(tmp_path)
    for read in (read_wav, load_audio, lambda p: next(iter_audio_chunks(p, 1.0))):
        with pytest.raises(AudioError, match=problem) as error:
            read(path)
        assert str(error.value).startswith(f"{path}: ")


# ---------------------------------------------------------------------------------------------
# load_audio: mono mixing, resampling, other formats, stdin


def test_channels_are_averaged(tmp_path):
    left = np.array([1000, -2000, 3000, 0], dtype=np.int16)
    right = np.array([3000, 2000, -3000, 32767], dtype=np.int16)
    stereo = np.stack([left, right], axis=1)
    path = write(tmp_path, wav_bytes(stereo.tobytes(), fmt_chunk(channels=2)))
    np.testing.assert_allclose(load_audio(path), (left / 32768 + right / 32768) / 2, atol=1e-7)


def test_load_audio_resamples_to_the_requested_rate(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.uniform(-0.5, 0.5, size=(44100, 2)).astype(np.float32)
    path = tmp_path / "in.wav"
    soundfile.write(path, data, 44100, subtype="FLOAT")
    loaded = load_audio(path)
    expected = scipy.signal.resample_poly(data.mean(axis=1), 160, 441)
    assert loaded.dtype == np.float32 and loaded.shape == (16000,)
    np.testing.assert_allclose(loaded, expected, atol=1e-5)
    assert load_audio(path, sample_rate=8000).shape == (8000,)


def test_flac_through_soundfile_equals_soundfile_read(data_dir):
    path = sorted((data_dir / "ravdess" / "Actor_01").glob("*.flac"))[0]
    expected, rate = soundfile.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(load_audio(path), expected)
    np.testing.assert_array_equal(np.concatenate(list(iter_audio_chunks(path, 0.7))), expected)


def test_format_is_decided_by_header_not_extension(tmp_path, data_dir):
    flac = sorted((data_dir / "ravdess" / "Actor_02").glob("*.flac"))[0]
    disguised = write(tmp_path, flac.read_bytes(), "looks_like.wav")
    np.testing.assert_array_equal(load_audio(disguised), soundfile.read(flac, dtype="float32")[0])


def test_ogg_through_soundfile(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    path = tmp_path / "tone.ogg"
    soundfile.write(path, tone, 22050, format="OGG", subtype="VORBIS")
    loaded = load_audio(path)
    expected = resample(soundfile.read(path, dtype="float32")[0], 22050)
    np.testing.assert_array_equal(loaded, expected)


def test_missing_soundfile_names_the_format(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # makes `import soundfile` fail
    path = sorted((data_dir / "ravdess" / "Actor_03").glob("*.flac"))[0]
    expected = (
        f"{path}: FLAC audio needs the optional soundfile package: pip install 'edge-ser[audio]'"
    )
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert str(error.value) == expected
    with pytest.raises(AudioError) as error:
        next(iter_audio_chunks(path, 1.0))
    assert str(error.value) == expected
    wav = write(tmp_path, wav_bytes(GOOD_DATA))  # WAV never needs soundfile
    assert len(load_audio(wav)) == 4


def test_unreadable_by_soundfile_too(tmp_path):
    path = write(tmp_path, b"fLaC" + b"\x00" * 40, "broken.flac")
    with pytest.raises(AudioError, match="cannot read as FLAC file") as error:
        load_audio(path)
    assert str(error.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "head, kind",
    [
        (b"RIFF\0\0\0\0WAVE", "WAV"),
        (b"fLaC\0\0\0\x22", "FLAC"),
        (b"OggS\0\x02", "OGG"),
        (b"ID3\x04\0\0", "MP3"),
        (b"\xff\xfb\x90\x64", "MP3"),
        (b"FORM\0\0\0\0AIFF", "AIFF"),
        (b"hello world!", None),
    ],
)
def test_sniff_format(head, kind):
    assert audio.sniff_format(head) == kind


def test_read_pcm16():
    ints = np.array([-32768, -1, 0, 1, 16384, 32767], dtype="<i2")
    samples = read_pcm16(io.BytesIO(ints.tobytes() + b"\x7f"))  # the cut half-sample is dropped
    np.testing.assert_array_equal(samples, ints / 32768)
    assert samples.dtype == np.float32
    with pytest.raises(AudioError, match="<stdin>: no audio"):
        read_pcm16(io.BytesIO(b"\x01"))


class FakeStdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def test_stdin_is_raw_pcm_at_the_requested_rate(monkeypatch):
    ints = (np.sin(np.arange(3000) / 7) * 20000).astype("<i2")
    monkeypatch.setattr(sys, "stdin", FakeStdin(ints.tobytes()))
    np.testing.assert_array_equal(load_audio("-", sample_rate=8000), ints / 32768)
    monkeypatch.setattr(sys, "stdin", FakeStdin(ints.tobytes()))
    chunks = list(iter_audio_chunks("-", 0.1))
    assert [len(c) for c in chunks] == [1600] * (3000 // 1600) + [3000 % 1600]
    np.testing.assert_array_equal(np.concatenate(chunks), ints / 32768)
    monkeypatch.setattr(sys, "stdin", FakeStdin(b""))
    with pytest.raises(AudioError, match="<stdin>: no audio"):
        load_audio("-")


class TrickleStream(io.RawIOBase):
    """A pipe that hands out at most 1001 bytes per read: samples get cut in half."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, n=-1):
        return self.data.read(1001 if n < 0 else min(n, 1001))


def test_stdin_chunks_survive_short_reads(monkeypatch):
    ints = (np.cos(np.arange(20000) / 5) * 30000).astype("<i2")
    stdin = FakeStdin(b"")
    stdin.buffer = TrickleStream(ints.tobytes())
    monkeypatch.setattr(sys, "stdin", stdin)
    np.testing.assert_array_equal(np.concatenate(list(iter_audio_chunks("-", 0.3))), ints / 32768)


def test_pad_or_trim():
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_trim(x, 3), [1, 2, 3])
    np.testing.assert_array_equal(pad_or_trim(x, 7), [1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(pad_or_trim(x, 5), x)
    assert pad_or_trim(x, 7).dtype == np.float32
    assert pad_or_trim(np.ones((2, 5), np.float32), 8).shape == (2, 8)


# ---------------------------------------------------------------------------------------------
# resampling


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def speech(data_dir) -> np.ndarray:
    """Five EmoDB utterances, 16 kHz float32."""
    files = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[::100][:5]
    return np.concatenate([load_audio(path) for path in files])


@pytest.mark.parametrize("rate", RATES)
def test_resample_matches_scipy_on_speech(speech, rate):
    at_rate = scipy.signal.resample_poly(speech, rate, SAMPLE_RATE).astype(np.float32)
    ours = resample(at_rate, rate)
    theirs = scipy.signal.resample_poly(at_rate, SAMPLE_RATE, rate)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert rms(ours - theirs) < 1e-3 * rms(speech)  # relative to the speech level
    assert rms(ours - theirs) < 1e-3
    if rate >= SAMPLE_RATE:  # nothing above 8 kHz was lost on the way up: the round trip holds
        assert rms(ours - speech) < 0.01 * rms(speech)


@pytest.mark.parametrize("rate", RATES)
def test_resample_matches_scipy_on_a_sweep(rate):
    t = np.arange(int(1.5 * rate)) / rate
    sweep = 0.8 * scipy.signal.chirp(t, 20, t[-1], rate / 2 * 0.95, method="logarithmic")
    sweep = sweep.astype(np.float32)
    for target in (SAMPLE_RATE, 22050):
        ours = resample(sweep, rate, target)
        theirs = scipy.signal.resample_poly(sweep, target, rate)
        assert ours.shape == theirs.shape and rms(ours - theirs) < 1e-3


@pytest.mark.parametrize("rate", [32000, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("tone_hz", [12000, 15000])
def test_tones_above_the_new_nyquist_are_suppressed(rate, tone_hz):
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * tone_hz * t).astype(np.float32)
    out = resample(tone, rate)[1000:-1000]  # away from the zero-padded ends
    assert 20 * math.log10(rms(out) / rms(tone)) < -60
    passband = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), rate)[1000:-1000]
    assert abs(20 * math.log10(rms(passband) / rms(tone))) < 0.05  # and 1 kHz goes through


@pytest.mark.parametrize(
    "rate_in, rate_out",
    [(44100, 16000), (8000, 16000), (11025, 16000), (192000, 16000), (16000, 44100), (16000,) * 2],
)
def test_chunked_equals_one_shot(rate_in, rate_out):
    rng = np.random.default_rng(rate_in + rate_out)
    x = rng.uniform(-1, 1, size=3 * rate_in + 17).astype(np.float32)
    whole = resample(x, rate_in, rate_out)
    assert len(whole) == -(-len(x) * rate_out // rate_in)
    resampler = Resampler(rate_in, rate_out)
    for _ in range(2):  # flush resets: the same resampler serves a second signal identically
        cuts = np.sort(rng.integers(0, len(x), size=40))
        cuts = np.concatenate([[0, 0, 1], cuts, [len(x)]])  # an empty and a one-sample chunk too
        parts = [resampler(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        np.testing.assert_array_equal(np.concatenate(parts + [resampler.flush()]), whole)


def test_resampler_memory_stays_bounded():
    resampler = Resampler(44100)
    chunk = np.random.default_rng(3).uniform(-1, 1, 4410).astype(np.float32)
    produced = 0
    for _ in range(500):  # 50 s of input
        produced += len(resampler(chunk))
        assert len(resampler._history) <= len(chunk) + resampler.n_taps
    produced += len(resampler.flush())
    assert produced == 500 * 1600


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError, match="positive integers"):
        Resampler(0)
    with pytest.raises(ValueError, match="positive integers"):
        Resampler(44100.5)


# ---------------------------------------------------------------------------------------------
# iter_audio_chunks


def test_chunks_equal_load_audio(tmp_path, monkeypatch):
    data = np.random.default_rng(4).uniform(-0.5, 0.5, size=(3 * 44100 + 5, 2))
    path = tmp_path / "long.wav"
    soundfile.write(path, data, 44100, subtype="PCM_24")
    monkeypatch.setattr(audio, "READ_BLOCK_FRAMES", 1001)  # many blocks, frames split oddly
    chunks = list(iter_audio_chunks(path, 0.25))
    whole = load_audio(path)
    assert all(len(c) == 4000 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 4000
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_chunks_are_read_lazily(tmp_path, monkeypatch):
    ints = (np.random.default_rng(5).uniform(-1, 1, 10 * 16000) * 3000).astype("<i2")
    path = write(tmp_path, wav_bytes(ints.tobytes()))
    opened = []

    def tracking_open(p):
        opened.append(open(p, "rb"))
        return opened[-1]

    monkeypatch.setattr(audio, "_open_path", tracking_open)
    monkeypatch.setattr(audio, "READ_BLOCK_FRAMES", 4000)
    chunks = iter_audio_chunks(path, 0.5)
    first = next(chunks)
    assert len(first) == 8000
    assert opened[-1].tell() < path.stat().st_size // 2  # most of the file is still unread
    chunks.close()
    assert opened[-1].closed


def test_chunks_report_nan_in_a_later_block(tmp_path, monkeypatch):
    values = np.zeros(5000, dtype="<f4")
    values[4321] = np.nan
    path = write(tmp_path, wav_bytes(values.tobytes(), fmt_chunk(3, bits=32)))
    monkeypatch.setattr(audio, "READ_BLOCK_FRAMES", 1000)
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(iter_audio_chunks(path, 0.01))


def test_chunk_seconds_must_give_samples(tmp_path):
    with pytest.raises(ValueError, match="chunk_seconds"):
        next(iter_audio_chunks(tmp_path / "x.wav", 0.0))
