"""edge_ser.recognizer: windows, scores, timeline, on synthetic audio and real EmoDB speech."""
import numpy as np
import pytest

import models
from edge_ser import features, recognizer
from edge_ser.audio import load_audio
from edge_ser.config import SAMPLE_RATE, WHISPER_FEATURES, FeatureConfig
from edge_ser.contract import ModelInfo
from edge_ser.errors import AudioError, ModelError
from edge_ser.recognizer import Recognizer, softmax, window_spans

SILENCE_SECONDS = 1.5  # gap between the clips of the long test file
EDGE_TOLERANCE = 0.3  # s: VAD onsets/offsets may stray this far from the speech


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    proto = models.build_model()
    return proto, models.save(proto, tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer(tiny_model[1], min_speech=0)  # synthetic audio: label by scores


def expected_scores(proto, audio: np.ndarray) -> np.ndarray:
    """The tiny model on one window, computed in numpy: softmax(mean_t(log_mel) @ W + b)."""
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    log_mel = features.log_mel(audio)
    return softmax((log_mel.mean(axis=1) @ w["W"] + w["b"])[None])[0]


def tone(seconds: float, hz: float = 220.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def assert_valid(prediction, labels=models.LABELS):
    assert prediction.label in labels
    assert set(prediction.scores) == set(labels)
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction.label == max(prediction.scores, key=prediction.scores.get)
    for window in prediction.timeline:
        assert window.label in labels
        assert sum(window.scores.values()) == pytest.approx(1.0, abs=1e-6)


# --- short audio: one window -----------------------------------------------------------------


def test_short_audio_is_one_window_scored_like_the_model(rec, tiny_model):
    audio = tone(1.7)
    prediction = rec.predict(audio)
    assert_valid(prediction)
    assert prediction.duration == pytest.approx(1.7)
    assert [(w.start, w.end) for w in prediction.timeline] == [(0.0, pytest.approx(1.7))]
    got = np.array([prediction.scores[x] for x in models.LABELS])
    np.testing.assert_allclose(got, expected_scores(tiny_model[0], audio), rtol=1e-4, atol=1e-6)


def test_very_short_audio_is_padded_to_the_minimum(rec, tiny_model):
    audio = tone(0.05)
    padded = np.pad(audio, (0, int(recognizer.MIN_SINGLE_WINDOW_SECONDS * SAMPLE_RATE) - len(audio)))
    prediction = rec.predict(audio)
    assert prediction.duration == pytest.approx(0.05)
    got = np.array([prediction.scores[x] for x in models.LABELS])
    np.testing.assert_allclose(got, expected_scores(tiny_model[0], padded), rtol=1e-4, atol=1e-6)


def test_other_sample_rates_are_resampled(rec):
    prediction = rec.predict(tone(1.0, rate=8000), sample_rate=8000)
    assert prediction.duration == pytest.approx(1.0)
    assert_valid(prediction)


@pytest.mark.parametrize("audio, fragment", [
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.1, np.nan], np.float32), "NaN"),
    (np.zeros((2, 100), np.float32), "mono"),
])
def test_bad_arrays_raise_audio_error(rec, audio, fragment):
    with pytest.raises(AudioError, match=fragment):
        rec.predict(audio)


def test_missing_file_raises_audio_error_naming_it(rec, tmp_path):
    with pytest.raises(AudioError, match="nothing.wav"):
        rec.predict(tmp_path / "nothing.wav")


def test_no_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(recognizer, "DEFAULT_MODEL", tmp_path / "default.onnx")
    with pytest.raises(ModelError, match="no default model is installed yet; pass --model PATH"):
        Recognizer()


def test_default_model_is_used_when_present(monkeypatch, tiny_model):
    monkeypatch.setattr(recognizer, "DEFAULT_MODEL", tiny_model[1])
    assert Recognizer().labels == list(models.LABELS)


@pytest.mark.parametrize("config", [FeatureConfig(), WHISPER_FEATURES], ids=["default", "whisper"])
def test_fixed_frame_model_gets_exactly_its_frames(tmp_path, config):
    # Whisper's features drop the last frame: its windows need one hop more audio for 201 frames.
    info = ModelInfo(models.LABELS, config, models.WINDOW_SECONDS)
    path = models.save(models.build_model(info, input_shape=(1, None, 201)), tmp_path / "fixed.onnx")
    rec = Recognizer(path, min_speech=0)
    seen = []
    inner = rec.session.__call__
    rec.session = lambda log_mel: seen.append(log_mel.shape) or inner(log_mel)
    for seconds in (0.3, 2.0, 2.9, 8.0):
        assert_valid(rec.predict(tone(seconds)))
    assert {shape[1:] for shape in seen} == {(config.n_mels, 201)}


# --- long audio: windows on speech -----------------------------------------------------------


def test_window_spans_cover_segments_with_whole_windows():
    segments = [(0.5, 1.2), (3.0, 5.05), (7.0, 12.3)]
    spans = window_spans(20.0, 2.0, segments)
    assert spans[0] == (0.5, 1.2)  # shorter than a window: the segment itself
    for start, end in segments[1:]:
        inside = [(s, e) for s, e in spans if start <= s and e <= end + 1e-9]
        assert inside and all(e - s == pytest.approx(2.0) for s, e in inside)
        gaps = np.diff([s for s, _ in inside])
        assert (gaps <= 2.0 * 0.75 + 1e-9).all()  # neighbours overlap: no speech skipped
        assert inside[0][0] - start <= 0.25 and end - inside[-1][1] <= 0.25
    assert len(spans) == 1 + 1 + 4  # 5.3 s at a 1 s hop: 1 + round(3.3) windows


def test_window_spans_without_speech_tile_the_whole_audio():
    spans = window_spans(7.0, 2.0, [])
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(7.0)
    assert all(e - s == pytest.approx(2.0) for s, e in spans)


def test_silence_only_long_audio_falls_back_to_windows_over_everything(rec):
    prediction = rec.predict(np.zeros(6 * SAMPLE_RATE, np.float32))
    assert_valid(prediction)
    assert prediction.timeline[0].start == 0.0
    assert prediction.timeline[-1].end == pytest.approx(6.0)


def test_windows_run_as_one_batch(tiny_model):
    rec = Recognizer(tiny_model[1])
    calls = []
    inner = rec.session.__call__
    rec.session = lambda log_mel: calls.append(log_mel.shape) or inner(log_mel)
    prediction = rec.predict(np.zeros(9 * SAMPLE_RATE, np.float32))
    assert len(calls) == 1 and calls[0][0] == len(prediction.timeline) > 1


def test_overall_scores_are_the_duration_weighted_window_mean(rec, monkeypatch):
    from edge_ser import vad

    segments = [(0.2, 0.9), (1.5, 4.8)]  # a short segment and a long one: unequal weights
    monkeypatch.setattr(vad, "speech_segments", lambda audio: segments)
    audio = np.concatenate([tone(2.4, 180), tone(2.4, 900)])
    prediction = rec.predict(audio)
    assert [(w.start, w.end) for w in prediction.timeline] == window_spans(4.8, 2.0, segments)
    assert len({round(w.end - w.start, 6) for w in prediction.timeline}) > 1
    weights = np.array([w.end - w.start for w in prediction.timeline])
    per_window = np.array([[w.scores[x] for x in models.LABELS] for w in prediction.timeline])
    expected = weights @ per_window / weights.sum()
    np.testing.assert_allclose([prediction.scores[x] for x in models.LABELS], expected, rtol=1e-9)


# --- real speech -----------------------------------------------------------------------------

EMODB_CLIPS = ["03a01Fa.wav", "08a02Ab.wav", "10a04Wb.wav", "13a01Nb.wav"]  # 4 speakers, 4 emotions


def emodb_clip(data_dir, name):
    return data_dir / "emodb" / "wav" / name


def test_real_emodb_clips(rec, data_dir):
    for name in EMODB_CLIPS:
        prediction = rec.predict(emodb_clip(data_dir, name))
        assert_valid(prediction)
        assert prediction.duration == pytest.approx(2.0)
        assert len(prediction.timeline) == 1


def test_long_recording_timeline_lies_on_the_speech(rec, data_dir):
    clips = [load_audio(emodb_clip(data_dir, name)) for name in EMODB_CLIPS]
    silence = np.zeros(int(SILENCE_SECONDS * SAMPLE_RATE), np.float32)
    parts, speech = [silence], []
    t = SILENCE_SECONDS
    for clip in clips:
        parts += [clip, silence]
        speech.append((t, t + len(clip) / SAMPLE_RATE))
        t += len(clip) / SAMPLE_RATE + SILENCE_SECONDS
    prediction = rec.predict(np.concatenate(parts))
    assert_valid(prediction)
    assert prediction.duration == pytest.approx(t)
    for w in prediction.timeline:  # every window lies on one clip (within the VAD's slack)
        assert any(a - EDGE_TOLERANCE <= w.start and w.end <= b + EDGE_TOLERANCE for a, b in speech), (w.start, w.end)
    for a, b in speech:  # and every clip got a window
        assert any(a - EDGE_TOLERANCE <= w.start < b for w in prediction.timeline), (a, b)


# --- segments and streamed files -------------------------------------------------------------


def test_short_audio_is_one_segment_of_one_window(rec):
    prediction = rec.predict(tone(1.7))
    [segment] = prediction.segments
    assert segment.windows == tuple(prediction.timeline)
    assert (segment.start, segment.end, segment.label, segment.scores) == \
        (0.0, pytest.approx(1.7), prediction.label, prediction.scores)


def test_short_file_gives_what_the_array_gives(rec, tmp_path):
    from test_cli import write_wav

    path = write_wav(tmp_path / "short.wav", tone(2.9))  # just under SINGLE_WINDOW_FACTOR windows
    from_file, from_array = rec.predict(path), rec.predict(load_audio(path))
    assert len(from_file.timeline) == 1 and from_file == from_array


def test_segments_hold_every_window_once(rec):
    audio = np.concatenate([tone(2.4, 180), np.zeros(SAMPLE_RATE, np.float32), tone(4.4, 900)])
    prediction = rec.predict(audio)
    assert [w for s in prediction.segments for w in s.windows] == prediction.timeline
    assert len(prediction.segments) >= 1


def test_iter_segments_on_chunks(rec):
    chunks = [tone(0.3)] * 5  # 1.5 s in pieces: one window
    [segment] = list(rec.iter_segments(iter(chunks)))
    assert segment.end == pytest.approx(1.5)
    with pytest.raises(AudioError, match="no audio"):
        list(rec.iter_segments(iter([np.zeros(0, np.float32)])))
