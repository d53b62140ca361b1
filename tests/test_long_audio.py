"""Long audio read as a stream: the same segments and scores as the whole array, speech
segments where the speech is, and memory that does not grow with the duration."""
import functools
import json
import tracemalloc

import numpy as np
import pytest

import models
from edge_ser import stream
from edge_ser.audio import load_audio
from edge_ser.config import SAMPLE_RATE
from edge_ser.recognizer import Recognizer
from test_cli import run, write_wav
from test_recognizer import EDGE_TOLERANCE, EMODB_CLIPS, SILENCE_SECONDS, assert_valid, emodb_clip
from test_vad import background, with_bursts
from test_vad import harmonic_tone as make_tone

harmonic_tone = functools.lru_cache(maxsize=None)(make_tone)  # the same few tones, many times

MAX_S = stream.MAX_STRETCH_SECONDS
BYTES_PER_SAMPLE = 4  # float32


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    # synthetic audio, labelled by its scores (min_speech 0): these tests are about windows
    return Recognizer(models.save(models.build_model(seed=2), tmp_path_factory.mktemp("m") / "tiny.onnx"), min_speech=0)


def talk(start: float, seconds: float) -> list:
    """Syllable-like bursts: 0.25 s harmonic tones of changing pitch, 0.15 s apart (shorter
    than the VAD's MIN_GAP, so they form one speech segment)."""
    return [(start + 0.4 * k, harmonic_tone(0.25, f0=120 + 40 * (k % 5))) for k in range(int(seconds / 0.4))]


@functools.lru_cache(maxsize=1)
def sounds() -> dict:
    """Long inputs covering each way stretches are made: speech segments, one longer than
    MAX_STRETCH_SECONDS, silence only (the fallback, cut into pieces), speech after a long
    silence (fallback dropped), speech running into the end."""
    return {
        "bursts": with_bursts(background(20.0), [(1.0, harmonic_tone(0.7)), (4.0, harmonic_tone(3.5, f0=200)),
                                                 (12.0, harmonic_tone(0.05)), (15.0, harmonic_tone(4.9))]),
        "long talk": with_bursts(background(2 * MAX_S + 20), talk(2.0, 2 * MAX_S + 8)),
        "silence": background(2 * MAX_S + 10),
        "late speech": with_bursts(background(MAX_S + 15), [(MAX_S + 8, harmonic_tone(2.0))]),
        "speech to the end": with_bursts(background(6.0), [(4.0, harmonic_tone(2.0))]),
    }


def spans(items):
    return [(x.start, x.end) for x in items]


@pytest.mark.parametrize("name", list(sounds()))
def test_a_file_gives_what_the_whole_array_gives(rec, tmp_path, name):
    path = write_wav(tmp_path / "long.wav", sounds()[name])
    audio = load_audio(path)
    streamed, whole = rec.predict(path), rec.predict(audio)
    assert spans(streamed.segments) == spans(whole.segments) and len(whole.segments) > 0
    assert spans(streamed.timeline) == spans(whole.timeline)
    assert [s.label for s in streamed.segments] == [s.label for s in whole.segments]
    assert streamed.duration == whole.duration and streamed.label == whole.label
    np.testing.assert_allclose(list(streamed.scores.values()), list(whole.scores.values()), rtol=1e-5, atol=1e-7)
    assert_valid(streamed)
    # the same from chunks of odd sizes, through the iterator
    chunks = np.array_split(audio, 41)
    assert spans(rec.iter_segments(iter(chunks))) == spans(whole.segments)


def test_a_model_at_another_sample_rate(tmp_path):
    """The VAD runs at 16 kHz whatever the model's rate: streamed files still match arrays."""
    from edge_ser.config import FeatureConfig
    from edge_ser.contract import ModelInfo

    config = FeatureConfig(sample_rate=8000, fmax=4000.0, n_fft=256, win_length=200, hop_length=80)
    info = ModelInfo(models.LABELS, config, models.WINDOW_SECONDS)
    rec8k = Recognizer(models.save(models.build_model(info), tmp_path / "8k.onnx"))
    path = write_wav(tmp_path / "long.wav", sounds()["bursts"])
    streamed, whole = rec8k.predict(path), rec8k.predict(load_audio(path, 8000), sample_rate=8000)
    assert spans(streamed.segments) == spans(whole.segments) and len(whole.segments) > 1
    assert [s.label for s in streamed.segments] == [s.label for s in whole.segments]
    windows = list(rec8k.stream(path))
    assert [w.start for w in windows] == [float(k) for k in range(len(windows))]
    assert max(w.speech for w in windows) > 0.3


def test_long_speech_is_cut_into_pieces(rec):
    prediction = rec.predict(sounds()["long talk"])
    pieces = prediction.segments
    assert len(pieces) == 3
    assert [b - a for a, b in spans(pieces[:2])] == [pytest.approx(MAX_S)] * 2
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))  # contiguous
    assert pieces[0].start == pytest.approx(2.0, abs=EDGE_TOLERANCE)
    assert pieces[-1].end == pytest.approx(2.0 + 2 * MAX_S + 8, abs=EDGE_TOLERANCE)


def test_silence_falls_back_to_pieces_over_everything(rec):
    prediction = rec.predict(sounds()["silence"])
    assert spans(prediction.segments) == [(0.0, MAX_S), (MAX_S, 2 * MAX_S), (2 * MAX_S, pytest.approx(2 * MAX_S + 10))]


def test_segment_scores_are_the_weighted_mean_of_their_windows(rec):
    prediction = rec.predict(sounds()["bursts"])
    for segment in prediction.segments:
        weights = np.array([w.end - w.start for w in segment.windows])
        scores = np.array([[w.scores[x] for x in models.LABELS] for w in segment.windows])
        np.testing.assert_allclose([segment.scores[x] for x in models.LABELS], weights @ scores / weights.sum())
        assert all(segment.start <= w.start and w.end <= segment.end + 1e-9 for w in segment.windows)


@pytest.mark.data
def test_emodb_clips_between_silences_give_a_segment_each(rec, data_dir, tmp_path):
    clips = [load_audio(emodb_clip(data_dir, name)) for name in EMODB_CLIPS]
    silence = np.zeros(int(SILENCE_SECONDS * SAMPLE_RATE), np.float32)
    parts, speech, t = [silence], [], SILENCE_SECONDS
    for clip in clips:
        parts += [clip, silence]
        speech.append((t, t + len(clip) / SAMPLE_RATE))
        t += len(clip) / SAMPLE_RATE + SILENCE_SECONDS
    path = write_wav(tmp_path / "emodb_long.wav", np.concatenate(parts))  # in tmp: nothing is kept
    prediction = rec.predict(path)
    assert_valid(prediction)
    for segment in prediction.segments:  # every segment lies on one clip (within the VAD's slack)
        assert any(a - EDGE_TOLERANCE <= segment.start and segment.end <= b + EDGE_TOLERANCE
                   for a, b in speech), spans([segment])
    for a, b in speech:  # and every clip has a segment covering most of it
        covered = sum(max(0.0, min(b, s.end) - max(a, s.start)) for s in prediction.segments)
        assert covered >= 0.6 * (b - a), (a, b, spans(prediction.segments))
    code, out, err = run("infer", "--model", rec.session.path, "--segments", "--format", "json", path)
    assert code == 0, err
    [result] = json.loads(out)
    assert [(s["start"], s["end"], s["label"]) for s in result["segments"]] == \
        [(s.start, s.end, s.label) for s in prediction.segments]


# --- bounded memory --------------------------------------------------------------------------

PERIOD_SECONDS = 600.0  # the synthetic stream repeats every 10 minutes ...
LONG_PERIODS = 12  # ... for 2 hours
CHUNK_SECONDS = 10.0


def period_of_speech() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """10 minutes: 25 two-second tones 20 s apart, then 70 s of talk (cut into 3 stretches).
    -> (audio, the sounding spans in seconds)."""
    tones = [(5.0 + 20 * k, harmonic_tone(2.0, f0=110 + 15 * (k % 6))) for k in range(25)]
    talk_start, talk_seconds = 520.0, 70.0
    audio = with_bursts(background(PERIOD_SECONDS), tones + talk(talk_start, talk_seconds))
    truth = [(a, a + 2.0) for a, _ in tones] + [(talk_start, talk_start + talk_seconds)]
    return audio, truth


def peak_memory_of_a_stream(rec, audio, truth, n_periods) -> int:
    """Stream `n_periods` repeats of `audio` (chunks made on the fly) through iter_segments;
    check every segment lies on the sound as it arrives; -> peak traced bytes."""
    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)

    def chunks():
        for _ in range(n_periods):
            for a in range(0, len(audio), chunk):
                yield audio[a:a + chunk]

    tracemalloc.start()
    try:
        n_segments = 0
        for segment in rec.iter_segments(chunks()):  # nothing kept: only the stream's own memory
            offset = segment.start // PERIOD_SECONDS * PERIOD_SECONDS
            start, end = segment.start - offset, segment.end - offset
            assert any(a - EDGE_TOLERANCE <= start and end <= b + EDGE_TOLERANCE for a, b in truth), (segment.start, segment.end)
            n_segments += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n_segments == n_periods * (len(truth) - 1 + 3)  # the 70 s talk is 3 stretches
    return peak


def test_hours_of_audio_stream_in_bounded_memory(rec):
    audio, truth = period_of_speech()
    short = peak_memory_of_a_stream(rec, audio, truth, 1)
    long = peak_memory_of_a_stream(rec, audio, truth, LONG_PERIODS)
    stretch_bytes = (MAX_S + CHUNK_SECONDS) * SAMPLE_RATE * BYTES_PER_SAMPLE
    # the same peak for 10 minutes and 2 hours (460 MB of float32): a few copies of one stretch
    assert long <= 1.1 * short
    assert long <= 4 * stretch_bytes
