import dataclasses
import importlib.util
import pathlib
import threading

import numpy as np
import pytest

from edge_ser import features, vad
from edge_ser.config import FRAMES_PER_SECOND, SAMPLE_RATE, WHISPER_FEATURES, FeatureConfig
from edge_ser.errors import AudioError

REPO = pathlib.Path(__file__).resolve().parents[1]
# Seconds: the 25 ms window and 10 ms hop blur each edge, and the smoothed score (SCORE_SMOOTHING)
# takes several frames to decay after a loud sound stops.
TOLERANCE_S = 0.1
RNG_SEED = 7


def load_benchmark():
    """benchmarks/vad_accuracy.py as a module (benchmarks/ is not a package)."""
    path = REPO / "benchmarks" / "vad_accuracy.py"
    spec = importlib.util.spec_from_file_location("vad_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def background(seconds: float, level: float = 1e-3, seed: int = RNG_SEED) -> np.ndarray:
    """Quiet white noise [samples], so the noise floor is not the log floor."""
    noise = np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))
    return (level * noise).astype(np.float32)


def harmonic_tone(seconds: float, f0: float = 140.0, amplitude: float = 0.3) -> np.ndarray:
    """A voiced-like tone: harmonics of f0 up to 4 kHz, falling 6 dB per octave."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    harmonics = np.arange(1, int(4000 / f0) + 1)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in harmonics)
    return (amplitude * tone / np.abs(tone).max()).astype(np.float32)


def with_bursts(base: np.ndarray, bursts) -> np.ndarray:
    """base + each (start_s, signal) added at start_s."""
    out = base.copy()
    for start, signal in bursts:
        a = int(start * SAMPLE_RATE)
        out[a : a + len(signal)] += signal
    return out


def assert_segments_match(found, truth):
    """Segments match the truth widened by the detector's own PRE_ROLL and HANGOVER."""
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for (fa, fb), (ta, tb) in zip(found, truth):
        ta, tb = ta - vad.PRE_ROLL, tb + vad.HANGOVER
        ok = abs(fa - ta) <= TOLERANCE_S and abs(fb - tb) <= TOLERANCE_S
        assert ok, f"found {found}, expected {truth}"


def test_digital_silence_has_no_speech():
    assert vad.speech_segments(np.zeros(2 * SAMPLE_RATE, np.float32)) == []


def test_quiet_noise_has_no_speech():
    assert vad.speech_segments(background(3.0)) == []


def test_harmonic_tones_found_at_known_times():
    tones = [(0.5, harmonic_tone(0.7)), (2.2, harmonic_tone(1.0, f0=220))]
    audio = with_bursts(background(4.0), tones)
    assert_segments_match(vad.speech_segments(audio), [(0.5, 1.2), (2.2, 3.2)])


def test_loud_noise_bursts_found_at_known_times():
    rng = np.random.default_rng(RNG_SEED + 1)
    burst = (0.1 * rng.standard_normal(int(0.5 * SAMPLE_RATE))).astype(np.float32)
    audio = with_bursts(background(3.0), [(0.8, burst), (2.0, burst)])
    assert_segments_match(vad.speech_segments(audio), [(0.8, 1.3), (2.0, 2.5)])


def test_short_gap_is_bridged_and_long_gap_is_not():
    tone = harmonic_tone(0.5)
    short = vad.MIN_GAP / 2
    audio = with_bursts(background(4.0), [(0.5, tone), (1.0 + short, tone), (2.8, tone)])
    assert_segments_match(vad.speech_segments(audio), [(0.5, 1.5 + short), (2.8, 3.3)])


def test_burst_shorter_than_min_speech_is_dropped():
    # without score smoothing the raw run lasts about as long as the click
    click = harmonic_tone(vad.MIN_SPEECH / 3)
    audio = with_bursts(background(2.0), [(1.0, click)])
    assert vad.speech_segments(audio, score_smoothing=0.0) == []
    assert len(vad.speech_segments(audio, score_smoothing=0.0, min_speech=0.0)) == 1


def test_segments_lie_inside_the_audio():
    audio = with_bursts(background(1.5), [(0.0, harmonic_tone(1.5))])
    for start, end in vad.speech_segments(audio):
        assert 0.0 <= start < end <= 1.5


@pytest.mark.parametrize("n_samples", [0, 1])
def test_tiny_input(n_samples):
    audio = np.full(n_samples, 0.5, np.float32)
    assert vad.speech_frames(features.log_mel(audio)).shape == (features.log_mel(audio).shape[1],)
    segments = vad.speech_segments(audio)
    assert isinstance(segments, list) and len(segments) <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_audio_raises_audio_error(bad):
    audio = background(0.5)
    audio[100] = bad
    with pytest.raises(AudioError):
        vad.speech_segments(audio)


def test_stereo_audio_raises_audio_error():
    with pytest.raises(AudioError, match="mono"):
        vad.speech_segments(np.zeros((2, 1600), np.float32))


def test_bad_log_mel_raises():
    with pytest.raises(ValueError, match="log_mel must be"):
        vad.speech_frames(np.zeros((40, 10), np.float32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        vad.speech_frames(np.full((64, 10), -np.inf, np.float32))


def test_unknown_parameter_raises():
    with pytest.raises(TypeError, match="unknown VAD parameters"):
        vad.speech_frames(np.zeros((64, 10), np.float32), threshold=3)


def test_frame_stage_is_causal():
    """Without the smoothing stage, a prefix's decisions equal the full input's first frames."""
    audio = with_bursts(background(3.0), [(0.4, harmonic_tone(0.6)), (1.6, harmonic_tone(0.8))])
    log_mel = features.log_mel(audio)
    raw = dict(min_gap=0.0, min_speech=0.0, pre_roll=0.0)
    full = vad.speech_frames(log_mel, **raw)
    assert full.any() and not full.all()
    for n in (1, 57, 150):
        np.testing.assert_array_equal(vad.speech_frames(log_mel[:, :n], **raw), full[:n])


def test_same_result_from_two_threads():
    tone = harmonic_tone(0.8)
    audios = [with_bursts(background(3.0, seed=s), [(0.3 * s, tone)]) for s in range(1, 5)]
    inputs = [features.log_mel(a) for a in audios]
    expected = [vad.speech_frames(x) for x in inputs]
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(50):
                for i, x in enumerate(inputs):
                    out = vad.speech_frames(x)
                    if not np.array_equal(out, expected[i]):
                        results[k] = False
                        return
            results[k] = True
        except Exception as e:  # surfaced below, not swallowed
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == {0: True, 1: True}


@pytest.mark.data
def test_emodb_frame_f1(data_dir):
    bench = load_benchmark()
    counts = bench.emodb_counts(data_dir)
    assert bench.f1(counts) >= 0.90
    # F1 alone would pass for "everything is speech" (most clips are speech to their end), so
    # the detector must also reject most of the reference's non-speech frames.
    assert bench.nonspeech_recall(counts) >= 0.5


def test_same_segments_at_any_level():
    audio = with_bursts(background(3.0), [(0.6, harmonic_tone(0.8)), (2.0, harmonic_tone(0.5))])
    expected = vad.speech_segments(audio)
    assert len(expected) == 2
    for gain in (0.03, 3.0):
        assert vad.speech_segments(gain * audio) == expected


def test_floor_adapts_to_louder_noise():
    """After the noise level steps up 20 dB, speech is declared for under a second only."""
    audio = background(5.0)
    audio[SAMPLE_RATE:] *= 10
    audio = with_bursts(audio, [(3.5, harmonic_tone(0.8))])
    segments = vad.speech_segments(audio)
    assert segments[-1][0] == pytest.approx(3.5, abs=TOLERANCE_S)
    assert all(end - start < 1.0 for start, end in segments[:-1])


# --- streaming -------------------------------------------------------------------------------


def random_chunks(audio: np.ndarray, rng, most: int) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(1, len(audio)), size=len(audio) // most, replace=False))
    return np.split(audio, cuts)


def streamed(detector, chunks) -> np.ndarray:
    return np.concatenate([*(detector.push(c) for c in chunks), detector.finish()])


STREAM_CONFIGS = {
    "default": FeatureConfig(),
    # Whisper's framing (reflect padding, last frame dropped); its normalisation needs the whole signal.
    "whisper-framing": dataclasses.replace(WHISPER_FEATURES, normalize="none"),
    # A hop longer than half the FFT: a frame's window can arrive before the frame is the signal's.
    "drop-last-long-hop": FeatureConfig(n_fft=128, win_length=128, n_mels=32, pad="reflect", drop_last_frame=True),
}


@pytest.mark.parametrize("config", STREAM_CONFIGS.values(), ids=STREAM_CONFIGS.keys())
def test_log_mel_stream_equals_the_whole_signal(config):
    audio = with_bursts(background(3.0), [(0.5, harmonic_tone(1.0))])
    rng = np.random.default_rng(RNG_SEED)
    for most in (100, 5000, len(audio)):
        mel = vad.LogMelStream(config)
        got = np.concatenate([*(mel.push(c) for c in random_chunks(audio, rng, most)), mel.finish()], axis=1)
        np.testing.assert_array_equal(got, features.log_mel(audio, config))


def test_smoothing_stream_equals_smoothing_everything_at_once():
    """Random decision runs, random smoothing times, random pieces: always the same result."""
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(500):
        runs = rng.integers(1, 12, size=60)
        raw = np.repeat(rng.integers(0, 2, size=60), runs)[: rng.integers(1, 400)].astype(np.uint8)
        params = dict(hangover=int(rng.integers(0, 12)), min_gap=int(rng.integers(0, 50)),
                      min_speech=int(rng.integers(0, 12)), pre_roll=int(rng.integers(0, 6)))
        whole = raw.copy()
        vad._vad.smooth(whole, **params)
        pieces = np.split(raw, np.sort(rng.integers(0, len(raw), size=rng.integers(0, 20))))
        np.testing.assert_array_equal(streamed(vad.SmoothingStream(**params), pieces), whole.view(bool))


def test_streaming_vad_equals_speech_frames():
    audio = with_bursts(background(20.0), [(0.4, harmonic_tone(0.6)), (1.6, harmonic_tone(0.8)),
                                           (5.0, harmonic_tone(3.0)), (9.3, harmonic_tone(0.03)),
                                           (12.0, harmonic_tone(5.0, f0=220))])
    offline = vad.speech_frames(features.log_mel(audio))
    assert 0.1 < offline.mean() < 0.9
    rng = np.random.default_rng(RNG_SEED)
    for most in (50, 3000, 40000, len(audio)):
        np.testing.assert_array_equal(streamed(vad.StreamingVAD(), random_chunks(audio, rng, most)), offline)
    tuned = dict(min_gap=0.1, hangover=0.2, snr_threshold_db=6.0)
    np.testing.assert_array_equal(streamed(vad.StreamingVAD(**tuned), random_chunks(audio, rng, 2000)),
                                  vad.speech_frames(features.log_mel(audio), **tuned))


def test_streaming_vad_decides_frames_after_its_lookahead():
    """After 1 s of audio, the frames whose FFT window is complete, less the smoothing's
    lookahead, are final; `finish` gives the rest of the 1 + samples // hop frames."""
    detector = vad.StreamingVAD()
    first = len(detector.push(background(1.0)))
    complete = (SAMPLE_RATE - vad.VAD_CONFIG.n_fft // 2) // vad.VAD_CONFIG.hop_length + 1
    assert first == complete - round(detector.lookahead_seconds * FRAMES_PER_SECOND) > 0
    assert 0 < detector.lookahead_seconds < 1.0
    assert first + len(detector.finish()) == detector.frames_done == vad.VAD_CONFIG.n_frames(SAMPLE_RATE)


def test_streaming_vad_rejects_bad_chunks():
    with pytest.raises(AudioError, match="NaN"):
        vad.StreamingVAD().push(np.array([0.0, np.inf], np.float32))
    with pytest.raises(AudioError, match="mono"):
        vad.StreamingVAD().push(np.zeros((2, 10), np.float32))
